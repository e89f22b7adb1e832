"""Per-region integrals and field extrema with their location and region name (MPI-safe)."""

from __future__ import annotations

import dolfinx_solver  # noqa: F401
import numpy as np
import ufl
from mpi4py import MPI

from dolfinx import fem, la

from busbarfem.mesh import MeshBundle


class RegionIntegrator:
    """Integrates a UFL density over every volume region in one vector assembly.

    The density is integrated against the DG0 test function, so one assembly gives
    the integral over every cell; the cells are then summed by region tag.
    """

    def __init__(self, bundle: MeshBundle, density):
        self.bundle = bundle
        self.Q0 = fem.functionspace(bundle.mesh, ("DG", 0))
        v = ufl.TestFunction(self.Q0)
        self.form = fem.form(density * v * ufl.dx(domain=bundle.mesh))
        imap = bundle.mesh.topology.index_map(bundle.mesh.topology.dim)
        self.nlocal = imap.size_local
        self.names = bundle.volume_names()
        ct = bundle.cell_tags
        # owned cells of every region, resolved once (by_region runs every time step)
        self._cells = [c[c < self.nlocal] for c in (ct.find(bundle.tags[n]) for n in self.names)]

    def per_cell(self) -> np.ndarray:
        """Integral over each owned cell."""
        vec = fem.assemble_vector(self.form)
        vec.scatter_reverse(la.InsertMode.add)
        return vec.array[: self.nlocal].copy()

    def by_region(self) -> dict[str, float]:
        """Integral over every volume region (global sums, same on all ranks)."""
        vals = self.per_cell()
        out = [float(vals[cells].sum()) for cells in self._cells]
        tot = self.bundle.comm.allreduce(np.asarray(out), op=MPI.SUM)
        return {n: float(x) for n, x in zip(self.names, tot)}


def _cell_region_names(bundle: MeshBundle) -> np.ndarray:
    """Region name of every local cell (object array)."""
    imap = bundle.mesh.topology.index_map(bundle.mesh.topology.dim)
    n = imap.size_local + imap.num_ghosts
    names = np.full(n, "", dtype=object)
    inv = {t: nm for nm, t in bundle.tags.items() if bundle.regions[nm].dim == 3}
    ct = bundle.cell_tags
    for idx, tag in zip(ct.indices, ct.values):
        names[idx] = inv.get(int(tag), "")
    return names


def extremum(bundle: MeshBundle, fn: fem.Function, kind: str = "max") -> dict:
    """Global max/min of a scalar Function's dof values with coordinates and region.

    Works for nodal (Lagrange) and cellwise (DG0) functions; ties go to the lowest rank.
    """
    V = fn.function_space
    comm = bundle.comm
    nown = V.dofmap.index_map.size_local
    vals = fn.x.array[:nown]
    if len(vals):
        i = int(np.argmax(vals) if kind == "max" else np.argmin(vals))
        best = float(vals[i])
    else:
        i, best = -1, (-np.inf if kind == "max" else np.inf)
    allbest = comm.allgather(best)
    winner = int(np.argmax(allbest) if kind == "max" else np.argmin(allbest))
    info = None
    if comm.rank == winner:
        coords = V.tabulate_dof_coordinates()[i]
        # region of an adjacent cell: find a cell whose dofs include i
        names = _cell_region_names(bundle)
        hits = np.argwhere(V.dofmap.list == i)
        region = str(names[hits[0, 0]]) if len(hits) else ""
        info = {"value": best, "x": [float(c) for c in coords], "region": region}
    return comm.bcast(info, root=winner)
