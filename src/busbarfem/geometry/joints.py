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

from busbarfem.case.geometry import Busbar, ViaArray, Weld
from busbarfem.errors import CaseError
from busbarfem.geometry.assembly import PRIORITY_INSERT, Assembly, Feature, Part, curve_is_circle_at
from busbarfem.naming import RegionInfo


def _span(lower: Busbar, upper: Busbar) -> tuple[float, float]:
    return lower.z0, upper.z0 + upper.thickness


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
    a = math.pi * weld.radius**2
    for k, (x, y) in enumerate(weld.pattern.positions()):
        name = f"weld_{first_index + k}"
        cyl = occ.addCylinder(x, y, z_lo, 0, 0, z_hi - z_lo, weld.radius)
        parts.append(asm.add(Part(RegionInfo(name, 3, material, "conductor", field), [(3, cyl)],
                                  PRIORITY_INSERT, volume=a * (z_hi - z_lo))))
        for host, t in ((tab_name, tab.thickness), (bar_name, weld.depth)):
            if asm.parts[host].volume is not None:
                asm.parts[host].volume -= a * t
        tol = 1e-6 + 1e-3 * weld.radius
        asm.features.append(Feature("welds", curve_is_circle_at((x, y), weld.radius, tol)))
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
    a = math.pi * vias.radius**2
    parts = []
    for k, (x, y) in enumerate(vias.pattern.positions()):
        name = f"via_{first_index + k}"
        cyl = occ.addCylinder(x, y, z_lo, 0, 0, z_hi - z_lo, vias.radius)
        parts.append(asm.add(Part(RegionInfo(name, 3, material, "conductor", field), [(3, cyl)],
                                  PRIORITY_INSERT, volume=a * (z_hi - z_lo))))
        for layer in (lower, upper):
            host = asm.parts[names[id(layer)]]
            if host.volume is not None:
                host.volume -= a * layer.thickness
        tol = 1e-6 + 1e-3 * vias.radius
        asm.features.append(Feature("vias", curve_is_circle_at((x, y), vias.radius, tol)))
    return parts
