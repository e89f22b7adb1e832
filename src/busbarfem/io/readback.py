"""Read ``fields.xdmf``/``fields.h5`` back without DOLFINx (XML + h5py).

``outdir`` may be an output folder (its ``fields.xdmf``, or the newest
``fields_restart<k>.xdmf`` after a restart, which holds the final state) or an ``.xdmf`` path.
Used by the report and the renders, which run on rank 0 alone after the solve, and by the
tests that check the written files independently of the writer. The file layout is the
one :class:`busbarfem.io.fields.FieldWriter` publishes: one ``Temporal`` collection whose
grids each carry the mesh (topology and geometry in the ``.h5``), a ``Time`` and one
``Attribute`` per field (``Center="Node"`` for P1, ``"Cell"`` for DG0). Files of older runs
(DOLFINx's layout: a mesh grid, then one collection per field) are read too.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

XDMF_NAME = "fields.xdmf"


class Grid(NamedTuple):
    """Mesh as written: vertex coordinates (n, 3) and cell connectivity (m, k)."""

    points: np.ndarray
    cells: np.ndarray


@dataclass
class FieldStep:
    """One stored time of a field: the h5 file and dataset that hold it."""

    time: float
    center: str  # "Node" or "Cell"
    h5file: str
    dataset: str


def _xdmf_path(outdir) -> Path:
    """The field file of an output folder: the latest restart file if a run was restarted."""
    p = Path(outdir)
    if p.suffix == ".xdmf":
        return p
    restarts = sorted(p.glob("fields_restart*.xdmf"), key=lambda f: int(f.stem.removeprefix("fields_restart") or 0))
    return restarts[-1] if restarts else p / XDMF_NAME


def _split_ref(text: str) -> tuple[str, str]:
    fname, dset = text.strip().split(":", 1)
    return fname, dset


def _catalogue(outdir) -> tuple[Path, tuple[str, str, str, str], dict[str, list[FieldStep]]]:
    """Parse the XDMF XML: mesh references and, per field, its stored steps in time order.

    Reads the single-collection layout (one grid per time carrying every field) and the
    older DOLFINx layout (a mesh grid, then one collection per field).
    """
    path = _xdmf_path(outdir)
    root = ET.parse(path).getroot()
    domain = root.find("Domain")
    if domain is None:
        raise ValueError(f"{path}: no <Domain>")
    mesh_grid = None
    fields: dict[str, list[FieldStep]] = {}
    for grid in domain.findall("Grid"):
        if grid.get("GridType") == "Uniform" and mesh_grid is None:
            mesh_grid = grid
        elif grid.get("GridType") == "Collection":
            for g in grid.findall("Grid"):
                if mesh_grid is None and g.find("Topology") is not None:
                    mesh_grid = g
                t = g.find("Time")
                for a in g.findall("Attribute"):
                    fname, dset = _split_ref(a.find("DataItem").text)
                    fields.setdefault(a.get("Name"), []).append(
                        FieldStep(float(t.get("Value")) if t is not None else 0.0, a.get("Center", "Node"),
                                  fname, dset))
    if mesh_grid is None:
        raise ValueError(f"{path}: no mesh grid")
    topo = _split_ref(mesh_grid.find("Topology").find("DataItem").text)
    geom = _split_ref(mesh_grid.find("Geometry").find("DataItem").text)
    return path, (*topo, *geom), fields


def field_names(outdir) -> list[str]:
    """Names of the fields stored in ``outdir/fields.xdmf`` (in file order)."""
    return list(_catalogue(outdir)[2])


def times(outdir, name: str | None = None) -> list[float]:
    """Stored output times of field ``name`` (default: the first field)."""
    _, _, fields = _catalogue(outdir)
    steps = fields[name] if name is not None else next(iter(fields.values()), [])
    return [s.time for s in steps]


def read_mesh(outdir) -> Grid:
    """The mesh: points (n, 3) and cells (m, nodes per cell)."""
    path, (tf, td, gf, gd), _ = _catalogue(outdir)
    with h5py.File(path.parent / tf, "r") as f:
        cells = np.asarray(f[td][...], dtype=np.int64)
    with h5py.File(path.parent / gf, "r") as f:
        points = np.asarray(f[gd][...], dtype=np.float64)
    if points.shape[1] == 2:
        points = np.column_stack([points, np.zeros(len(points))])
    return Grid(points, cells)


def read_field(outdir, name: str, index: int = -1) -> tuple[Grid, np.ndarray, float]:
    """Field ``name`` at stored step ``index``.

    Returns:
        (mesh, values, time): values are (n,) for scalars or (n, 3) for vectors, with n
        the number of points (``Center="Node"``) or cells (``Center="Cell"``).

    Raises:
        KeyError: no such field (the message lists the stored ones).
    """
    path, _, fields = _catalogue(outdir)
    if name not in fields or not fields[name]:
        raise KeyError(f"no field '{name}' in {path}; stored: {', '.join(fields) or 'none'}")
    step = fields[name][index]
    with h5py.File(path.parent / step.h5file, "r") as f:
        values = np.asarray(f[step.dataset][...], dtype=np.float64)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    return read_mesh(outdir), values, step.time


def read_last(outdir, name: str) -> tuple[Grid, np.ndarray, float]:
    """Field ``name`` at the last stored time: (mesh, values, time)."""
    return read_field(outdir, name, -1)


def field_center(outdir, name: str) -> str:
    """``"Node"`` (P1) or ``"Cell"`` (DG0) for a stored field."""
    return _catalogue(outdir)[2][name][-1].center
