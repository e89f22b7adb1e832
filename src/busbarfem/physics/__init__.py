"""Physics: form builders and thin problem classes (electrical potential, heat)."""
