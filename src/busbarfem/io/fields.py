"""XDMF field output: one grid per output time carrying every field.

ParaView: open ``fields.xdmf`` with the "Xdmf3 Reader (Top Level Partition)"
(``Xdmf3ReaderT``). The published file holds a single ``Temporal`` collection; each of its
grids is one output time with the mesh (``Topology``/``Geometry``) and every field as an
``Attribute``: T, phi (or phi1/phi2), J_magnitude, J, q, SOC, transfer_current,
region_id and whatever else the caller passes. ParaView therefore sees one dataset per time,
and every filter (Threshold on ``region_id``, Slice, Clip, ...) keeps all fields.

Writing: DOLFINx's ``XDMFFile`` writes the mesh and the function values into ``fields.h5``
(collectively over MPI ranks, in parallel HDF5) and keeps its own XML (one collection per
field), which is never published. After each output time, rank 0 rewrites that XML into the
single-collection layout (:func:`single_grid_xml`) and publishes it.

Crash safety: DOLFINx rewrites its XML in place after every ``write_function`` while the
``.h5`` file is still open, so a run killed at the wrong moment could leave a truncated XML,
or an XML that names datasets whose HDF5 metadata was never flushed. DOLFINx therefore
writes into a hidden work folder (``.fields.partial/fields.xdmf``, whose ``fields.h5`` is a
symlink to the real ``fields.h5``); the writer closes the HDF5 file (which flushes it), and
only then writes the published XML to a temporary file and renames it atomically onto
``fields.xdmf`` (declaring the 8-byte precision of the data, which DOLFINx leaves out, so
ParaView reads doubles instead of rounding to float32). A run killed at any moment leaves a
``fields.xdmf`` that is complete and names only flushed data: every step up to the last
completed write. DOLFINx's own XML is kept in memory on rank 0 between writes.
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import dolfinx_solver  # noqa: F401
import numpy as np

from dolfinx import fem, io

_XI = "{https://www.w3.org/2001/XInclude}"


class FieldWriter:
    """Incremental, crash-safe XDMF writer of the solution fields (one grid per time).

    Args:
        comm: MPI communicator of the mesh.
        msh: the mesh (written once).
        path: the ``fields.xdmf`` path (``fields.h5`` goes beside it).
        fields: name -> (Function to write, callable that refreshes it before a write, or
            None). Every function is written at every output time, in this order.
    """

    def __init__(self, comm, msh, path: Path, fields: dict):
        self.comm = comm
        self.path = Path(path)
        self.h5_path = self.path.with_suffix(".h5")
        self.work = self.path.parent / f".{self.path.stem}.partial"
        self.fields = fields
        self._raw: str | None = None  # DOLFINx's own XML (rank 0)
        if comm.rank == 0:
            for p in (self.path, self.h5_path):
                if p.exists() or p.is_symlink():
                    p.unlink()
            from busbarfem.io.paraview import write_paraview_folder

            write_paraview_folder(self.path.parent)  # paraview/open_result.py (see io/paraview.py)
        self._prepare_work()
        with io.XDMFFile(comm, str(self.work / self.path.name), "w") as f:
            f.write_mesh(msh)
        self._publish()
        self.count = 0

    def _prepare_work(self) -> None:
        """Recreate the work folder (DOLFINx's XML + symlink to the real .h5) on rank 0."""
        if self.comm.rank == 0:
            if self.work.exists():
                shutil.rmtree(self.work)
            self.work.mkdir(parents=True)
            (self.work / self.h5_path.name).symlink_to(Path("..") / self.h5_path.name)
            if self._raw is not None:
                (self.work / self.path.name).write_text(self._raw)
        self.comm.barrier()

    def _publish(self) -> None:
        """Atomically replace ``fields.xdmf`` by the single-grid XML (HDF5 already closed)."""
        if self.comm.rank == 0:
            self._raw = (self.work / self.path.name).read_text()
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            tmp.write_text(single_grid_xml(self._raw))
            os.replace(tmp, self.path)
            shutil.rmtree(self.work)
        self.comm.barrier()

    def write(self, t: float) -> None:
        """Refresh and append every field at time ``t``."""
        for fn, refresh in self.fields.values():
            if refresh is not None:
                refresh()
        self._prepare_work()
        with io.XDMFFile(self.comm, str(self.work / self.path.name), "a") as f:
            for fn, _ in self.fields.values():
                f.write_function(fn, t)
        self._publish()
        self.count += 1


def single_grid_xml(raw: str) -> str:
    """DOLFINx's XDMF XML (a mesh grid, one temporal collection per field) rewritten as one
    temporal collection whose grids each carry the mesh and every field of that time.

    Grids are ordered by first appearance of their ``Time`` in the file; a field missing at
    some time is simply absent from that grid. Without any stored time the mesh grid alone
    is published. HDF data items get ``Precision="8"`` (see :func:`_declare_precision`).
    """
    root = ET.fromstring(raw)
    domain = root.find("Domain")
    mesh = next(g for g in domain.findall("Grid") if g.get("GridType") == "Uniform")
    topo, geom = mesh.find("Topology"), mesh.find("Geometry")
    by_time: dict[str, list[ET.Element]] = {}
    for coll in domain.findall("Grid"):
        if coll.get("GridType") != "Collection":
            continue
        for g in coll.findall("Grid"):
            t = g.find("Time")
            key = t.get("Value") if t is not None else "0"
            by_time.setdefault(key, []).extend(g.findall("Attribute"))
    out = ET.Element("Xdmf", {"Version": "3.0"})
    dom = ET.SubElement(out, "Domain")
    if not by_time:
        dom.append(mesh)
    else:
        coll = ET.SubElement(dom, "Grid", {"Name": "fields", "GridType": "Collection",
                                           "CollectionType": "Temporal"})
        for t, attrs in by_time.items():
            g = ET.SubElement(coll, "Grid", {"Name": "mesh", "GridType": "Uniform"})
            g.append(topo)
            g.append(geom)
            ET.SubElement(g, "Time", {"Value": t})
            for a in attrs:
                g.append(a)
    _declare_precision(out)
    ET.indent(out, space="  ")
    return '<?xml version="1.0"?>\n' + ET.tostring(out, encoding="unicode") + "\n"


def _declare_precision(root: ET.Element) -> None:
    """Declare ``NumberType``/``Precision="8"`` on HDF data items that lack them.

    DOLFINx stores float64/int64 data but does not say so; XDMF readers then assume 4-byte
    numbers, and ParaView (Xdmf3ReaderT) shows every field rounded to single precision.
    """
    for item in root.iter("DataItem"):
        if item.get("Format") != "HDF":
            continue
        item.attrib.setdefault("NumberType", "Float")
        item.attrib.setdefault("Precision", "8")


def interpolator(target: fem.Function, expr):
    """A callable that interpolates the UFL ``expr`` into ``target`` (compiled once)."""
    e = fem.Expression(expr, target.function_space.element.interpolation_points)

    def refresh():
        target.interpolate(e)
        target.x.scatter_forward()

    return refresh


def region_id_function(bundle) -> fem.Function:
    """DG0 function holding each cell's volume-region tag."""
    Q0 = bundle.space("DG", 0)
    rid = fem.Function(Q0, name="region_id")
    ct = bundle.cell_tags
    rid.x.array[ct.indices] = ct.values.astype(np.float64)
    rid.x.scatter_forward()
    return rid
