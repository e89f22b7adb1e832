"""``busbarfem.mesh.gmsh_to_mesh`` gives DOLFINx's ``model_to_mesh`` mesh, partition and tags.

busbarfem converts the Gmsh model itself (cell tags from each cell's input index instead of
DOLFINx's matching of every cell by its vertices; the element arrays gathered in one pass).
Compared here, on every rank, against ``dolfinx.io.gmsh.model_to_mesh`` on the same Gmsh
model: node coordinates, cell-node lists, the owned/ghost sizes, and the cell and facet tags
entry for entry. Runs serially in the main suite and on 2 ranks in the MPI tier.
"""

from __future__ import annotations

from pathlib import Path

import dolfinx_solver  # noqa: F401  (before mpi4py)
import numpy as np
import pytest
from mpi4py import MPI

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("example, overrides", [
    ("module_1s4p_welds.yaml", []),             # cells, welds, tabs, busbars: many volumes and surfaces
    ("busbar_l_bolted.yaml", ["mesh.order=2"]),  # curved 10-node tets and 6-node facets
])
def test_gmsh_to_mesh_equals_model_to_mesh(example, overrides):
    import gmsh

    import dolfinx.io.gmsh as dgmsh

    from busbarfem.case.loader import load_case
    from busbarfem.geometry import generate_model
    from busbarfem.geometry.assembly import new_gmsh_model
    from busbarfem.mesh import gmsh_to_mesh

    comm = MPI.COMM_WORLD
    case, _src = load_case(ROOT / "examples" / example, overrides)
    if comm.rank == 0:
        new_gmsh_model(case.name)
        generate_model(case.geometry, case.mesh, None)
    try:
        ours = gmsh_to_mesh(gmsh.model, comm)
        ref = dgmsh.model_to_mesh(gmsh.model, comm, 0, gdim=3)
    finally:
        if comm.rank == 0:
            gmsh.clear()
    m, r = ours.mesh, ref.mesh
    tdim = r.topology.dim
    assert m.geometry.cmaps[0].degree == r.geometry.cmaps[0].degree == (2 if overrides else 1)
    imap_m, imap_r = m.topology.index_map(tdim), r.topology.index_map(tdim)
    assert (imap_m.size_local, imap_m.num_ghosts) == (imap_r.size_local, imap_r.num_ghosts)
    assert imap_m.size_global == imap_r.size_global > 1000
    np.testing.assert_array_equal(m.geometry.x, r.geometry.x)
    np.testing.assert_array_equal(m.geometry.dofmaps[0], r.geometry.dofmaps[0])
    np.testing.assert_array_equal(m.topology.original_cell_index, r.topology.original_cell_index)
    assert ours.physical_groups == ref.physical_groups
    # the same connectivities exist afterwards (later code relies on, e.g., cell-to-cell)
    def exists(topology, i, j):
        try:
            return topology.connectivity(i, j) is not None
        except RuntimeError:  # "has not been computed"
            return False

    have = [[(exists(m.topology, i, j), exists(r.topology, i, j)) for j in range(tdim + 1)]
            for i in range(tdim + 1)]
    assert all(a == b for row in have for a, b in row), have
    for name in ("cell_tags", "facet_tags"):
        a, b = getattr(ours, name), getattr(ref, name)
        assert a.dim == b.dim
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.values, b.values)
    # the tags are not trivial: several volumes and surfaces, every cell tagged
    ncell_tags = comm.allreduce(len(np.unique(ours.cell_tags.values)), op=MPI.MAX)
    assert ncell_tags >= 2
    assert len(ours.cell_tags.indices) == imap_m.size_local + imap_m.num_ghosts
    assert comm.allreduce(len(ours.facet_tags.indices), op=MPI.SUM) > 0
