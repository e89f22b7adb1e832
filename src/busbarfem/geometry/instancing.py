"""Meshing by instancing: congruent pieces of a module are meshed once and copied.

A module repeats the same solids (cell bodies, terminal disks, weld nuggets, plates) at
translated positions. After the one ``occ.fragment`` of :mod:`busbarfem.geometry.assembly`
the model is still one conformal B-rep; this module

1. groups its surfaces and volumes into classes of translated copies (same OCC type,
   same area/volume, same vertices and centre of mass up to one translation),
2. makes every surface a periodic copy of its class's first member
   (``gmsh.model.mesh.setPeriodic``: the copy's surface mesh *is* the master's, shifted),
3. meshes in 3D only the first volume of each class (``Mesh.MeshOnlyVisible``) and
   copies its tetrahedra to the other members: interior nodes are translated and added,
   boundary nodes are looked up among the copy's (periodic, hence identical) surface
   nodes, so the copies share their faces' nodes with their neighbours and the mesh
   stays conformal.

A volume whose copy cannot be matched node for node (a surface that gmsh did not copy
exactly) is meshed by gmsh as usual, so the result is always a complete conformal mesh;
the summary says how many volumes were copied and how many meshed.
"""

from __future__ import annotations

import os
from collections import defaultdict

import gmsh
import numpy as np



ENABLED = os.environ.get("BUSBARFEM_INSTANCING", "1") not in ("", "0")
"""Cylindrical modules are meshed by instancing unless ``$BUSBARFEM_INSTANCING=0`` (the
opt-out: every volume meshed by gmsh, plates in one piece). Either way the mesh reaches the
solver by being written and read back (:func:`busbarfem.geometry.cache.round_trip`), so a
fresh and a cached mesh give bit-identical results. The flag is part of the cache key."""

TOL = 1e-7  # [m] coordinate tolerance for congruence (OCC's default tolerance)


def _points(dim: int, tag: int) -> np.ndarray:
    """Coordinates (k, 3) of the B-rep points bounding entity (dim, tag)."""
    if dim == 0:
        return np.asarray(gmsh.model.getValue(0, tag, []), float).reshape(1, 3)
    pts = gmsh.model.getBoundary([(dim, tag)], combined=False, oriented=False, recursive=True)
    tags = sorted({t for d, t in pts if d == 0})
    if not tags:
        return np.zeros((0, 3))
    return np.array([gmsh.model.getValue(0, t, []) for t in tags], float).reshape(-1, 3)


def congruence_classes(dim: int) -> list[list[tuple[int, np.ndarray]]]:
    """Classes of translated copies among the entities of dimension ``dim``.

    Two entities are copies when they have the same OCC type, the same number of B-rep
    points, masses within 1e-6 relative, and one translation (taken from the centres of
    mass, then refined on the matched points) carries every point and the centre of mass
    of one onto the other within :data:`TOL`.

    Returns:
        A list of classes, each ``[(tag, translation from the class's first member), ...]``
        with the first member (lowest tag) first, translation zero.
    """
    groups: dict = defaultdict(list)
    for _, tag in sorted(gmsh.model.getEntities(dim)):
        pts = _points(dim, tag)
        com = np.asarray(gmsh.model.occ.getCenterOfMass(dim, tag), float)
        mass = gmsh.model.occ.getMass(dim, tag)
        groups[(gmsh.model.getType(dim, tag), len(pts))].append((tag, pts, com, mass))
    out: list[list[tuple[int, np.ndarray]]] = []
    for members in groups.values():
        reps: list[tuple[tuple, list]] = []  # (representative, its class)
        for tag, pts, com, mass in members:
            for (_, rpts, rcom, rmass), cls in reps:
                if abs(mass - rmass) > 1e-6 * max(abs(mass), abs(rmass)):
                    continue
                t = com - rcom
                if len(pts):
                    d = np.linalg.norm((pts - t)[:, None, :] - rpts[None, :, :], axis=2)
                    j = d.argmin(axis=1)
                    if d[np.arange(len(pts)), j].max() > 100 * TOL or len(set(j)) != len(j):
                        continue
                    t = (pts - rpts[j]).mean(axis=0)
                    if np.abs(pts - rpts[j] - t).max() > TOL:
                        continue
                cls.append((tag, t))
                break
            else:
                cls = [(tag, np.zeros(3))]
                reps.append(((tag, pts, com, mass), cls))
                out.append(cls)
    return out


def _translation(t: np.ndarray) -> list[float]:
    return [1, 0, 0, float(t[0]), 0, 1, 0, float(t[1]), 0, 0, 1, float(t[2]), 0, 0, 0, 1]


def set_periodic_surfaces() -> int:
    """Make every surface a periodic copy of its congruence class's first member.

    Returns:
        The number of surfaces made copies.
    """
    n = 0
    for cls in congruence_classes(2):
        master = cls[0][0]
        for tag, t in cls[1:]:
            gmsh.model.mesh.setPeriodic(2, [tag], [master], _translation(t))
            n += 1
    return n


def _volume_mesh(tag: int):
    """(tet connectivity (n, 4) as node tags, interior node tags, their coords) of a volume."""
    etypes, _, enodes = gmsh.model.mesh.getElements(3, tag)
    conn = [nd.astype(np.int64).reshape(-1, 4) for et, nd in zip(etypes, enodes, strict=True)
            if et == 4]
    conn = np.concatenate(conn) if conn else np.zeros((0, 4), np.int64)
    ntags, coords, _ = gmsh.model.mesh.getNodes(3, tag, includeBoundary=False,
                                                 returnParametricCoord=False)
    return conn, ntags.astype(np.int64), coords.reshape(-1, 3)


def _boundary_nodes(tag: int) -> tuple[np.ndarray, np.ndarray]:
    """Node tags and coordinates on the boundary surfaces (with their curves/points) of a volume."""
    tags, xyz = [], []
    faces = gmsh.model.getBoundary([(3, tag)], combined=False, oriented=False)
    for _, f in faces:
        nt, c, _ = gmsh.model.mesh.getNodes(2, abs(f), includeBoundary=True,
                                            returnParametricCoord=False)
        tags.append(nt.astype(np.int64))
        xyz.append(c.reshape(-1, 3))
    if not tags:
        return np.zeros(0, np.int64), np.zeros((0, 3))
    tags_a, idx = np.unique(np.concatenate(tags), return_index=True)
    return tags_a, np.concatenate(xyz)[idx]


class _SurfaceNodes:
    """All nodes of the mesh so far (surfaces and meshed masters), for coordinate look-up.

    Built after the last ``generate`` call: gmsh renumbers the nodes at its end.
    """

    def __init__(self) -> None:
        from scipy.spatial import cKDTree

        tags, xyz, _ = gmsh.model.mesh.getNodes(returnParametricCoord=False)
        self.tags = tags.astype(np.int64)
        self.tree = cKDTree(xyz.reshape(-1, 3))


class _Master:
    """A meshed class master: its tets, interior nodes and boundary nodes."""

    def __init__(self, tag: int) -> None:
        self.conn, self.inner_tags, self.inner_xyz = _volume_mesh(tag)
        self.btags, self.bxyz = _boundary_nodes(tag)
        old = np.concatenate([self.btags, self.inner_tags])
        order = np.argsort(old)
        pos = np.searchsorted(old[order], self.conn.ravel())
        ok = len(old) and np.all(pos < len(old)) and np.all(old[order][np.minimum(pos, len(old) - 1)]
                                                            == self.conn.ravel())
        # connectivity as indices into [boundary nodes, interior nodes]
        self.local = order[pos] if ok else None


def copy_volume_mesh(master: _Master, slave: int, t: np.ndarray, nodes: _SurfaceNodes,
                     tol: float, next_tags: list[int], pending: list) -> bool | None:
    """Copy the tetrahedra of a meshed ``master`` volume into ``slave`` = master + ``t``.

    Boundary nodes are matched to the existing surface nodes (the slave's surfaces are
    periodic copies of the master's, so they sit at the translated positions); interior
    nodes are added. Returns False (nothing added) when a boundary node has no
    counterpart within ``tol``, None when gmsh already meshed the slave itself.
    ``next_tags`` = [first free node tag], advanced here. The
    elements are appended to ``pending`` as ``(slave, tags, nodes)``: adding them after
    all nodes lets gmsh build its node look-up once, not once per copy.
    """
    if master.local is None or len(master.conn) == 0:
        return False
    if any(len(e) for e in gmsh.model.mesh.getElements(3, slave)[1]):
        return None  # gmsh meshed it already (visibility is only a hint to its 3D mesher)
    dist, idx = nodes.tree.query(master.bxyz + t, distance_upper_bound=tol)
    if not np.all(np.isfinite(dist)) or len(np.unique(idx)) != len(idx):
        return False
    first = next_tags[0]
    new_inner = np.arange(first, first + len(master.inner_tags), dtype=np.int64)
    new = np.concatenate([nodes.tags[idx], new_inner])
    if len(new_inner):
        gmsh.model.mesh.addNodes(3, slave, new_inner, (master.inner_xyz + t).ravel())
    pending.append((slave, [], new[master.local]))  # gmsh numbers them (faster than given tags)
    next_tags[0] += len(new_inner)
    return True


def mesh_instanced(generate_3d) -> dict:
    """Mesh the current (fragmented, sized) model by instancing.

    Args:
        generate_3d: callable meshing the visible, empty volumes in 3D with the case's
            algorithm (and its sliver repair); called once with only the class masters
            visible, and once more, all visible, for volumes whose copy failed.

    Returns:
        A summary: surfaces copied, volume classes, volumes copied and meshed.
    """
    import time

    c0 = time.process_time()
    n_periodic = set_periodic_surfaces()
    c1 = time.process_time()
    gmsh.model.mesh.generate(2)
    c2 = time.process_time()
    classes = congruence_classes(3)
    masters = {cls[0][0] for cls in classes}
    vols = [t for _, t in gmsh.model.getEntities(3)]
    others = [(3, v) for v in vols if v not in masters]
    xmin, ymin, zmin, xmax, ymax, zmax = gmsh.model.getBoundingBox(-1, -1)
    scale = max(xmax - xmin, ymax - ymin, zmax - zmin)
    gmsh.option.setNumber("Mesh.MeshOnlyVisible", 1)
    try:
        if others:
            gmsh.model.setVisibility(others, 0, recursive=False)
        out = generate_3d()
    finally:
        if others:
            gmsh.model.setVisibility(others, 1, recursive=False)
        gmsh.option.setNumber("Mesh.MeshOnlyVisible", 0)
    c3 = time.process_time()
    nodes = _SurfaceNodes()  # after meshing: gmsh renumbers the nodes in generate()
    copied = failed = 0
    pending: list = []
    next_tags = [int(gmsh.model.mesh.getMaxNodeTag()) + 1]
    tol = 1e-9 * max(scale, 1e-3)
    for cls in classes:
        if len(cls) < 2:
            continue
        master = _Master(cls[0][0])
        for tag, t in cls[1:]:
            done = copy_volume_mesh(master, tag, t, nodes, tol, next_tags, pending)
            if done:
                copied += 1
            elif done is not None:
                failed += 1
    for slave, etags, conn in pending:
        gmsh.model.mesh.addElementsByType(slave, 4, etags, conn)
    # dense 1..N tags, as gmsh leaves them after generate() (DOLFINx's reader needs them)
    gmsh.model.mesh.renumberNodes()
    gmsh.model.mesh.renumberElements()
    c4 = time.process_time()
    if failed:
        gmsh.option.setNumber("Mesh.MeshOnlyEmpty", 1)
        try:
            gmsh.model.mesh.generate(3)
        finally:
            gmsh.option.setNumber("Mesh.MeshOnlyEmpty", 0)
    out["instancing"] = {"periodic_surfaces": n_periodic, "volume_classes": len(classes),
                         "volumes": len(vols), "copied_volumes": copied,
                         "meshed_volumes": len(vols) - copied,
                         "cpu_s": {"classes": round(c1 - c0, 3), "mesh_2d": round(c2 - c1, 3),
                                   "mesh_3d_masters": round(c3 - c2, 3), "copy": round(c4 - c3, 3),
                                   "mesh_3d_failed": round(time.process_time() - c4, 3)}}
    return out
