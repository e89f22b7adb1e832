"""Hand-built box geometries for MSMD verification, independent of the geometry builders.

A test can say exactly which region carries which field, so the electrical coupling is
checked on its own (the builders are checked separately in tests/unit/test_geometry*).
"""

from __future__ import annotations

import dolfinx_solver  # noqa: F401
import gmsh
import numpy as np
from mpi4py import MPI

import dolfinx

from busbarfem.mesh import MeshBundle
from busbarfem.naming import GeometryInfo, RegionInfo


def box_bundle(comm, boxes: list[dict], terminals: dict, size: float, rank_of=None) -> MeshBundle:
    """Mesh axis-aligned boxes into a conformal model with named regions.

    Args:
        boxes: dicts with ``name``, ``lo``, ``hi`` (xyz), and RegionInfo fields
            (``kind``, ``material``, ``field``, ``stage``, ``parallel``).
        terminals: ``{"terminal_pos": (box name, side), "terminal_neg": ...}`` with side one of
            ``xmin, xmax, ymin, ymax, zmin, zmax``.
        size: element size [m].
        rank_of: optional ``rank_of(centroids (n, 3), nranks) -> ranks (n,)``: the partition
            of the cells by their centroids (default: DOLFINx's graph partitioner).
    """
    info = GeometryInfo()
    for b in boxes:
        info.add(RegionInfo(name=b["name"], dim=3, material=b.get("material"), kind=b.get("kind", "conductor"),
                            field=b.get("field", 1), stage=b.get("stage"), parallel=b.get("parallel")))
    for t in terminals:
        info.add(RegionInfo(name=t, dim=2, kind="surface", field=None))
    if comm.rank == 0:
        gmsh.initialize(interruptible=False)
        gmsh.option.restoreDefaults()  # options set by earlier meshing in this process
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("boxes")
        occ = gmsh.model.occ
        tags = []
        for b in boxes:
            lo, hi = np.asarray(b["lo"]), np.asarray(b["hi"])
            tags.append(occ.addBox(*lo, *(hi - lo)))
        out, out_map = occ.fragment([(3, t) for t in tags], [])
        occ.synchronize()
        for b, m in zip(boxes, out_map):
            gmsh.model.addPhysicalGroup(3, [e[1] for e in m], name=b["name"])
        for tname, (bname, side) in terminals.items():
            b = next(x for x in boxes if x["name"] == bname)
            lo, hi = np.asarray(b["lo"]), np.asarray(b["hi"])
            axis = "xyz".index(side[0])
            a, bb = lo.copy(), hi.copy()
            a[axis] = bb[axis] = hi[axis] if side.endswith("max") else lo[axis]
            eps = 1e-6
            ents = gmsh.model.getEntitiesInBoundingBox(*(a - eps), *(bb + eps), 2)
            gmsh.model.addPhysicalGroup(2, [e[1] for e in ents], name=tname)
        gmsh.option.setNumber("Mesh.MeshSizeMax", size)
        gmsh.model.mesh.generate(3)
    partitioner = None
    if rank_of is not None and comm.size > 1:
        x = dolfinx.io.gmsh.extract_geometry(gmsh.model) if comm.rank == 0 else np.zeros((0, 3))

        def partitioner(comm_, nparts, cell_types, cells):
            verts = np.asarray(cells[0], dtype=np.int64).reshape(-1, 4)  # P1 tets: input node indices
            dest = np.asarray(rank_of(x[verts].mean(axis=1), nparts), dtype=np.int32) if len(verts) else \
                np.zeros(0, np.int32)
            return dolfinx.graph.adjacencylist(dest)._cpp_object
    md = dolfinx.io.gmsh.model_to_mesh(gmsh.model, comm, 0, gdim=3, partitioner=partitioner)
    if comm.rank == 0:
        gmsh.finalize()
    tags = {n: int(pg.tag) for n, pg in md.physical_groups.items()}
    return MeshBundle(mesh=md.mesh, cell_tags=md.cell_tags, facet_tags=md.facet_tags,
                      regions=info.regions, tags=tags, info=info)
