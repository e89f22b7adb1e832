"""Mesh-quality summary of the current gmsh model (tetrahedra only)."""

from __future__ import annotations

import gmsh
import numpy as np


def _tet_corners() -> tuple[np.ndarray, np.ndarray]:
    """Corner-node coordinates (n, 4, 3) of all tets (linear or quadratic) and their tags."""
    node_tags, coords, _ = gmsh.model.mesh.getNodes()
    xyz = np.zeros((int(node_tags.max()) + 1 if len(node_tags) else 1, 3))
    xyz[node_tags.astype(np.int64)] = coords.reshape(-1, 3)
    corners, tags = [], []
    types, etags, enodes = gmsh.model.mesh.getElements(3)
    for et, tg, nd in zip(types, etags, enodes, strict=True):
        _, dim, _, nnodes, _, _ = gmsh.model.mesh.getElementProperties(et)
        if dim != 3 or nnodes not in (4, 10):
            continue
        conn = nd.astype(np.int64).reshape(-1, nnodes)[:, :4]
        corners.append(xyz[conn])
        tags.append(tg)
    if not corners:
        return np.zeros((0, 4, 3)), np.zeros(0, dtype=np.uint64)
    return np.concatenate(corners), np.concatenate(tags)


def dihedral_angles(tets: np.ndarray) -> np.ndarray:
    """The six dihedral angles [deg] of each tet in ``tets`` (n, 4, 3)."""
    faces = [(1, 2, 3), (0, 2, 3), (0, 1, 3), (0, 1, 2)]  # face k is opposite vertex k
    normals = []
    for k, (a, b, c) in enumerate(faces):
        n = np.cross(tets[:, b] - tets[:, a], tets[:, c] - tets[:, a])
        # orient outward: away from the opposite vertex
        sign = np.sign(np.einsum("ij,ij->i", n, tets[:, a] - tets[:, k]))
        normals.append(n * sign[:, None] / np.linalg.norm(n, axis=1)[:, None])
    angles = []
    for i in range(4):
        for j in range(i + 1, 4):
            cosang = -np.einsum("ij,ij->i", normals[i], normals[j])
            angles.append(np.degrees(np.arccos(np.clip(cosang, -1, 1))))
    return np.stack(angles, axis=1)


def mesh_quality() -> dict:
    """Quality summary of the current model's tetrahedra.

    Returns:
        ``{"elements": n_tets, "min_dihedral_deg", "max_dihedral_deg", "min_gamma",
        "mean_gamma", "max_aspect"}`` where gamma is gmsh's inscribed/circumscribed radius
        ratio (1 for a regular tet) and aspect = max edge / (2 sqrt(6) inradius), 1 for a
        regular tet.
    """
    tets, tags = _tet_corners()
    if len(tets) == 0:
        return {"elements": 0}
    ang = dihedral_angles(tets)
    gamma = np.asarray(gmsh.model.mesh.getElementQualities(tags, "gamma"))
    inner = np.asarray(gmsh.model.mesh.getElementQualities(tags, "innerRadius"))
    edges = [tets[:, j] - tets[:, i] for i in range(4) for j in range(i + 1, 4)]
    lmax = np.max(np.stack([np.linalg.norm(e, axis=1) for e in edges], axis=1), axis=1)
    aspect = lmax / (2 * np.sqrt(6) * np.maximum(inner, 1e-300))
    return {
        "elements": int(len(tets)),
        "min_dihedral_deg": float(ang.min()),
        "max_dihedral_deg": float(ang.max()),
        "min_gamma": float(gamma.min()),
        "mean_gamma": float(gamma.mean()),
        "max_aspect": float(aspect.max()),
    }


def volume_min_dihedral() -> dict[int, float]:
    """Minimum dihedral angle [deg] of the (linear) tetrahedra of each meshed volume entity."""
    node_tags, coords, _ = gmsh.model.mesh.getNodes()
    if len(node_tags) == 0:
        return {}
    xyz = np.zeros((int(node_tags.max()) + 1, 3))
    xyz[node_tags.astype(np.int64)] = coords.reshape(-1, 3)
    out = {}
    for _, v in gmsh.model.getEntities(3):
        types, _, enodes = gmsh.model.mesh.getElements(3, v)
        mins = []
        for et, nd in zip(types, enodes, strict=True):
            _, dim, _, nnodes, _, _ = gmsh.model.mesh.getElementProperties(et)
            if dim == 3 and nnodes in (4, 10) and len(nd):
                mins.append(dihedral_angles(xyz[nd.astype(np.int64).reshape(-1, nnodes)[:, :4]]).min())
        if mins:
            out[int(v)] = float(min(mins))
    return out
