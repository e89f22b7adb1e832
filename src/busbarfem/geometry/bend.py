"""Bent-sheet busbars: a cross-section carried along a 3D centre-line, bent like sheet metal.

The strip has a cross-section (width ``W`` along the width direction ``w``, thickness
``T`` along the sheet normal ``n``) centred on the centre-line. On a straight segment
the section is extruded along the segment; at every interior path point the path turns
by ``theta`` about the bend axis ``a = d1 x d2 / |d1 x d2|`` and the section is
*revolved* about that axis, through a centre at distance ``rc`` from the centre-line,
and the frame ``(w, n)`` is rotated with it (the section keeps its orientation relative
to the path, as a sheet does in a press brake or an edgewise bend). A bend about the
width axis is the classic sheet-metal bend (inner radius measured to the inner face);
about the normal it is the edgewise bend of the plane builder (inner radius to the inner
edge); any other axis is allowed. The inner radius ``r`` of a bend is the distance from
the axis to the nearest point of the section: ``rc = r + h`` with ``h`` the half extent
of the section along the direction towards the centre.

Analytic facts used by the tests and the volume check: the developed length is
``sum(straight lengths) + sum(rc theta)``, and by Pappus a bend piece's volume is
``A rc theta`` exactly (the centre-line is the section's centroid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


class BendError(ValueError):
    """The path, radii or sections cannot make a bent sheet (message says what would)."""


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def turn_angles(path) -> list[float]:
    """Unsigned turn angle [rad] at every interior point of a 3D path."""
    pts = np.asarray(path, dtype=float)
    out = []
    for i in range(1, len(pts) - 1):
        d1, d2 = _unit(pts[i] - pts[i - 1]), _unit(pts[i + 1] - pts[i])
        out.append(math.atan2(np.linalg.norm(np.cross(d1, d2)), float(np.dot(d1, d2))))
    return out


def rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation of ``v`` about the unit ``axis`` by ``angle`` [rad]."""
    c, s = math.cos(angle), math.sin(angle)
    return v * c + np.cross(axis, v) * s + axis * np.dot(axis, v) * (1 - c)


@dataclass
class Piece:
    """One straight run or one bend of the sheet.

    Attributes:
        kind: ``"straight"`` or ``"bend"``.
        start: centre-line point where the piece starts [m].
        d: path direction at the start; ``w``, ``n``: width direction and normal there.
        width, thickness: section [m].
        length: centre-line length of the piece [m] (``rc theta`` for a bend).
        s0: developed distance of ``start`` from the path start [m].
        axis, centre, theta, rc, inner: bend axis, centre, angle, centre-line and inner radius.
    """

    kind: str
    start: np.ndarray
    d: np.ndarray
    w: np.ndarray
    n: np.ndarray
    width: float
    thickness: float
    length: float
    s0: float
    axis: np.ndarray | None = None
    centre: np.ndarray | None = None
    theta: float = 0.0
    rc: float = 0.0
    inner: float = 0.0


@dataclass
class Plan:
    """The pieces of a bent sheet, the end frames and the developed length."""

    pieces: list[Piece] = field(default_factory=list)
    developed_length: float = 0.0
    volume: float = 0.0  # without holes
    planar_normal: bool = True  # the normal never changes (no out-of-plane bend)
    end: tuple | None = None  # (point, direction, w, n) at the last path point


def _default_normal(pts: np.ndarray, d0: np.ndarray) -> np.ndarray:
    """Normal in the first bend's plane (sheet bent about its width axis), else +z-like."""
    for i in range(1, len(pts) - 1):
        d1, d2 = _unit(pts[i] - pts[i - 1]), _unit(pts[i + 1] - pts[i])
        a = np.cross(d1, d2)
        if np.linalg.norm(a) > 1e-9:
            a = a / np.linalg.norm(a)
            if i == 1:
                return np.cross(a, d0)  # towards the bend centre, perpendicular to d0
            break
    ref = np.array([0.0, 0.0, 1.0]) if abs(d0[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    return _unit(ref - np.dot(ref, d0) * d0)


def plan(bar) -> Plan:
    """Lay out the pieces of ``bar`` (a :class:`busbarfem.case.geometry.Busbar`).

    Raises:
        BendError: a bend radius that does not fit its segments, a section change at a bend,
            a zero inner radius at a bend, a normal along the first segment.
    """
    three_d = len(bar.path[0]) == 3
    sections = bar.sections()
    if three_d:
        pts = np.asarray(bar.path, dtype=float)
    else:  # plane form: centre-line at mid-thickness of the first segment, normal +z
        z = bar.z0 + sections[0][1] / 2
        pts = np.asarray([(x, y, z) for x, y in bar.path], dtype=float)
    dirs = [_unit(pts[i + 1] - pts[i]) for i in range(len(pts) - 1)]
    seglen = [float(np.linalg.norm(pts[i + 1] - pts[i])) for i in range(len(pts) - 1)]
    if not three_d:
        n = np.array([0.0, 0.0, 1.0])
    elif bar.normal is not None:
        n = np.asarray(bar.normal, dtype=float)
        n = n - np.dot(n, dirs[0]) * dirs[0]
        if np.linalg.norm(n) < 1e-9 * np.linalg.norm(bar.normal):
            raise BendError("normal is parallel to the first path segment; give a direction across it")
        n = _unit(n)
    else:
        n = _default_normal(pts, dirs[0])
    w = np.cross(n, dirs[0])
    radii = bar.bend_radii if bar.bend_radii is not None else [bar.fillet_radius] * (len(pts) - 2)
    # bends: axis, angle, rc, tangent length; frames before each bend
    bends: list[tuple | None] = []
    frames = [(w, n)]
    for i in range(1, len(pts) - 1):
        d1, d2 = dirs[i - 1], dirs[i]
        a = np.cross(d1, d2)
        theta = math.atan2(np.linalg.norm(a), float(np.dot(d1, d2)))
        if theta < 1e-9:
            bends.append(None)
            frames.append(frames[-1])
            continue
        if sections[i - 1] != sections[i]:
            raise BendError(f"segments {i} and {i + 1} meet at a bend (path point {i + 1}) with different "
                            "sections; change width/thickness only at a straight (collinear) point")
        a = a / np.linalg.norm(a)
        m = np.cross(a, d1)  # towards the bend centre
        wk, nk = frames[-1]
        W, T = sections[i]
        h = abs(np.dot(m, wk)) * W / 2 + abs(np.dot(m, nk)) * T / 2
        r = radii[i - 1]
        if r <= 0:
            raise BendError(f"bend at path point {i + 1} needs an inner radius > 0 (a bent sheet has one; "
                            "set bend_radii or fillet_radius)")
        rc = r + h
        bends.append((a, theta, rc, rc * math.tan(theta / 2), r))
        frames.append((rotate(wk, a, theta), rotate(nk, a, theta)))
    out = Plan()
    s = 0.0
    cut_in = 0.0
    for i in range(len(pts) - 1):
        b_next = bends[i] if i < len(bends) else None
        cut_out = b_next[3] if b_next is not None else 0.0
        straight = seglen[i] - cut_in - cut_out
        if straight < -1e-12 * max(seglen):
            raise BendError(f"segment {i + 1} (points {i + 1}-{i + 2}) is {seglen[i]:.6g} m long but its bends "
                            f"need {cut_in + cut_out:.6g} m of it; use smaller bend_radii or a longer segment")
        W, T = sections[i]
        wk, nk = frames[i]
        start = pts[i] + cut_in * dirs[i]
        if straight > 1e-12 * max(seglen):
            out.pieces.append(Piece("straight", start, dirs[i], wk, nk, W, T, straight, s))
            out.volume += W * T * straight
            s += straight
        if b_next is not None:
            a, theta, rc, t, r = b_next
            t1 = pts[i + 1] - t * dirs[i]
            centre = t1 + rc * np.cross(a, dirs[i])
            out.pieces.append(Piece("bend", t1, dirs[i], wk, nk, W, T, rc * theta, s, a, centre, theta, rc, r))
            out.volume += W * T * rc * theta
            s += rc * theta
            if abs(abs(np.dot(a, nk)) - 1) > 1e-9:
                out.planar_normal = False
        cut_in = b_next[3] if b_next is not None else 0.0
    out.developed_length = s
    out.end = (pts[-1], dirs[-1], *frames[-1])
    return out


def locate(p: Plan, s: float, u: float) -> tuple[Piece, np.ndarray]:
    """The straight piece holding developed position ``s`` and the point at (s, u).

    Raises:
        BendError: ``s`` lies in a bend or beyond the ends.
    """
    for piece in p.pieces:
        if piece.s0 - 1e-12 <= s <= piece.s0 + piece.length + 1e-12:
            if piece.kind != "straight":
                raise BendError(f"s = {s:g} m lies in a bend ({piece.s0:.6g} to {piece.s0 + piece.length:.6g} m); "
                                "holes go on straight runs")
            return piece, piece.start + (s - piece.s0) * piece.d + u * piece.w
    raise BendError(f"s = {s:g} m is beyond the developed length {p.developed_length:.6g} m")


# --------------------------------------------------------------------------- OCC builder
def _section_surface(occ, centre: np.ndarray, w: np.ndarray, n: np.ndarray, W: float, T: float) -> int:
    """OCC plane rectangle W x T centred at ``centre`` spanned by ``w`` and ``n``."""
    corners = [centre + sw * W / 2 * w + sn * T / 2 * n for sw, sn in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    tags = [occ.addPoint(*map(float, c)) for c in corners]
    lines = [occ.addLine(tags[k], tags[(k + 1) % 4]) for k in range(4)]
    return occ.addPlaneSurface([occ.addCurveLoop(lines)])


def _hole_tool(occ, piece: Piece, point: np.ndarray, hole) -> tuple[list, float]:
    """OCC tool solids of a hole/slot through ``piece`` at ``point``; returns (dimtags, area)."""
    a = math.radians(hole.angle)
    e = math.cos(a) * piece.d + math.sin(a) * piece.w
    T = piece.thickness
    base = point - 1.5 * T * piece.n
    tools = []
    L = hole.length
    for c in ([point] if L == 0 else [point - L / 2 * e, point + L / 2 * e]):
        b = c - 1.5 * T * piece.n
        tools.append((3, occ.addCylinder(*map(float, b), *map(float, 3 * T * piece.n), hole.radius)))
    if L > 0:
        q = e * 0  # rectangle between the two end circles
        side = np.cross(piece.n, e)
        corners = [base - L / 2 * e - hole.radius * side, base + L / 2 * e - hole.radius * side,
                   base + L / 2 * e + hole.radius * side, base - L / 2 * e + hole.radius * side]
        pts = [occ.addPoint(*map(float, c + q)) for c in corners]
        lines = [occ.addLine(pts[k], pts[(k + 1) % 4]) for k in range(4)]
        surf = occ.addPlaneSurface([occ.addCurveLoop(lines)])
        ext = occ.extrude([(2, surf)], *map(float, 3 * T * piece.n))
        tools += [dt for dt in ext if dt[0] == 3]
    return tools, math.pi * hole.radius**2 + 2 * hole.radius * L


def _check_hole_fits(piece: Piece, s: float, u: float, hole, key: str) -> None:
    a = math.radians(hole.angle)
    along = hole.radius + hole.length / 2 * abs(math.cos(a))
    across = hole.radius + hole.length / 2 * abs(math.sin(a))
    if s - along < piece.s0 - 1e-12 or s + along > piece.s0 + piece.length + 1e-12:
        raise BendError(f"{key}: the hole reaches {s - along:.6g} to {s + along:.6g} m along the centre-line, "
                        f"outside its straight run ({piece.s0:.6g} to {piece.s0 + piece.length:.6g} m)")
    if abs(u) + across > piece.width / 2 + 1e-12:
        raise BendError(f"{key}: the hole reaches {abs(u) + across:.6g} m off the centre-line, beyond the "
                        f"half-width {piece.width / 2:.6g} m")


def add_bent_busbar(asm, bar, region, aliases: tuple[str, ...] = (), key: str = "geometry.busbars") -> object:
    """Add a bent-sheet busbar (any path form) to the assembly; returns its Part.

    Face references: ``<name>.start`` / ``.end`` (end faces) and ``<name>.top`` /
    ``.bottom`` (the +normal / -normal faces of the straight runs, and of the bends when
    every bend is edgewise, i.e. the sheet stays plane). Bends are ``fillets`` refinement
    features, holes ``bolts`` features.
    """
    import gmsh

    from busbarfem.errors import CaseError
    from busbarfem.geometry.assembly import PRIORITY_SHEET, Feature, FaceSelector, Part

    occ = gmsh.model.occ
    try:
        p = plan(bar)
    except BendError as exc:
        raise CaseError(str(exc), key=key) from None
    vols = []
    boxes = []
    for piece in p.pieces:
        surf = _section_surface(occ, piece.start, piece.w, piece.n, piece.width, piece.thickness)
        if piece.kind == "straight":
            out = occ.extrude([(2, surf)], *map(float, piece.length * piece.d))
        else:
            out = occ.revolve([(2, surf)], *map(float, piece.centre), *map(float, piece.axis), piece.theta)
        new = [dt for dt in out if dt[0] == 3]
        vols += new
        if piece.kind == "bend":
            boxes.append(occ.getBoundingBox(*new[0]))
    if len(vols) > 1:
        vols, _ = occ.fuse(vols[:1], vols[1:])
    volume = p.volume
    for k, hole in enumerate(bar.holes):
        hk = f"{key}.holes.{k}"
        if hole.at is not None:
            s, u = hole.at
            try:
                piece, point = locate(p, s, u)
                _check_hole_fits(piece, s, u, hole, hk)
            except BendError as exc:
                raise CaseError(str(exc), key=hk) from None
        else:
            if len(bar.path[0]) == 3:
                raise CaseError("a hole on a 3D path is placed by at: [s, u] (developed position)", key=hk)
            piece = p.pieces[0]
            point = np.array([hole.center[0], hole.center[1], piece.start[2]])
            piece = Piece("straight", point, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), piece.n,
                          piece.width, max(x.thickness for x in p.pieces), 0.0, 0.0)
        tools, area = _hole_tool(occ, piece, point, hole)
        vols, _ = occ.cut(vols, tools)
        volume -= area * piece.thickness
        if hole.at is not None:
            asm.features.append(Feature("bolts", _curve_in_box(_hole_box(point, hole, piece))))
    tmin = min(x.thickness for x in p.pieces)
    part = asm.add(Part(info=region, dimtags=vols, priority=PRIORITY_SHEET, volume=volume, thickness=tmin))
    name = region.name
    first, (pe, de, we, ne) = p.pieces[0], p.end
    last = p.pieces[-1]
    r0 = 0.51 * math.hypot(first.width, first.thickness)
    r1 = 0.51 * math.hypot(last.width, last.thickness)
    tops, bottoms = [], []
    for piece in p.pieces:
        if piece.kind == "bend" and not (abs(abs(np.dot(piece.axis, piece.n)) - 1) < 1e-9):
            continue
        mid = piece.start + piece.length / 2 * piece.d if piece.kind == "straight" else piece.start
        big = 2 * (piece.length + piece.width + (piece.rc if piece.kind == "bend" else 0))
        tops.append(FaceSelector(name, tuple(mid + piece.thickness / 2 * piece.n), tuple(piece.n), big))
        bottoms.append(FaceSelector(name, tuple(mid - piece.thickness / 2 * piece.n), tuple(-piece.n), big))
    for prefix in (name, *aliases):
        asm.add_face(f"{prefix}.start", FaceSelector(name, tuple(first.start), tuple(-first.d), r0))
        asm.add_face(f"{prefix}.end", FaceSelector(name, tuple(pe), tuple(de), r1))
        asm.add_face(f"{prefix}.top", tops)
        asm.add_face(f"{prefix}.bottom", bottoms)
    for box in boxes:
        asm.features.append(Feature("fillets", _curve_in_box(box)))
    asm.summary.setdefault("bent_sheets", {})[name] = {
        "developed_length_m": p.developed_length,
        "bends": [{"theta_deg": math.degrees(x.theta), "inner_radius_m": x.inner, "axis": list(map(float, x.axis))}
                  for x in p.pieces if x.kind == "bend"]}
    return part


def _hole_box(point, hole, piece) -> tuple:
    r = hole.radius + hole.length / 2 + piece.thickness
    return (*(point - r), *(point + r))


def _curve_in_box(box, tol: float = 1e-7):
    """Curve predicate: a circle/arc whose bounding box lies inside ``box`` (a bend or a hole)."""

    def test(ctype: str, bbox) -> bool:
        return (ctype in ("Circle", "Ellipse", "BSpline")
                and all(bbox[i] >= box[i] - tol for i in range(3))
                and all(bbox[i + 3] <= box[i + 3] + tol for i in range(3)))

    return test
