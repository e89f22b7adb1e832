"""XDMF field output (ParaView: open with the "Xdmf3 Reader (Top Level Partition)").

The mesh is written once; each output time appends phi (phi1/phi2), T, |J|, the current
density vector J, the Joule/Bernardi heat density q and the region id. The file is closed
and reopened in append mode around every write, so a run killed mid-way leaves a valid
``fields.xdmf``/``fields.h5`` pair up to its last completed write.
"""

from __future__ import annotations

from pathlib import Path

import dolfinx_solver  # noqa: F401
import numpy as np

from dolfinx import fem, io


class FieldWriter:
    """Incremental XDMF writer of the solution fields.

    Args:
        path: the ``fields.xdmf`` path (``fields.h5`` goes beside it).
        fields: name -> (Function to write, callable that refreshes it before a write).
    """

    def __init__(self, comm, msh, path: Path, fields: dict):
        self.comm = comm
        self.path = Path(path)
        self.fields = fields
        with io.XDMFFile(comm, str(self.path), "w") as f:
            f.write_mesh(msh)
        self.count = 0

    def write(self, t: float) -> None:
        """Refresh and append every field at time ``t``."""
        for fn, refresh in self.fields.values():
            if refresh is not None:
                refresh()
        with io.XDMFFile(self.comm, str(self.path), "a") as f:
            for fn, _ in self.fields.values():
                f.write_function(fn, t)
        self.count += 1


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
