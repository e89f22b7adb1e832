"""Meshing by instancing: copied volumes are exact translated copies and the mesh stays conformal."""

from __future__ import annotations

import gmsh
import numpy as np
import pytest

from busbarfem.case.geometry import CylindricalCell, Geometry, MeshOptions, Module
from busbarfem.geometry import generate_model
from busbarfem.geometry.inspect import mesh_measure

SMALL_CELL = CylindricalCell(preset="custom", radius=0.006, height=0.02)
COARSE = MeshOptions(size=0.005, curvature_elements=24)


@pytest.fixture(autouse=True)
def _instancing_on(monkeypatch):
    """Instancing is on by default (opt-out ``BUSBARFEM_INSTANCING=0``); these tests exercise it."""
    from busbarfem.geometry import instancing

    monkeypatch.setattr(instancing, "ENABLED", True)


def _tets():
    tags, xyz, _ = gmsh.model.mesh.getNodes()
    pos = np.zeros((int(tags.max()) + 1, 3))
    pos[tags.astype(np.int64)] = xyz.reshape(-1, 3)
    _, nodes = gmsh.model.mesh.getElementsByType(4)
    return pos, nodes.astype(np.int64).reshape(-1, 4)


def _region_nodes(name: str, pos: np.ndarray) -> np.ndarray:
    tag = next(t for d, t in gmsh.model.getPhysicalGroups(3) if gmsh.model.getPhysicalName(3, t) == name)
    out = []
    for v in gmsh.model.getEntitiesForPhysicalGroup(3, tag):
        _, _, nd = gmsh.model.mesh.getElements(3, int(v))
        out.append(pos[np.unique(nd[0].astype(np.int64))])
    c = np.concatenate(out)
    return c[np.lexsort(np.round(c / 1e-9).T[::-1])]


def test_instanced_module_is_conformal_and_copies_are_translations(gmsh_session, monkeypatch):
    from busbarfem.geometry import cache

    # the model's outer OCC surface, measured before the mesh is written and read back
    # (the read-back model is discrete: it has no OCC surfaces left)
    outer_occ = []

    def round_trip(*args, **kwargs):
        outer_occ.append(sum(gmsh.model.occ.getMass(2, s) for _, s in gmsh.model.getEntities(2)
                             if len(gmsh.model.getAdjacencies(2, s)[0]) == 1))
        return original(*args, **kwargs)

    original = cache.round_trip
    monkeypatch.setattr(cache, "round_trip", round_trip)
    info = generate_model(Geometry(module=Module(series=2, parallel=2, cell=SMALL_CELL)), COARSE)
    inst = info.parameters["algorithm"]["instancing"]
    assert inst["copied_volumes"] > inst["meshed_volumes"] > 0
    pos, tets = _tets()
    # a copy's nodes are its master's shifted by the cell pitch in y (row 2 = row 1 + py)
    py = info.parameters["builders"]["module"]["pitch"][1]
    a, b = _region_nodes("cell_1_1", pos), _region_nodes("cell_1_2", pos)
    assert a.shape == b.shape
    assert np.abs(a + [0.0, py, 0.0] - b).max() < 1e-9
    # conformal: the faces used by one tet only make up exactly the model's outer surface
    faces = np.sort(np.concatenate([tets[:, [1, 2, 3]], tets[:, [0, 2, 3]], tets[:, [0, 1, 3]],
                                    tets[:, [0, 1, 2]]]), axis=1)
    uniq, counts = np.unique(faces, axis=0, return_counts=True)
    assert counts.max() == 2
    once = uniq[counts == 1]
    p = pos[once]
    area = 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1).sum()
    (outer,) = outer_occ
    assert area == pytest.approx(outer, rel=5e-3)  # faceted cylinders: 0.25 % smaller
    # no two nodes at one place (a copy that made its own interface nodes would leave pairs)
    from scipy.spatial import cKDTree

    used = np.unique(tets)
    assert not cKDTree(pos[used]).query_pairs(1e-9)
    for name in info.volume_names():
        assert mesh_measure(name) == pytest.approx(info.volumes[name], rel=0.01), name


def _mesh_arrays():
    tags, xyz, _ = gmsh.model.mesh.getNodes()
    order = np.argsort(tags)
    _, etags, enodes = gmsh.model.mesh.getElements(3)
    return tags[order], xyz.reshape(-1, 3)[order], [np.asarray(e) for e in etags], [np.asarray(n) for n in enodes]


def test_fresh_cached_and_uncached_meshes_are_bit_identical(gmsh_session, tmp_path):
    """The solver sees the same mesh whether it was just made, read from the cache, or not cached.

    A fresh mesh is written and read back the way a cached one is. Before, the written
    file kept gmsh's ``$Periodic`` section and gmsh's reader recomputed the periodic copies'
    nodes from their masters (an ulp off, in a memory-dependent order), so the fresh and
    cached meshes of an instanced module differed and the results by ~1e-10 V."""
    from busbarfem.geometry.assembly import new_gmsh_model

    geo = Geometry(module=Module(series=2, parallel=2, cell=SMALL_CELL))
    runs = []
    for cache_dir, mesh in ((tmp_path, COARSE), (tmp_path, COARSE), (None, COARSE.model_copy(update={"cache": False}))):
        new_gmsh_model("m")
        info = generate_model(geo, mesh, cache_dir=cache_dir)
        runs.append((info.parameters["cache"]["hit"], _mesh_arrays()))
    assert [hit for hit, _ in runs] == [False, True, False]
    assert runs[0][1][0].size > 1000
    for _, arrays in runs[1:]:
        ref = runs[0][1]
        assert np.array_equal(arrays[0], ref[0]) and np.array_equal(arrays[1], ref[1])  # exact, not approx
        assert all(np.array_equal(a, b) for a, b in zip(arrays[2], ref[2]))
        assert all(np.array_equal(a, b) for a, b in zip(arrays[3], ref[3]))
    (msh,) = tmp_path.glob("*.msh")
    assert b"\n$Periodic\n" not in msh.read_bytes()
