"""Sheet-metal bends of a flat pattern: an outline extruded to thickness ``t``, bent along lines.

Each bend line (``geometry.plates[k].bends``, flat-pattern coordinates) is the centre of a
bend zone of width ``BA = theta (r + K t)`` (the bend allowance; ``K`` is the neutral-layer
position, 0.5 = mid-thickness): the flat pattern's length along the neutral layer is kept.
With ``s`` the signed distance from the line (positive on its left) and ``m`` the left
normal, the part with ``s > BA / 2`` is moved rigidly by

    x -> Rot(d, theta; A) (x - BA m)

(``d`` the line direction, ``A`` the bend axis: parallel to ``d`` above the zone's start
``s = -BA / 2`` at ``z0 + t + r`` for an up bend, below it at ``z0 - r`` for a down one),
and the zone itself becomes the section at ``s = -BA / 2`` revolved about ``A`` by
``theta`` (inner radius ``r``, outer ``r + t``). A zone must cross the outline once as a
full rectangle (edges crossing it perpendicular to the line, no hole in it), the zones must
not overlap, and two bends may not move each other (reverse one line). Bends nest: a part
beyond several bends gets the composition of their motions, the bend nearest the fixed
part applied last.

The solid's analytic volume is ``(area - sum BA_i L_i) t + sum theta_i (r_i + t / 2) t L_i``
(``L_i`` the zone's length along its line): ``area x t`` for ``K = 0.5``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from busbarfem.errors import CaseError


@dataclass
class BendFrame:
    """One bend line in the flat pattern and its rigid motion."""

    p0: np.ndarray  # point on the line (2D) [m]
    d: np.ndarray  # unit line direction (2D)
    m: np.ndarray  # unit left normal (2D)
    allowance: float  # zone width BA [m]
    theta: float  # signed bend angle [rad]
    radius: float  # inner radius [m]
    axis_point: np.ndarray  # a point of the bend axis (3D) [m]

    def side(self, xy) -> float:
        """Signed distance of a flat-pattern point from the line (positive on the left) [m]."""
        return float(np.dot(np.asarray(xy, dtype=float)[:2] - self.p0, self.m))

    def motion(self) -> np.ndarray:
        """4x4 rigid motion of the part beyond the zone (left side)."""
        shift = np.eye(4)
        shift[:2, 3] = -self.allowance * self.m
        return _rotation(np.array([*self.d, 0.0]), self.theta, self.axis_point) @ shift


def _rotation(u: np.ndarray, angle: float, point: np.ndarray) -> np.ndarray:
    """4x4 rotation about the axis through ``point`` along unit ``u`` (Rodrigues)."""
    c, s = math.cos(angle), math.sin(angle)
    ux = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    rot = c * np.eye(3) + s * ux + (1 - c) * np.outer(u, u)
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = point - rot @ point
    return out


def frames(plate) -> list[BendFrame]:
    """The bend frames of ``plate`` (a :class:`busbarfem.case.geometry.Plate`)."""
    out = []
    t = plate.thickness
    for b in plate.bends:
        p0, p1 = (np.asarray(p, dtype=float) for p in b.line)
        d = (p1 - p0) / np.linalg.norm(p1 - p0)
        m = np.array([-d[1], d[0]])
        theta = math.radians(b.angle)
        ba = abs(theta) * (b.radius + b.k_factor * t)
        foot = p0 - ba / 2 * m
        z = plate.z0 + t + b.radius if theta > 0 else plate.z0 - b.radius
        out.append(BendFrame(p0, d, m, ba, theta, b.radius, np.array([foot[0], foot[1], z])))
    return out


def order(fr: list[BendFrame], zone_centres: list[np.ndarray], key: str) -> list[list[int]]:
    """For every bend, the bends whose moving side holds its zone (nearest the fixed part first).

    Raises:
        CaseError: two bends each lie on the other's moving side.
    """
    n = len(fr)
    beyond = [[j != i and fr[j].side(zone_centres[i]) > 0 for j in range(n)] for i in range(n)]  # zone i left of j
    for i in range(n):
        for j in range(i + 1, n):
            if beyond[i][j] and beyond[j][i]:
                raise CaseError(f"bends {i} and {j} each lie on the other's bent (left) side, so the part "
                                "between them would be moved by both; reverse one of the two lines",
                                key=f"{key}.bends.{j}.line")
    return [_nearest_first(fr, zone_centres, [j for j in range(n) if beyond[i][j]]) for i in range(n)]


def _nearest_first(fr: list[BendFrame], zone_centres: list[np.ndarray], chain: list[int]) -> list[int]:
    """``chain`` sorted by how many of its bends hold each one's zone on their moving side."""
    return sorted(chain, key=lambda j: sum(fr[k].side(zone_centres[j]) > 0 for k in chain if k != j))


def compose(fr: list[BendFrame], chain: list[int]) -> np.ndarray:
    """The motion of a part beyond the bends ``chain`` (nearest the fixed part first)."""
    out = np.eye(4)
    for j in chain:
        out = out @ fr[j].motion()
    return out


def move(occ, dimtags: list, fr: list[BendFrame], chain: list[int]) -> None:
    """Move OCC entities by the motion of ``chain`` as rigid translations and rotations
    (an affine transform would turn planes into B-spline surfaces)."""
    for j in reversed(chain):
        f = fr[j]
        occ.translate(dimtags, *map(float, -f.allowance * f.m), 0.0)
        occ.rotate(dimtags, *map(float, f.axis_point), float(f.d[0]), float(f.d[1]), 0.0, f.theta)


def apply(mat: np.ndarray, x) -> np.ndarray:
    """Apply the 4x4 motion to a 3D point."""
    return mat[:3, :3] @ np.asarray(x, dtype=float) + mat[:3, 3]


def _rect(occ, corners2d, z: float) -> int:
    pts = [occ.addPoint(float(x), float(y), z) for x, y in corners2d]
    lines = [occ.addLine(pts[k], pts[(k + 1) % len(pts)]) for k in range(len(pts))]
    return occ.addPlaneSurface([occ.addCurveLoop(lines)])


def _face_points(face: int) -> np.ndarray:
    """The vertex coordinates of an OCC face (2D, flat pattern)."""
    import gmsh

    occ = gmsh.model.occ
    occ.synchronize()
    pts = gmsh.model.getBoundary([(2, face)], combined=False, oriented=False, recursive=True)
    return np.array([gmsh.model.getValue(0, p[1], [])[:2] for p in pts])


def build(occ, surf: list, plate, outline_area: float, key: str):
    """Bend the flat pattern ``surf`` (OCC faces at ``z0``); returns (volumes, motions, info).

    ``motions(xy)`` gives the 4x4 motion of the flat-pattern point ``xy`` (which must lie
    outside every zone). ``info`` holds the analytic volume and per-bend data.
    """
    import gmsh

    fr = frames(plate)
    t, z0 = plate.thickness, plate.z0
    occ.synchronize()
    lo = np.array(gmsh.model.getBoundingBox(*surf[0])[:2])
    hi = np.array(gmsh.model.getBoundingBox(*surf[0])[3:5])
    for dt in surf[1:]:
        b = gmsh.model.getBoundingBox(*dt)
        lo, hi = np.minimum(lo, b[:2]), np.maximum(hi, b[3:5])
    span = 2 * float(np.linalg.norm(hi - lo)) + 1e-3
    zones, strips = [], []
    for i, f in enumerate(fr):
        c = f.p0 + np.dot((lo + hi) / 2 - f.p0, f.d) * f.d  # foot of the bbox centre on the line
        corners = [c + sgn_u * span * f.d + sgn_s * f.allowance / 2 * f.m
                   for sgn_u, sgn_s in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
        strip = _rect(occ, corners, z0)
        strips.append((2, strip))
        pieces, _ = occ.intersect([dt for dt in occ.copy(surf)], [(2, occ.copy([(2, strip)])[0][1])])
        faces = [dt for dt in pieces if dt[0] == 2]
        bk = f"{key}.bends.{i}"
        if not faces:
            raise CaseError(f"bend line {i} does not cross the flat pattern (its zone, "
                            f"{f.allowance * 1e3:.4g} mm wide, misses the outline)", key=f"{bk}.line")
        if len(faces) > 1:
            raise CaseError(f"bend line {i} crosses the flat pattern {len(faces)} times; a bend zone must "
                            "cross it once (split the part, or add a relief)", key=f"{bk}.line")
        pts = _face_points(faces[0][1])
        u = (pts - f.p0) @ f.d
        a, b_ = float(u.min()), float(u.max())
        area = occ.getMass(*faces[0])
        if abs(area - f.allowance * (b_ - a)) > 1e-6 * f.allowance * (b_ - a):
            raise CaseError(f"the flat pattern is not a full rectangle across bend {i}'s zone "
                            f"({f.allowance * 1e3:.4g} mm wide about the line): the outline edges crossing "
                            "a bend zone must be straight and perpendicular to the line, with no hole in "
                            "the zone", key=f"{bk}.line")
        zones.append((faces[0], a, b_))
    for i in range(len(fr)):
        for j in range(i + 1, len(fr)):
            common, _ = occ.intersect(occ.copy([zones[i][0]]), occ.copy([zones[j][0]]))
            if any(dt[0] == 2 and occ.getMass(*dt) > 1e-9 * fr[i].allowance * fr[j].allowance
                   for dt in common):
                raise CaseError(f"the zones of bends {i} and {j} overlap in the flat pattern",
                                key=f"{key}.bends.{j}.line")
            occ.remove(common, recursive=True)
    centres = [fr[i].p0 + (zones[i][1] + zones[i][2]) / 2 * fr[i].d for i in range(len(fr))]
    chains = order(fr, centres, key)
    flat, _ = occ.cut(surf, [dt for dt, *_ in zones] + strips)
    flat = [dt for dt in flat if dt[0] == 2]
    occ.synchronize()

    def chain_of(xy) -> list[int]:
        return _nearest_first(fr, centres, [j for j in range(len(fr)) if fr[j].side(xy) > 0])

    vols = []
    top_points = []
    for dt in flat:
        c = np.asarray(occ.getCenterOfMass(*dt))[:2]
        chain = chain_of(c)
        mat = compose(fr, chain)
        ext = occ.extrude([dt], 0, 0, t)
        v = [e for e in ext if e[0] == 3]
        move(occ, v, fr, chain)
        vols += v
        top_points.append((c, mat))
    boxes = []
    volume = outline_area * t
    for i, (_zone, a, b_) in enumerate(zones):
        f = fr[i]
        length = b_ - a
        foot = f.p0 - f.allowance / 2 * f.m
        corners = [(*(foot + a * f.d), z0), (*(foot + b_ * f.d), z0), (*(foot + b_ * f.d), z0 + t),
                   (*(foot + a * f.d), z0 + t)]
        ptags = [occ.addPoint(*map(float, q)) for q in corners]
        lines = [occ.addLine(ptags[k], ptags[(k + 1) % 4]) for k in range(4)]
        sec = occ.addPlaneSurface([occ.addCurveLoop(lines)])
        out = occ.revolve([(2, sec)], *map(float, f.axis_point), float(f.d[0]), float(f.d[1]), 0.0, f.theta)
        v = [e for e in out if e[0] == 3]
        move(occ, v, fr, chains[i])
        vols += v
        boxes.append(occ.getBoundingBox(*v[0]))
        volume += (abs(f.theta) * (f.radius + t / 2) - f.allowance) * t * length
    if len(vols) > 1:
        vols, _ = occ.fuse(vols[:1], vols[1:])
    info = {"volume": volume, "boxes": boxes, "tops": top_points,
            "bends": [{"theta_deg": math.degrees(f.theta), "inner_radius_m": f.radius,
                       "allowance_m": f.allowance, "length_m": zones[i][2] - zones[i][1]}
                      for i, f in enumerate(fr)]}
    return vols, (lambda xy: compose(fr, chain_of(xy))), info, (lambda xy: any(
        abs(f.side(xy)) < f.allowance / 2 for f in fr))
