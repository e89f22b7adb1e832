"""Weld nuggets (tab <-> busbar) and vias (busbar layer <-> layer).

Both are vertical cylinders inserted with a higher priority than the sheets they cross,
so after fragmentation the nugget/via owns its footprint in every sheet and the
sheet-to-joint interfaces are conformal. The current between two sheets separated by a
gap can only pass through these cylinders, which is what makes the constriction at a
nugget edge (and its dependence on count and radius) appear in the solution.
"""

from __future__ import annotations

import math

import gmsh
import numpy as np

from busbarfem.case.geometry import Busbar, ViaArray, Weld
from busbarfem.errors import CaseError
from busbarfem.geometry.assembly import (
    PRIORITY_INSERT,
    Assembly,
    FaceSelector,
    Feature,
    Part,
    curve_is_circle_at,
)
from busbarfem.naming import RegionInfo


def _span(lower: Busbar, upper: Busbar) -> tuple[float, float]:
    return lower.z0, upper.z0 + upper.thickness


def add_nugget(asm: Assembly, name: str, material: str, field: int | None, cylinder: int,
               radius: float, length: float, hosts: list[tuple[str, float]], feature: Feature) -> Part:
    """Add one cylindrical joint insert (a weld nugget or a via), the one builder all joints use.

    Args:
        name, material, field: the insert's region.
        cylinder: the OCC volume tag of the cylinder (made by the caller in its own frame).
        radius, length: the cylinder's size (for the analytic volume).
        hosts: (sheet region, length of the cylinder inside it): the volume the insert takes
            from each sheet it crosses.
        feature: the rim curve's refinement feature.
    """
    area = math.pi * radius**2
    part = asm.add(Part(RegionInfo(name, 3, material, "conductor", field), [(3, cylinder)],
                        PRIORITY_INSERT, volume=area * length))
    for host, depth in hosts:
        if asm.parts[host].volume is not None:
            asm.parts[host].volume -= area * depth
    asm.features.append(feature)
    return part


def add_weld_group(asm: Assembly, weld: Weld, tab: Busbar, tab_name: str, bar: Busbar,
                   bar_name: str, first_index: int, field: int | None, key: str) -> list[Part]:
    """Add the nuggets of one weld group, numbered from ``first_index``.

    The nugget spans the tab thickness, any gap, and ``depth`` into the busbar, on the
    side where the tab sits (above or below the busbar).
    """
    occ = gmsh.model.occ
    eps = 1e-12
    if tab.z0 >= bar.z0 + bar.thickness - eps:  # tab on top
        z_lo, z_hi = bar.z0 + bar.thickness - weld.depth, tab.z0 + tab.thickness
    elif tab.z0 + tab.thickness <= bar.z0 + eps:  # tab underneath
        z_lo, z_hi = tab.z0, bar.z0 + weld.depth
    else:
        raise CaseError(f"tab {tab_name} overlaps busbar {bar_name} in z; stack them", key=key)
    material = weld.material or bar.material
    parts = []
    for k, (x, y) in enumerate(weld.pattern.positions()):
        cyl = occ.addCylinder(x, y, z_lo, 0, 0, z_hi - z_lo, weld.radius)
        tol = 1e-6 + 1e-3 * weld.radius
        parts.append(add_nugget(asm, f"weld_{first_index + k}", material, field, cyl, weld.radius,
                                z_hi - z_lo, [(tab_name, tab.thickness), (bar_name, weld.depth)],
                                Feature("welds", curve_is_circle_at((x, y), weld.radius, tol))))
    return parts


def add_via_array(asm: Assembly, vias: ViaArray, bars: list[Busbar], first_index: int,
                  field: int | None) -> list[Part]:
    """Add the vias of one array, numbered from ``first_index``."""
    occ = gmsh.model.occ
    ia, ib = vias.busbars
    lower, upper = sorted((bars[ia - 1], bars[ib - 1]), key=lambda b: b.z0)
    names = {id(bars[ia - 1]): f"busbar_{ia}", id(bars[ib - 1]): f"busbar_{ib}"}
    z_lo, z_hi = _span(lower, upper)
    material = vias.material or lower.material
    parts = []
    for k, (x, y) in enumerate(vias.pattern.positions()):
        cyl = occ.addCylinder(x, y, z_lo, 0, 0, z_hi - z_lo, vias.radius)
        tol = 1e-6 + 1e-3 * vias.radius
        parts.append(add_nugget(asm, f"via_{first_index + k}", material, field, cyl, vias.radius,
                                z_hi - z_lo, [(names[id(layer)], layer.thickness) for layer in (lower, upper)],
                                Feature("vias", curve_is_circle_at((x, y), vias.radius, tol))))
    return parts


PRIORITY_FITTING = 15  # washers and nuts: above the plates they sit on, below the bolt shank


def _axis_extent(occ, dimtags, point, axis, reach: float) -> list[tuple[float, float]]:
    """Intervals (s0, s1) of the axis line ``point + s axis`` inside the solids ``dimtags``."""
    a = occ.addPoint(*map(float, point - reach * axis))
    b = occ.addPoint(*map(float, point + reach * axis))
    line = occ.addLine(a, b)
    copies = occ.copy(dimtags)
    inter, _ = occ.intersect([(1, line)], copies, removeObject=True, removeTool=True)
    out = []
    for dim, tag in inter:
        if dim != 1:
            continue
        # exact ends from the segment's length and centroid (OCC bounding boxes are padded)
        length = occ.getMass(1, tag)
        mid = float(np.dot(np.asarray(occ.getCenterOfMass(1, tag)) - point, axis))
        out.append((mid - length / 2, mid + length / 2))
    occ.remove(inter, recursive=True)
    return out


def add_general_bolt(asm: Assembly, bolt, bars: list[Busbar], index: int, field: int | None,
                     key: str) -> list[Part]:
    """Add a bolt with any axis through one or several plates, with its washers and nuts.

    The shank runs from where the axis line enters the first plate minus the ``-axis``
    protrusion to where it leaves the last plus the ``+axis`` protrusion (the plates are
    found by intersecting the axis line with the plate solids, so bent and 3D plates work).
    Each plate loses ``pi r^2`` times the axis length inside it (exact for a cylinder
    crossing a slab at any angle, by Cavalieri). Registers ``bolt_<i>.top`` and
    ``bolt_<i>.bottom``; washers ``washer_<i>`` and nuts ``nut_<i>`` are rings around the
    shank (a full disk whose core the bolt owns: conformal by fragmentation).
    """
    occ = gmsh.model.occ
    axis = np.asarray(bolt.axis, dtype=float)
    axis /= np.linalg.norm(axis)
    plates = bolt.plates()
    if len(bolt.center) == 2:
        bar = bars[plates[0] - 1]
        z = bar.z0 if not hasattr(bar, "path") or len(bar.path[0]) == 2 else 0.0
        point = np.array([bolt.center[0], bolt.center[1], z])
    else:
        point = np.asarray(bolt.center, dtype=float)
    hosts = [asm.parts[f"busbar_{j}"] for j in plates]
    boxes = np.array([occ.getBoundingBox(*dt) for h in hosts for dt in h.dimtags])
    lo, hi = boxes[:, :3].min(axis=0), boxes[:, 3:].max(axis=0)
    reach = 2 * float(np.linalg.norm(hi - lo)) + float(np.linalg.norm(point - (lo + hi) / 2)) + 1.0
    spans = []
    inside_len = {}
    for j, h in zip(plates, hosts, strict=True):
        iv = _axis_extent(occ, h.dimtags, point, axis, reach)
        if not iv:
            raise CaseError(f"the bolt axis through {tuple(map(float, point))} along {tuple(map(float, axis))} "
                            f"misses busbar_{j}; move center or fix axis/through", key=key)
        spans += iv
        inside_len[j] = sum(b - a for a, b in iv)
    s_lo, s_hi = min(a for a, _ in spans), max(b for _, b in spans)
    below, above = bolt.protrusion()
    s0, s1 = s_lo - below, s_hi + above
    base = point + s0 * axis
    name = naming_bolt(index)
    cyl = occ.addCylinder(*map(float, base), *map(float, (s1 - s0) * axis), bolt.radius)
    a = math.pi * bolt.radius**2
    parts = [asm.add(Part(RegionInfo(name, 3, bolt.material, "conductor", field), [(3, cyl)],
                          PRIORITY_INSERT, volume=a * (s1 - s0)))]
    for j, h in zip(plates, hosts, strict=True):
        if h.volume is not None:
            h.volume -= a * inside_len[j]
    for end, s_end, sign in (("top", s1, 1.0), ("bottom", s0, -1.0)):
        asm.add_face(f"{name}.{end}", FaceSelector(name, tuple(point + s_end * axis), tuple(sign * axis),
                                                   1.01 * bolt.radius))
    for what, fit in (("washer", bolt.washer), ("nut", bolt.nut)):
        if fit is None:
            continue
        dts = []
        for end in (("top", "bottom") if fit.end == "both" else (fit.end,)):
            w_t = bolt.washer.thickness if (what == "nut" and bolt.washer is not None
                                            and bolt.washer.end in (end, "both")) else 0.0
            if end == "top":
                f0 = s_hi + w_t
            else:
                f0 = s_lo - w_t - fit.thickness
            b = point + f0 * axis
            dts.append((3, occ.addCylinder(*map(float, b), *map(float, fit.thickness * axis), fit.outer_radius)))
        ring = math.pi * (fit.outer_radius**2 - bolt.radius**2) * fit.thickness * len(dts)
        parts.append(asm.add(Part(RegionInfo(f"{what}_{index}", 3, fit.material, "conductor", field), dts,
                                  PRIORITY_FITTING, volume=ring, thickness=fit.thickness)))
    tol = 1e-3 * bolt.radius + 1e-7
    ends = [point + s * axis for s in (s0 - tol, s1 + tol)]
    r = max([bolt.radius] + [f.outer_radius for f in (bolt.washer, bolt.nut) if f is not None]) + tol
    box = (*(np.minimum(*ends) - r), *(np.maximum(*ends) + r))
    asm.features.append(Feature("bolts", _circle_in_box(box)))
    return parts


def naming_bolt(i: int) -> str:
    """Region name of bolt ``i`` (see :func:`busbarfem.naming.bolt`)."""
    from busbarfem import naming

    return naming.bolt(i)


def _circle_in_box(box):
    def test(ctype: str, bbox) -> bool:
        return (ctype in ("Circle", "Ellipse") and all(bbox[i] >= box[i] for i in range(3))
                and all(bbox[i + 3] <= box[i + 3] for i in range(3)))

    return test
