"""Post-processing: per-region integrals, extrema with locations, hot spots, runaway."""
