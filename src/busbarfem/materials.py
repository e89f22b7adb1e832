"""The material library (moved to :mod:`busbarfem.case.materials`, beside the schema it
belongs to, so that the case checks and the library no longer import each other)."""

from busbarfem.case.materials import LIBRARY, resolve_materials

__all__ = ["LIBRARY", "resolve_materials"]
