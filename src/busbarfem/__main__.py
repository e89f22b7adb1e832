"""Entry point for ``python -m busbarfem``."""

from busbarfem.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
