"""Queries on the meshed current gmsh model: region volumes, areas, shared facets.

Used by the tests and by reports to check that a mesh matches its analytic geometry
and that touching regions share facets (conformal interfaces).
"""

from __future__ import annotations

import gmsh
import numpy as np


def physical_tags(name: str) -> tuple[int, list[int]]:
    """(dim, entity tags) of the physical group called ``name``; KeyError if absent."""
    for dim, tag in gmsh.model.getPhysicalGroups():
        if gmsh.model.getPhysicalName(dim, tag) == name:
            return dim, [int(e) for e in gmsh.model.getEntitiesForPhysicalGroup(dim, tag)]
    raise KeyError(name)


def physical_names(dim: int | None = None) -> list[str]:
    """Names of all physical groups (of dimension ``dim`` if given)."""
    return [gmsh.model.getPhysicalName(d, t) for d, t in gmsh.model.getPhysicalGroups()
            if dim is None or d == dim]


def _elements(dim: int, entities: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    tags, nodes = [], []
    for e in entities:
        types, etags, enodes = gmsh.model.mesh.getElements(dim, e)
        for et, tg, nd in zip(types, etags, enodes, strict=True):
            _, _, _, nn, _, _ = gmsh.model.mesh.getElementProperties(et)
            tags.append(tg)
            nodes.append(nd.astype(np.int64).reshape(-1, nn))
    return tags, nodes


def mesh_measure(name: str) -> float:
    """Volume [m^3] (area [m^2] for a surface group) of a physical group's mesh.

    Integrates the Jacobian determinant with Gauss points, so curved (order-2) elements
    are measured exactly up to quadrature.
    """
    dim, ents = physical_tags(name)
    total = 0.0
    for e in ents:
        for et in gmsh.model.mesh.getElementTypes(dim, e):
            _, _, order, _, _, _ = gmsh.model.mesh.getElementProperties(et)
            uvw, weights = gmsh.model.mesh.getIntegrationPoints(et, f"Gauss{2 * order}")
            _, dets, _ = gmsh.model.mesh.getJacobians(et, uvw, tag=e)
            dets = np.abs(np.asarray(dets)).reshape(-1, len(weights))
            total += float(np.sum(dets @ np.asarray(weights)))
    return total


def region_facets(name: str) -> set[tuple[int, int, int]]:
    """Boundary triangles (sorted corner-node triples) of a volume region's tets."""
    _, ents = physical_tags(name)
    _, nodes = _elements(3, ents)
    count: dict[tuple[int, int, int], int] = {}
    for conn in nodes:
        c = conn[:, :4]
        for f in ((0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)):
            for tri in np.sort(c[:, f], axis=1):
                key = (int(tri[0]), int(tri[1]), int(tri[2]))
                count[key] = count.get(key, 0) + 1
    return {k for k, v in count.items() if v == 1}


def shared_facets(a: str, b: str) -> int:
    """Number of mesh triangles shared by volume regions ``a`` and ``b`` (conformity)."""
    return len(region_facets(a) & region_facets(b))
