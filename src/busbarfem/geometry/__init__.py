"""Gmsh OCC geometry builders and meshing for busbarfem.

Entry point: :func:`generate_model` turns the case's ``geometry:`` and ``mesh:``
sections into a fragmented (conformal), named and meshed gmsh model; physical names
follow :mod:`busbarfem.naming`.
"""

from busbarfem.geometry.model import generate_model
from busbarfem.geometry.preview import render_preview
from busbarfem.geometry.quality import mesh_quality

__all__ = ["generate_model", "mesh_quality", "render_preview"]
