"""nSmP modules of prismatic or pouch cells: one stack of box cells with busbar plates.

Built in a local frame (a, b, c): ``a`` is the stacking axis (cell thickness), ``b`` the
cell width and ``c`` the direction in which terminals/tabs leave the body; a permutation
maps it to x, y, z (standing: a = x, b = y, c = z; lying pouch: a = z, b = y, c = x), so
every solid stays an axis-aligned box or a cylinder along c.

Stack order: cell k = (s - 1) m_p + (p - 1) spans a = k * pitch .. k * pitch + thickness. Stage s has its
positive terminal at b = +e (odd s) or -e (even s), i.e. even stages are turned over, so
the + terminals of s and the - terminals of s + 1 sit side by side and one plate joins
them; it carries ``positive_field(s)`` = ``negative_field(s + 1)`` (MSMD stage parity).
For opposite-tab pouches the flip is about b: the + tab of odd stages leaves the top edge
(c = height) and the plates alternate between the top and the bottom.
"""

from __future__ import annotations

import math

import gmsh

from busbarfem import naming
from busbarfem.case.geometry import Module
from busbarfem.errors import CaseError
from busbarfem.geometry.assembly import (
    PRIORITY_CELL,
    PRIORITY_INSERT,
    PRIORITY_SHEET,
    Assembly,
    FaceSelector,
    Feature,
    Part,
)
from busbarfem.geometry.joints import add_nugget
from busbarfem.naming import RegionInfo

MARGIN = 0.0005  # plate overhang beyond the terminals it covers [m]

Vec = tuple[float, float, float]


class _Frame:
    """Local (a, b, c) -> global (x, y, z) by an axis permutation."""

    def __init__(self, axes: tuple[int, int, int]) -> None:
        self.axes = axes  # global index of a, b, c

    def point(self, a: float, b: float, c: float) -> Vec:
        g = [0.0, 0.0, 0.0]
        for val, ax in zip((a, b, c), self.axes, strict=True):
            g[ax] = val
        return (g[0], g[1], g[2])

    def box(self, lo: Vec, hi: Vec) -> int:
        """OCC box between local corners ``lo`` and ``hi``; returns the volume tag."""
        g0, g1 = self.point(*lo), self.point(*hi)
        return gmsh.model.occ.addBox(*g0, *(h - l for l, h in zip(g0, g1, strict=True)))

    def cylinder_c(self, a: float, b: float, c0: float, length: float, r: float) -> int:
        """OCC cylinder along +c from (a, b, c0) of ``length``; returns the volume tag."""
        return gmsh.model.occ.addCylinder(*self.point(a, b, c0), *self.point(0, 0, length), r)


def _circle_about_c(frame: _Frame, a: float, b: float, r: float, tol: float):
    """Curve predicate: a circle of radius ``r`` about the c-parallel axis through (a, b)."""
    ia, ib, ic = frame.axes

    def test(ctype: str, bbox: tuple[float, ...]) -> bool:
        if ctype != "Circle":
            return False
        lo, hi = bbox[:3], bbox[3:]
        return (lo[ia] >= a - r - tol and hi[ia] <= a + r + tol and lo[ib] >= b - r - tol
                and hi[ib] <= b + r + tol and hi[ic] - lo[ic] < tol
                and max(hi[ia] - lo[ia], hi[ib] - lo[ib]) > 0.05 * r)

    return test


class _Terminal:
    """One cell terminal (post or tab) and where a plate must cover it."""

    def __init__(self, name: str, a: float, b: float, half_a: float, half_b: float,
                 side: str, c_tip: float) -> None:
        self.name, self.a, self.b = name, a, b
        self.half_a, self.half_b = half_a, half_b  # footprint half-sizes [m]
        self.side = side  # "top" (c > body) or "bottom" (c < 0)
        self.c_tip = c_tip  # outer end of the terminal along c [m]


def add_stack_module(asm: Assembly, mod: Module, first_busbar: int, first_weld: int) -> dict:
    """Add a prismatic or pouch nSmP stack to ``asm``; returns a summary (plates, terminals)."""
    cell = mod.cell
    n, m = mod.series, mod.parallel
    pitch = mod.stack_pitch()
    bt = mod.busbar_thickness
    prismatic = cell.type == "prismatic"
    lying = not prismatic and cell.orientation == "lying"
    frame = _Frame((2, 1, 0) if lying else (0, 1, 2))
    T = mod.stack_thickness()
    W, H = cell.width, cell.height
    e = cell.offset()
    opposite = not prismatic and cell.tabs == "opposite"

    # ---- cells and terminals
    terms: dict[tuple[str, int, int], _Terminal] = {}
    for s in range(1, n + 1):
        odd = s % 2 == 1
        for p in range(1, m + 1):
            ac = T / 2 + ((s - 1) * m + (p - 1)) * pitch
            body = frame.box((ac - T / 2, -W / 2, 0.0), (ac + T / 2, W / 2, H))
            asm.add(Part(RegionInfo(naming.cell(s, p), 3, cell.material, "cell", None, s, p),
                         [(3, body)], PRIORITY_CELL, volume=W * T * H))
            for pol in ("pos", "neg"):
                fld = naming.positive_field(s) if pol == "pos" else naming.negative_field(s)
                mat = cell.positive_material if pol == "pos" else cell.negative_material
                name = naming.tab(pol, s, p)
                info = RegionInfo(name, 3, mat, "conductor", fld, s, p, pol)
                if opposite:
                    b, top = e, (pol == "pos") == odd
                else:
                    b, top = (e if (pol == "pos") == odd else -e), True
                if prismatic:
                    r, h = cell.terminal_radius, cell.terminal_height
                    post = frame.cylinder_c(ac, b, H, h, r)
                    asm.add(Part(info, [(3, post)], PRIORITY_SHEET, volume=math.pi * r**2 * h))
                    terms[(pol, s, p)] = _Terminal(name, ac, b, r, r, "top", H + h)
                    tol = 1e-6 + 1e-3 * r
                    asm.features.append(Feature("bolts", _circle_about_c(frame, ac, b, r, tol)))
                else:
                    tt, tw = cell.tab_thickness, cell.tab_width
                    length = cell.tab_length + bt  # through the slot, flush with the plate
                    c0, c1 = (H, H + length) if top else (-length, 0.0)
                    strip = frame.box((ac - tt / 2, b - tw / 2, c0), (ac + tt / 2, b + tw / 2, c1))
                    # the tab owns its slot in the plate (bonded on the slot faces)
                    # sized by its width, not its thickness: a foil-thin sheet size would
                    # multiply the element count, and the field is uniform across a foil
                    asm.add(Part(info, [(3, strip)], PRIORITY_INSERT, volume=tt * tw * length,
                                 size=tw / 4))
                    terms[(pol, s, p)] = _Terminal(name, ac, b, tt / 2, tw / 2,
                                                   "top" if top else "bottom", c1 if top else c0)

    # ---- plates: (members, field, side, a-extension before, a-extension after)
    plates: list[tuple[list[_Terminal], int, float, float]] = []
    for s in range(1, n):
        members = [terms[("pos", s, p)] for p in range(1, m + 1)]
        members += [terms[("neg", s + 1, p)] for p in range(1, m + 1)]
        plates.append((members, naming.positive_field(s), 0.0, 0.0))
    ext = mod.terminal_extension
    plates.append(([terms[("neg", 1, p)] for p in range(1, m + 1)], naming.negative_field(1),
                   ext, 0.0))
    plates.append(([terms[("pos", n, p)] for p in range(1, m + 1)], naming.positive_field(n),
                   0.0, ext))

    k_bar, k_weld = first_busbar, first_weld
    plate_names: list[str] = []
    bottoms: list[FaceSelector] = []
    weld = mod.weld
    for members, fld, ext_lo, ext_hi in plates:
        side = members[0].side
        a0 = min(t.a - t.half_a for t in members) - MARGIN - ext_lo
        a1 = max(t.a + t.half_a for t in members) + MARGIN + ext_hi
        b0 = min(t.b - t.half_b for t in members) - MARGIN
        b1 = max(t.b + t.half_b for t in members) + MARGIN
        if prismatic:  # plate floats `gap` above the posts
            c0 = members[0].c_tip + mod.gap
        else:  # the tabs end flush with the plate's outer face
            c0 = members[0].c_tip - bt if side == "top" else members[0].c_tip
        c1 = c0 + bt
        name = naming.busbar(k_bar)
        k_bar += 1
        plate_names.append(name)
        box = frame.box((a0, b0, c0), (a1, b1, c1))
        volume = (a1 - a0) * (b1 - b0) * bt
        if not prismatic:
            volume -= len(members) * cell.tab_thickness * cell.tab_width * bt
        asm.add(Part(RegionInfo(name, 3, mod.busbar_material, "conductor", fld),
                     [(3, box)], PRIORITY_SHEET, volume=volume, thickness=bt))
        bc = (b0 + b1) / 2
        out = 1.0 if side == "top" else -1.0
        asm.add_face(f"{name}.start", FaceSelector(name, frame.point(a0, bc, (c0 + c1) / 2),
                                                   frame.point(-1, 0, 0), 1.01 * math.hypot(b1 - b0, bt)))
        asm.add_face(f"{name}.end", FaceSelector(name, frame.point(a1, bc, (c0 + c1) / 2),
                                                 frame.point(1, 0, 0), 1.01 * math.hypot(b1 - b0, bt)))
        outer_c = c1 if side == "top" else c0
        asm.add_face(f"{name}.top", FaceSelector(name, frame.point((a0 + a1) / 2, bc, outer_c),
                                                 frame.point(0, 0, out), 10 * (a1 - a0 + b1 - b0)))
        if side == "bottom":
            bottoms.append(FaceSelector(name, frame.point((a0 + a1) / 2, bc, c0),
                                        frame.point(0, 0, -1), 10 * (a1 - a0 + b1 - b0)))
        if not prismatic:
            continue
        # nuggets: from half-way into the post, across the gap, half-way into the plate
        depth = min(cell.terminal_height, bt) / 2
        for t in members:
            for j in range(weld.count):
                bj = t.b + (j - (weld.count - 1) / 2) * weld.pitch
                if abs(bj - t.b) + weld.radius > t.half_b * (1 - 1e-9):
                    raise CaseError(
                        f"weld nuggets ({weld.count} of radius {weld.radius} m, pitch "
                        f"{weld.pitch} m) do not fit on a post of radius {t.half_b} m",
                        key="geometry.module.weld")
                za = t.c_tip - depth
                cyl = frame.cylinder_c(t.a, bj, za, mod.gap + depth + bt / 2, weld.radius)
                add_nugget(asm, naming.weld(k_weld), weld.material or mod.busbar_material, fld, cyl,
                           weld.radius, mod.gap + depth + bt / 2, [(t.name, depth), (name, bt / 2)],
                           Feature("welds", _circle_about_c(
                               frame, t.a, bj, weld.radius, 1e-6 + 1e-3 * weld.radius)))
                k_weld += 1

    neg_plate, pos_plate = plate_names[-2], plate_names[-1]
    asm.faces["module.negative"] = asm.faces[f"{neg_plate}.start"]
    asm.faces["module.positive"] = asm.faces[f"{pos_plate}.end"]
    if lying:  # the lowest cell lies on the cold plate
        bottoms = [FaceSelector(naming.cell(1, 1), frame.point(0.0, 0.0, H / 2), (0, 0, -1),
                                1.01 * math.hypot(W, H))]
    elif not opposite:
        bottoms = [FaceSelector(naming.cell(s, p), frame.point(T / 2 + ((s - 1) * m + p - 1) * pitch, 0, 0),
                                (0, 0, -1), 1.01 * math.hypot(W, T))
                   for s in range(1, n + 1) for p in range(1, m + 1)]
    asm.faces["module.bottom"] = bottoms
    return {"pcu": mod.parallel_connected_units or n, "pitch": [pitch, 0.0],
            "stacking_axis": "xyz"[frame.axes[0]], "plates": plate_names,
            "terminal_plates": {"neg": neg_plate, "pos": pos_plate},
            "welds": k_weld - first_weld}
