"""nSmP module of cylindrical cells: bodies, terminals, busbar plates, weld nuggets.

Prismatic and pouch cells are stacked by :mod:`busbarfem.geometry.stack`.

Layout: stage s (1..n_s) is the column x = (s-1) px, parallel index p (1..m_p) the row
y = (p-1) py; cell bodies stand on z = 0. Plates between stage s and s+1 carry the
positive field of s, which equals the negative field of s+1 (MSMD stage parity, see
:mod:`busbarfem.naming`). Where plates join strings is decided by the PCU rule
documented on :class:`busbarfem.case.geometry.Module`.
"""

from __future__ import annotations

import math

import gmsh

from busbarfem import naming
from busbarfem.case.geometry import Busbar, Module
from busbarfem.geometry.assembly import (
    PRIORITY_CELL,
    PRIORITY_SHEET,
    Assembly,
    FaceSelector,
    Feature,
    Part,
    curve_is_circle_at,
)
from busbarfem.geometry import instancing
from busbarfem.geometry.busbar import add_busbar
from busbarfem.geometry.joints import add_nugget
from busbarfem.geometry.stack import add_stack_module
from busbarfem.naming import RegionInfo

MARGIN = 0.0005  # plate overhang beyond the terminal it covers [m]
HOLDER = "holder"  # region name of the cell holder
PRIORITY_HOLDER = PRIORITY_CELL - 10  # the cell bodies cut their volume out of the holder


class _Terminal:
    """One cell terminal disk: where it is and which side (top/bottom) it faces."""

    def __init__(self, name: str, x: float, y: float, r: float, side: str, z_lo: float,
                 z_hi: float) -> None:
        self.name, self.x, self.y, self.r, self.side = name, x, y, r, side
        self.z_lo, self.z_hi = z_lo, z_hi


def _split_plate(plate: Part, members: list[_Terminal], x0: float, x1: float, ya: float,
                 yb: float, z0: float, bt: float) -> None:
    """Replace a plate's box spanning several cell rows by one box per row.

    The pieces share their faces (the one fragment makes them conformal) and stay one
    region; cut halfway between rows, the inner rows' pieces are translated copies, which
    :mod:`busbarfem.geometry.instancing` meshes once. The plate's faces
    (``.start``/``.end``/``.top``/``.bottom``) are found by plane, so they collect the
    pieces' faces. (Cutting also between the two stages' terminals gave more copies but
    cost more in the fragment than it saved: 8s6p 21.4 s vs 17.6 s CPU.)
    """
    occ = gmsh.model.occ
    rows = sorted({round(t.y, 12) for t in members})
    ys = [ya] + [(u + v) / 2 for u, v in zip(rows[:-1], rows[1:], strict=True)] + [yb]
    if len(ys) == 2:
        return
    occ.remove(plate.dimtags, recursive=True)
    plate.dimtags = [(3, occ.addBox(x0, yl, z0, x1 - x0, yh - yl, bt))
                     for yl, yh in zip(ys[:-1], ys[1:], strict=True)]


def add_module(asm: Assembly, mod: Module, first_busbar: int, first_weld: int) -> dict:
    """Add the module's solids to ``asm``; returns a summary (plates, PCU, terminals)."""
    if mod.cell.type != "cylindrical":
        return add_stack_module(asm, mod, first_busbar, first_weld)
    occ = gmsh.model.occ
    n, m = mod.series, mod.parallel
    pcu = mod.parallel_connected_units or n
    R, H = mod.cell.dimensions()
    px, py = mod.pitch or (2 * R + 0.002, 2 * R + 0.002)
    tt, bt = mod.cell.tab_thickness, mod.busbar_thickness
    c = mod.cell.cap_radius_ratio * R
    two_sided = mod.busbars == "both"
    r_neg = mod.cell.neg_radius_ratio * R if two_sided else 0.18 * R
    d_pad = 0.0 if two_sided else 0.72 * R  # top-only: negative pad offset towards -x

    # ---- cells and their terminals
    terms: dict[tuple[str, int, int], _Terminal] = {}
    for s in range(1, n + 1):
        pos_up = (s % 2 == 1) or not two_sided
        for p in range(1, m + 1):
            x, y = (s - 1) * px, (p - 1) * py
            body = occ.addCylinder(x, y, 0, 0, 0, H, R)
            asm.add(Part(RegionInfo(naming.cell(s, p), 3, mod.cell.material, "cell", None, s, p),
                         [(3, body)], PRIORITY_CELL, volume=math.pi * R**2 * H))
            specs = [("pos", x, c, "top" if pos_up else "bottom")]
            specs.append(("neg", x - d_pad, r_neg, "bottom" if pos_up else "top")
                         if two_sided else ("neg", x - d_pad, r_neg, "top"))
            for pol, tx, tr, side in specs:
                z_lo = H if side == "top" else -tt
                cyl = occ.addCylinder(tx, y, z_lo, 0, 0, tt, tr)
                fld = naming.positive_field(s) if pol == "pos" else naming.negative_field(s)
                name = naming.tab(pol, s, p)
                asm.add(Part(RegionInfo(name, 3, mod.cell.tab_material, "conductor", fld, s, p, pol),
                             [(3, cyl)], PRIORITY_SHEET, volume=math.pi * tr**2 * tt))
                terms[(pol, s, p)] = _Terminal(name, tx, y, tr, side, z_lo, z_lo + tt)

    # ---- holder: a block around the bodies; the cells (higher priority) cut their volume out
    if mod.holder is not None:
        hh, mg = mod.holder.height or H, mod.holder.margin
        lx, ly = (n - 1) * px + 2 * (R + mg), (m - 1) * py + 2 * (R + mg)
        box = occ.addBox(-R - mg, -R - mg, 0.0, lx, ly, hh)
        asm.add(Part(RegionInfo(HOLDER, 3, mod.holder.material, "conductor", 1),
                     [(3, box)], PRIORITY_HOLDER, volume=lx * ly * hh - n * m * math.pi * R**2 * hh))

    # ---- plates: (terminals joined, field, side, stage span for the name)
    z_top, z_bot = H + tt + mod.gap, -tt - mod.gap - bt
    # plates stay within the cells' y extent, so per-string plates keep the row gap apart
    y_lo, y_hi = -R, (m - 1) * py + R
    plates: list[tuple[list[_Terminal], int, str, float, float]] = []
    per_pcu = n // pcu
    for s in range(1, n):
        side = ("top" if s % 2 == 1 else "bottom") if two_sided else "top"
        cross = s % per_pcu == 0  # a PCU ends after stage s: join all strings here
        groups = [list(range(1, m + 1))] if cross else [[p] for p in range(1, m + 1)]
        for g in groups:
            members = [terms[("pos", s, p)] for p in g] + [terms[("neg", s + 1, p)] for p in g]
            ya, yb = (g[0] - 1) * py - R, (g[-1] - 1) * py + R
            plates.append((members, naming.positive_field(s), side, ya, yb))
    neg_members = [terms[("neg", 1, p)] for p in range(1, m + 1)]
    pos_members = [terms[("pos", n, p)] for p in range(1, m + 1)]
    y_term = y_hi + mod.terminal_extension
    plates.append((neg_members, naming.negative_field(1), neg_members[0].side, y_lo, y_term))
    plates.append((pos_members, naming.positive_field(n), pos_members[0].side, y_lo, y_term))

    k_bar, k_weld = first_busbar, first_weld
    plate_names = []
    for members, fld, side, ya, yb in plates:
        x0 = min(t.x - t.r for t in members) - MARGIN
        x1 = max(t.x + t.r for t in members) + MARGIN
        xc = (x0 + x1) / 2
        z0 = z_top if side == "top" else z_bot
        bar = Busbar(path=[(xc, ya), (xc, yb)], width=x1 - x0, thickness=bt, z0=z0,
                     material=mod.busbar_material)
        name = naming.busbar(k_bar)
        add_busbar(asm, bar, RegionInfo(name, 3, mod.busbar_material, "conductor", fld))
        plate = asm.parts[name]
        if instancing.ENABLED:  # per-row plate pieces are copies only worth making when instancing
            _split_plate(plate, members, x0, x1, ya, yb, z0, bt)
        plate_names.append(name)
        k_bar += 1
        # weld every member terminal to the plate: through the gap, half into each sheet
        for t in members:
            if side == "top":
                za, zb = t.z_hi - tt / 2, z0 + bt / 2
            else:
                za, zb = z0 + bt / 2, t.z_lo + tt / 2
            lo, hi = min(za, zb), max(za, zb)
            for j in range(mod.weld.count):
                yj = t.y + (j - (mod.weld.count - 1) / 2) * mod.weld.pitch
                cyl = occ.addCylinder(t.x, yj, lo, 0, 0, hi - lo, mod.weld.radius)
                add_nugget(asm, naming.weld(k_weld), mod.weld.material or mod.busbar_material, fld,
                           cyl, mod.weld.radius, hi - lo, [(t.name, tt / 2), (name, bt / 2)],
                           Feature("welds", curve_is_circle_at(
                               (t.x, yj), mod.weld.radius, 1e-6 + 1e-3 * mod.weld.radius)))
                k_weld += 1

    neg_plate, pos_plate = plate_names[-2], plate_names[-1]
    asm.faces["module.negative"] = asm.faces[f"{neg_plate}.end"]
    asm.faces["module.positive"] = asm.faces[f"{pos_plate}.end"]
    # cold plate: the bottom-most faces of the module
    if two_sided:
        bottoms = [FaceSelector(nm, (0.0, 0.0, z_bot), (0, 0, -1), 1e3)
                   for (mem, _, side, _, _), nm in zip(plates, plate_names, strict=True)
                   if side == "bottom"]
    else:
        bottoms = [FaceSelector(naming.cell(s, p), ((s - 1) * px, (p - 1) * py, 0.0), (0, 0, -1),
                                1.01 * R) for s in range(1, n + 1) for p in range(1, m + 1)]
    asm.faces["module.bottom"] = bottoms
    return {"pcu": pcu, "pitch": [px, py], "plates": plate_names,
            "terminal_plates": {"neg": neg_plate, "pos": pos_plate},
            "welds": k_weld - first_weld}
