"""Busbar and bolt solids: a strip swept along a centre-line path, and posts through it.

The strip outline is built directly in 2D (offset polylines joined by concentric arcs
at every bend, or mitred corners for ``fillet_radius = 0``), then extruded along z.
Building the outline ourselves instead of filleting a 3D union keeps the fillet radii
exact and the analytic area simple: area = centre-line length x width.
"""

from __future__ import annotations

import math

import gmsh
import numpy as np

from busbarfem.case.geometry import Bolt, Busbar, path_turns
from busbarfem.geometry.assembly import (
    PRIORITY_INSERT,
    PRIORITY_SHEET,
    Assembly,
    FaceSelector,
    Feature,
    Part,
    curve_is_circle_at,
    curve_is_vertical_line_at,
)
from busbarfem.naming import RegionInfo


def _left_normal(d: np.ndarray) -> np.ndarray:
    return np.array([-d[1], d[0]])


def strip_outline(
    path: list[tuple[float, float]], width: float, fillet_radius: float
) -> tuple[list, list, list[tuple]]:
    """Left and right edges of a strip and its bend features.

    Args:
        path: centre-line polyline [m].
        width: strip width [m].
        fillet_radius: inner-edge bend radius [m] (0 = mitred corner).

    Returns:
        ``(left, right, bends)``: each edge is a list of items ``("pt", xy)`` or
        ``("arc", start_xy, centre_xy, end_xy)`` from the first to the last path point;
        ``bends`` lists ``(kind, xy, radius)`` with kind ``"arc"`` (centre, inner radius)
        or ``"corner"`` (inner corner point, 0).
    """
    pts = np.asarray(path, dtype=float)
    dirs = [(pts[i + 1] - pts[i]) / np.linalg.norm(pts[i + 1] - pts[i]) for i in range(len(pts) - 1)]
    h = width / 2
    left: list = [("pt", pts[0] + h * _left_normal(dirs[0]))]
    right: list = [("pt", pts[0] - h * _left_normal(dirs[0]))]
    bends: list[tuple] = []
    for i, theta in enumerate(path_turns(path), start=1):
        if abs(theta) < 1e-9:
            continue
        d1, d2, p = dirs[i - 1], dirs[i], pts[i]
        s = 1.0 if theta > 0 else -1.0
        if fillet_radius == 0:
            miter = _left_normal(d1) + _left_normal(d2)
            offset = h * miter / (1 + math.cos(theta))
            left.append(("pt", p + offset))
            right.append(("pt", p - offset))
            bends.append(("corner", tuple(p + s * offset), 0.0))
        else:
            rc = fillet_radius + h
            t = rc * math.tan(abs(theta) / 2)
            t1, t2 = p - t * d1, p + t * d2
            c = t1 + s * rc * _left_normal(d1)
            left.append(("arc", t1 + h * _left_normal(d1), c, t2 + h * _left_normal(d2)))
            right.append(("arc", t1 - h * _left_normal(d1), c, t2 - h * _left_normal(d2)))
            bends.append(("arc", tuple(c), fillet_radius))
    left.append(("pt", pts[-1] + h * _left_normal(dirs[-1])))
    right.append(("pt", pts[-1] - h * _left_normal(dirs[-1])))
    return left, right, bends


def _occ_strip_surface(left: list, right: list, z: float) -> int:
    """OCC plane surface bounded by the strip edges at height ``z``; returns its tag."""
    occ = gmsh.model.occ
    # Walk the left edge forward and the right edge backward: one closed loop.
    seq: list = []
    for item in left:
        seq.append(item)
    for item in reversed(right):
        if item[0] == "arc":
            seq.append(("arc", item[3], item[2], item[1]))
        else:
            seq.append(item)

    def point(xy) -> int:
        return occ.addPoint(float(xy[0]), float(xy[1]), z)

    # Flatten into a vertex list with arc markers between consecutive vertices.
    verts: list[int] = []
    arcs: dict[int, int] = {}  # index of the arc's start vertex -> centre tag
    for item in seq:
        if item[0] == "pt":
            verts.append(point(item[1]))
        else:
            verts.append(point(item[1]))
            arcs[len(verts) - 1] = point(item[2])
            verts.append(point(item[3]))
    curves = []
    n = len(verts)
    for k in range(n):
        a, b = verts[k], verts[(k + 1) % n]
        if k in arcs:
            curves.append(occ.addCircleArc(a, arcs[k], b))
        else:
            curves.append(occ.addLine(a, b))
    loop = occ.addCurveLoop(curves)
    return occ.addPlaneSurface([loop])


def add_busbar(asm: Assembly, bar: Busbar, region: RegionInfo, aliases: tuple[str, ...] = ()) -> Part:
    """Add a strip (busbar or tab) to the assembly.

    Registers the face references ``<name>.start`` / ``.end`` (the end faces) and
    ``<name>.top`` / ``.bottom`` (also under each alias prefix, e.g. ``tab_2``), and
    refinement features at every bend and hole.
    """
    occ = gmsh.model.occ
    left, right, bends = strip_outline(bar.path, bar.width, bar.fillet_radius)
    surf = _occ_strip_surface(left, right, bar.z0)
    out = occ.extrude([(2, surf)], 0, 0, bar.thickness)
    vols = [dt for dt in out if dt[0] == 3]
    area = bar.centre_length() * bar.width
    for hole in bar.holes:
        cyl = occ.addCylinder(hole.center[0], hole.center[1], bar.z0 - bar.thickness,
                              0, 0, 3 * bar.thickness, hole.radius)
        vols, _ = occ.cut(vols, [(3, cyl)])
        area -= math.pi * hole.radius**2
    part = asm.add(
        Part(info=region, dimtags=vols, priority=PRIORITY_SHEET,
             volume=area * bar.thickness, thickness=bar.thickness)
    )
    name = region.name
    zc = bar.z0 + bar.thickness / 2
    p0, p1 = np.asarray(bar.path[0], float), np.asarray(bar.path[-1], float)
    d0 = (np.asarray(bar.path[1]) - p0) / np.linalg.norm(np.asarray(bar.path[1]) - p0)
    d1 = (p1 - np.asarray(bar.path[-2])) / np.linalg.norm(p1 - np.asarray(bar.path[-2]))
    rad = 0.51 * math.hypot(bar.width, bar.thickness)
    big = 10 * bar.centre_length() + 10 * bar.width
    c = np.mean(np.asarray(bar.path), axis=0)
    for prefix in (name, *aliases):
        asm.add_face(f"{prefix}.start", FaceSelector(name, (p0[0], p0[1], zc), (-d0[0], -d0[1], 0), rad))
        asm.add_face(f"{prefix}.end", FaceSelector(name, (p1[0], p1[1], zc), (d1[0], d1[1], 0), rad))
        asm.add_face(f"{prefix}.top",
                     FaceSelector(name, (c[0], c[1], bar.z0 + bar.thickness), (0, 0, 1), big))
        asm.add_face(f"{prefix}.bottom", FaceSelector(name, (c[0], c[1], bar.z0), (0, 0, -1), big))
    tol = 1e-6 + 1e-3 * bar.width
    for kind, xy, radius in bends:
        if kind == "arc":
            asm.features.append(Feature("fillets", curve_is_circle_at(xy, radius, tol)))
        else:
            asm.features.append(Feature("fillets", curve_is_vertical_line_at(xy, tol)))
    for hole in bar.holes:
        asm.features.append(Feature("bolts", curve_is_circle_at(hole.center, hole.radius, tol)))
    return part


def add_bolt(asm: Assembly, bolt: Bolt, bar: Busbar, region: RegionInfo) -> Part:
    """Add a bolt: a cylinder from the busbar bottom to ``height`` above its top.

    The shank inside the busbar belongs to the bolt (it has the higher priority), so the
    host busbar's analytic volume is reduced accordingly. Registers ``bolt_<i>.top`` and
    ``bolt_<i>.bottom`` (flush with the busbar bottom). Bolts with any other axis, plates,
    protrusion or fittings: :func:`busbarfem.geometry.joints.add_general_bolt`.
    """
    occ = gmsh.model.occ
    total = bar.thickness + bolt.height
    cyl = occ.addCylinder(bolt.center[0], bolt.center[1], bar.z0, 0, 0, total, bolt.radius)
    part = asm.add(
        Part(info=region, dimtags=[(3, cyl)], priority=PRIORITY_INSERT,
             volume=math.pi * bolt.radius**2 * total)
    )
    host = asm.parts[f"busbar_{bolt.busbar}"]
    if host.volume is not None:
        host.volume -= math.pi * bolt.radius**2 * bar.thickness
    top = bar.z0 + total
    asm.add_face(
        f"{region.name}.top",
        FaceSelector(region.name, (bolt.center[0], bolt.center[1], top), (0, 0, 1), 1.01 * bolt.radius),
    )
    asm.add_face(f"{region.name}.bottom", FaceSelector(
        region.name, (bolt.center[0], bolt.center[1], bar.z0), (0, 0, -1), 1.01 * bolt.radius))
    tol = 1e-6 + 1e-3 * bolt.radius
    asm.features.append(Feature("bolts", curve_is_circle_at(bolt.center, bolt.radius, tol),
                                local_size=None))
    return part
