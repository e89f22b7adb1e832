"""Geometry plausibility checks made before any solid is built (``validate`` runs them too).

A case can be valid key by key and still be impossible or enormous: a path that runs
back over itself, a tab 1 m above the busbar it is welded to (an mm/m slip), 400 vias
stacked on one spot, a 1000s1000p module. OpenCASCADE and Gmsh then take minutes to hours
or run out of memory before any error appears. These checks need only the case data
(no gmsh), answer in milliseconds, and name the key (and so the line) of the culprit.

* :func:`estimate_elements`: a (conservative) lower bound on the tetrahedron count (sheet volumes at
  their through-thickness element size, cell bodies at ``cell_size``), compared with
  ``mesh.max_elements``;
* every busbar/tab path stays at least one width away from its own non-adjacent segments;
* a weld or via bridges a vertical gap of at most :data:`MAX_GAP_FACTOR` times the joined
  thicknesses plus its radius;
* no two joint cylinders (weld nuggets, vias) overlap;
* at most :data:`MAX_PATH_POINTS` points per path and :data:`MAX_INSERTS` joints in all.
"""

from __future__ import annotations

import math

from busbarfem.case.loader import CaseSource

#: Most points in one busbar or tab path.
MAX_PATH_POINTS = 1000
#: Most weld nuggets plus vias in one case.
MAX_INSERTS = 10_000
#: A joint may bridge a gap of at most this many times (joined thicknesses + radius).
MAX_GAP_FACTOR = 10.0

#: Fewest tetrahedra one module cell brings (its body, two terminals/tabs and their welds,
#: each a closed solid of at least a few tetrahedra): 24, whatever the sizes.
MIN_TETS_PER_CELL = 24
_REGULAR_TET = 6.0 * math.sqrt(2.0)  # edge^3 / volume of a regular tetrahedron
#: Gmsh's edges exceed the target size by up to ~1.5x (so its tets are up to ~3.4x the
#: regular tet of the target edge): the estimate counts a quarter of the regular tets.
SLACK = 0.25


def _tets(volume: float, h: float) -> float:
    """Tetrahedra of edge ``h`` in ``volume``; infinite when h**3 underflows (h ~ 1e-300)."""
    cell = h**3 / _REGULAR_TET
    return SLACK * volume / cell if cell > 0.0 else math.inf


def _sheet_size(thickness: float, mesh) -> float:
    """Largest element size gmsh may use in a sheet (cf. geometry.sizing.thin_size)."""
    thin = min(mesh.size, mesh.thin_aspect * thickness / mesh.elements_through_thickness)
    return min(mesh.size, max(thin, mesh.min_size or 0.0))


def _cell_volume(cell) -> float:
    if cell.type == "cylindrical":
        r, h = cell.dimensions()
        return math.pi * r * r * h
    if cell.type == "prismatic":
        return cell.width * cell.depth * cell.height
    return cell.width * cell.height * cell.thickness


def estimate_elements(geometry, mesh) -> dict[str, float]:
    """Lower bound on the tetrahedra per kind of solid (busbars, tabs, bolts, cells).

    Each solid is meshed with elements no larger than its size field allows; a tetrahedron
    of target edge h is counted as :data:`SLACK` of the regular one (h^3 / 6 sqrt 2), since
    gmsh's edges overshoot the target; refinement only adds elements. STEP and external meshes are not estimated here (their size is known
    only after import; the guard after the build covers them).
    """
    out: dict[str, float] = {}
    for kind, strips in (("busbars", geometry.busbars), ("tabs", geometry.tabs)):
        n = 0.0
        for s in strips:
            bar = s.as_busbar() if hasattr(s, "as_busbar") else s
            n += _tets(bar.centre_length() * s.width * s.thickness, _sheet_size(s.thickness, mesh))
        if n:
            out[kind] = n
    if geometry.bolts:
        out["bolts"] = sum(_tets(math.pi * b.radius**2 * sum(b.protrusion()), mesh.size) for b in geometry.bolts)
    mod = geometry.module
    if mod is not None:
        h = mesh.cell_size or mesh.size
        per_cell = max(MIN_TETS_PER_CELL, _tets(_cell_volume(mod.cell), h))
        out["cells"] = mod.series * mod.parallel * per_cell
    return out


def _seg_dist(p, q, r, s) -> float:
    """Distance between segments pq and rs in the plane."""
    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    d1, d2, d3, d4 = cross(r, s, p), cross(r, s, q), cross(p, q, r), cross(p, q, s)
    if ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and d1 and d2 and d3 and d4:
        return 0.0

    def pt_seg(a, b, c):
        bx, by = c[0] - b[0], c[1] - b[1]
        L2 = bx * bx + by * by
        t = 0.0 if L2 == 0 else max(0.0, min(1.0, ((a[0] - b[0]) * bx + (a[1] - b[1]) * by) / L2))
        return math.hypot(a[0] - b[0] - t * bx, a[1] - b[1] - t * by)

    return min(pt_seg(p, r, s), pt_seg(q, r, s), pt_seg(r, p, q), pt_seg(s, p, q))


def _seg_dist3(p, q, r, s) -> float:
    """Distance between segments pq and rs in space (clamped closest points)."""
    import numpy as np

    p, q, r, s = (np.asarray(v, dtype=float) for v in (p, q, r, s))
    d1, d2, w = q - p, s - r, p - r
    a, b, c, d, e = d1 @ d1, d1 @ d2, d2 @ d2, d1 @ w, d2 @ w
    den = a * c - b * b
    t = 0.0 if den <= 1e-30 * a * c else min(1.0, max(0.0, (b * e - c * d) / den))
    u = min(1.0, max(0.0, (b * t + e) / c))
    t = min(1.0, max(0.0, (b * u - d) / a))
    return float(np.linalg.norm(p + t * d1 - (r + u * d2)))


def _check_path(path, width: float, key: str, src: CaseSource) -> None:
    if len(path) > MAX_PATH_POINTS:
        raise src.error(f"path has {len(path)} points, more than the {MAX_PATH_POINTS} a busbar or tab may "
                        "have", f"{key}.path")
    n = len(path) - 1
    for i in range(n):
        for j in range(i + 2, n):
            dist = _seg_dist3 if len(path[0]) == 3 else _seg_dist
            d = dist(path[i], path[i + 1], path[j], path[j + 1])
            if d < width:
                what = "crosses itself" if d == 0 else f"comes within {d:.3g} m of itself (width {width:g} m)"
                raise src.error(f"path {what}: segments {i + 1} and {j + 1} (points {i + 1}-{i + 2} and "
                                f"{j + 1}-{j + 2}) overlap; a strip must not run over itself", f"{key}.path")


def _check_gap(gap: float, limit: float, what: str, key: str, src: CaseSource) -> None:
    if gap > limit:
        raise src.error(f"{what} are {gap:.4g} m apart in z, too far for a joint to bridge (at most "
                        f"{limit:.3g} m = {MAX_GAP_FACTOR:g} x (thicknesses + radius)); check z0 and the "
                        "units (mm vs m)", key)


def check_geometry_plausible(case, src: CaseSource) -> None:
    """Raise a located CaseError for geometry that is impossible or far too big to mesh."""
    g, mesh = case.geometry, case.mesh
    for kind, strips in (("busbars", g.busbars), ("tabs", g.tabs)):
        for i, s in enumerate(strips):
            _check_path(s.path, s.width, f"geometry.{kind}.{i}", src)
    total = sum(w.pattern.count if w.pattern.points is None else len(w.pattern.points) for w in g.welds)
    total += sum(v.pattern.count if v.pattern.points is None else len(v.pattern.points) for v in g.vias)
    if total > MAX_INSERTS:
        raise src.error(f"{total} weld nuggets and vias in all, more than {MAX_INSERTS}; model a "
                        "representative part or lump the joints", "geometry.vias" if g.vias else "geometry.welds")
    cyl: list[tuple[float, float, float, float, float, str]] = []  # x, y, r, z_lo, z_hi, key
    for k, w in enumerate(g.welds):
        tab, bar = g.tabs[w.tab - 1], g.busbars[w.busbar - 1]
        if tab.z0 >= bar.z0 + bar.thickness:
            gap, z = tab.z0 - (bar.z0 + bar.thickness), (bar.z0 + bar.thickness - w.depth, tab.z0 + tab.thickness)
        else:
            gap, z = max(0.0, bar.z0 - (tab.z0 + tab.thickness)), (tab.z0, bar.z0 + w.depth)
        _check_gap(gap, MAX_GAP_FACTOR * (tab.thickness + bar.thickness + w.radius),
                   f"tab {w.tab} and busbar {w.busbar}", f"geometry.tabs.{w.tab - 1}.z0", src)
        cyl += [(x, y, w.radius, *z, f"geometry.welds.{k}") for x, y in w.pattern.positions()]
    for k, v in enumerate(g.vias):
        lo, hi = sorted((g.busbars[v.busbars[0] - 1], g.busbars[v.busbars[1] - 1]), key=lambda b: b.z0)
        gap = hi.z0 - (lo.z0 + lo.thickness)
        _check_gap(gap, MAX_GAP_FACTOR * (lo.thickness + hi.thickness + v.radius),
                   f"busbars {v.busbars[0]} and {v.busbars[1]}", f"geometry.vias.{k}.busbars", src)
        cyl += [(x, y, v.radius, lo.z0, hi.z0 + hi.thickness, f"geometry.vias.{k}") for x, y in v.pattern.positions()]
    _check_overlaps(cyl, src)
    est = estimate_elements(g, mesh)
    n = sum(est.values())
    if n > mesh.max_elements:
        parts = ", ".join(f"{k} {v:.3g}" for k, v in sorted(est.items(), key=lambda kv: -kv[1]))
        raise src.error(f"this geometry with mesh.size = {mesh.size:g} m needs at least {n:.3g} tetrahedra "
                        f"({parts}), above mesh.max_elements = {mesh.max_elements:g}; use a larger size or "
                        "cell_size, a smaller model, or raise max_elements if you really mean it",
                        "geometry.module" if est.get("cells", 0) > n / 2 else "mesh.size")


def _check_overlaps(cyl: list, src: CaseSource) -> None:
    """No two joint cylinders may overlap (sweep along x: O(n log n) for spread-out joints)."""
    if len(cyl) < 2:
        return
    order = sorted(range(len(cyl)), key=lambda i: cyl[i][0])
    rmax = max(c[2] for c in cyl)
    for a_i, i in enumerate(order):
        xi, yi, ri, zl, zh, ki = cyl[i]
        for j in order[a_i + 1:]:
            xj, yj, rj, zl2, zh2, kj = cyl[j]
            if xj - xi >= ri + rmax:
                break
            if min(zh, zh2) <= max(zl, zl2):
                continue
            d = math.hypot(xj - xi, yj - yi)
            if d < ri + rj - 1e-12:
                where = "in the same group" if ki == kj else f"and {kj}"
                raise src.error(f"two joints overlap {where}: at ({xi:.6g}, {yi:.6g}) and ({xj:.6g}, {yj:.6g}) m, "
                                f"{d:.3g} m apart with radii {ri:g} + {rj:g} m; space them at least a diameter "
                                "apart (pattern.pitch)", f"{ki}.pattern")
