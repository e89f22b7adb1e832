"""XDMF field output (ParaView: open with the "Xdmf3 Reader (Top Level Partition)").

The mesh is written once; each output time appends phi (phi1/phi2), T, |J|, the current
density vector J, the Joule/Bernardi heat density q and the region id.

Crash safety: DOLFINx rewrites the ``.xdmf`` XML in place after every
``write_function`` while the ``.h5`` file is still open, so a run killed at the wrong
moment can leave a truncated XML, or an XML that names datasets whose HDF5 metadata was
never flushed. The writer therefore lets DOLFINx write its XML into a hidden work folder
(``.fields.partial/fields.xdmf``, whose ``fields.h5`` is a symlink to the real
``fields.h5``), closes the HDF5 file (which flushes it), and only then publishes the XML
by an atomic rename onto ``fields.xdmf`` (declaring the 8-byte precision of the data, which
DOLFINx leaves out, so ParaView reads doubles instead of rounding to float32). A run killed at any moment leaves a
``fields.xdmf`` that is complete and names only flushed data: every step up to the last
completed write.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import dolfinx_solver  # noqa: F401
import numpy as np

from dolfinx import fem, io


class FieldWriter:
    """Incremental, crash-safe XDMF writer of the solution fields.

    Args:
        comm: MPI communicator of the mesh.
        msh: the mesh (written once).
        path: the ``fields.xdmf`` path (``fields.h5`` goes beside it).
        fields: name -> (Function to write, callable that refreshes it before a write).
    """

    def __init__(self, comm, msh, path: Path, fields: dict):
        self.comm = comm
        self.path = Path(path)
        self.h5_path = self.path.with_suffix(".h5")
        self.work = self.path.parent / f".{self.path.stem}.partial"
        self.fields = fields
        if comm.rank == 0:
            for p in (self.path, self.h5_path):
                if p.exists() or p.is_symlink():
                    p.unlink()
        self._prepare_work(restore=False)
        with io.XDMFFile(comm, str(self.work / self.path.name), "w") as f:
            f.write_mesh(msh)
        self._publish()
        self.count = 0

    def _prepare_work(self, restore: bool) -> None:
        """Recreate the work folder (XML copy + symlink to the real .h5) on rank 0."""
        if self.comm.rank == 0:
            if self.work.exists():
                shutil.rmtree(self.work)
            self.work.mkdir(parents=True)
            (self.work / self.h5_path.name).symlink_to(Path("..") / self.h5_path.name)
            if restore:
                shutil.copyfile(self.path, self.work / self.path.name)
        self.comm.barrier()

    def _publish(self) -> None:
        """Atomically replace ``fields.xdmf`` by the work XML (HDF5 already closed)."""
        if self.comm.rank == 0:
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            xml = (self.work / self.path.name).read_text()
            tmp.write_text(_declare_precision(xml))
            os.replace(tmp, self.path)
            shutil.rmtree(self.work)
        self.comm.barrier()

    def write(self, t: float) -> None:
        """Refresh and append every field at time ``t``."""
        for fn, refresh in self.fields.values():
            if refresh is not None:
                refresh()
        self._prepare_work(restore=True)
        with io.XDMFFile(self.comm, str(self.work / self.path.name), "a") as f:
            for fn, _ in self.fields.values():
                f.write_function(fn, t)
        self._publish()
        self.count += 1


def _declare_precision(xml: str) -> str:
    """Declare ``NumberType``/``Precision="8"`` on HDF data items that lack them.

    DOLFINx stores float64/int64 data but does not say so; XDMF readers then assume 4-byte
    numbers, and ParaView (Xdmf3ReaderT) shows every field rounded to single precision.
    """
    def fix(m: re.Match) -> str:
        tag = m[0][:-1]
        if "NumberType=" not in tag:
            tag += ' NumberType="Float"'
        if "Precision=" not in tag:
            tag += ' Precision="8"'
        return tag + ">"

    return _DATAITEM.sub(fix, xml)


_DATAITEM = re.compile(r'<DataItem\b[^>]*Format="HDF"[^>]*>')


def interpolator(target: fem.Function, expr):
    """A callable that interpolates the UFL ``expr`` into ``target`` (compiled once)."""
    e = fem.Expression(expr, target.function_space.element.interpolation_points)

    def refresh():
        target.interpolate(e)
        target.x.scatter_forward()

    return refresh


def region_id_function(bundle) -> fem.Function:
    """DG0 function holding each cell's volume-region tag."""
    Q0 = fem.functionspace(bundle.mesh, ("DG", 0))
    rid = fem.Function(Q0, name="region_id")
    ct = bundle.cell_tags
    rid.x.array[ct.indices] = ct.values.astype(np.float64)
    rid.x.scatter_forward()
    return rid
