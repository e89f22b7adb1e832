"""Contact resistance as a thin conformal layer (issue 16; docs/theory.md, Contact resistance).

A contact between solids ``a`` and ``b`` (``geometry.contacts``) becomes a layer region
``contact.<a>.<b>`` of thickness ``t`` carved out of ``b`` along every face the two share:
planar faces are extruded by ``t`` into ``b``; cylindrical ones (a shank in its bore) get a
tube of radial thickness ``t_c`` with ``r ln(1 + t_c / r) = t`` (``b`` outside) or
``r ln(r / (r - t_c)) = t`` (``b`` inside), which gives the tube the planar layer's
``t / (phi r h)`` resistance factor, so one derived material is exact on both. Its material is derived from the specific values and from ``b``'s own material so
that the layer replaces the slab of ``b`` it occupies *and* adds the contact:

    rho_layer = r_c / t + rho_b        (electrical: R_layer = (r_c + t rho_b) / A)
    1 / k_layer = 1 / (h_c t) + 1 / k_b  (thermal:   R_layer = (1 / h_c + t / k_b) / A)

so the model's resistance is ``R_bulk + r_c / A`` exactly (up to discretisation) and does
not depend on ``t``. The contact's Joule heat ``I^2 r_c / A`` is deposited in the layer
(plus the ``t rho_b`` share of ``b``'s own bulk heat the layer took over). A temperature
table ``r_c(T)`` enters through the solver's linear resistivity law (fitted, see
:class:`busbarfem.case.geometry.Contact`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gmsh
import numpy as np

from busbarfem.errors import CaseError
from busbarfem.naming import RegionInfo

PRIORITY_CONTACT = 30  # the layer owns the slab it is carved from


def region_material(geometry, name: str) -> str | None:
    """Material name of the builder/STEP region ``name`` (None if it has none or is unknown)."""
    kind, _, idx = name.rpartition("_")
    if idx.isdigit():
        i = int(idx) - 1
        lists = {"busbar": geometry.busbars, "bolt": geometry.bolts}
        if kind in lists and 0 <= i < len(lists[kind]):
            return lists[kind][i].material
        if kind in ("washer", "nut") and 0 <= i < len(geometry.bolts):
            fit = getattr(geometry.bolts[i], kind)
            return fit.material if fit is not None else None
    for t in geometry.tabs:
        if name == f"tab_{t.polarity}_{t.stage}_{t.parallel}":
            return t.material
    if geometry.step is not None:
        spec = geometry.step.regions().get(name)
        if spec is not None:
            return spec.material
    return None


def contact_materials(geometry, materials: dict) -> dict:
    """Derived layer materials ``contact.<a>.<b>`` -> Material (see the module docstring).

    Raises:
        ValueError: a contact whose carved region has no known material.
    """
    out = {}
    for k, c in enumerate(geometry.contacts):
        host = region_material(geometry, c.between[1])
        if host is None or host not in materials:
            raise ValueError(f"geometry.contacts.{k}.between: no conductor region {c.between[1]!r} with a "
                             "known material (busbar_<i>, bolt_<i>, washer_<i>, nut_<i>, tab_..., STEP regions)")
        m = materials[host]
        r0, a_c, T_ref = c.linear_r_c()
        _, h_c = c.values()
        rho_h = (1 + m.alpha * (T_ref - m.T_ref)) / m.sigma_ref  # host resistivity at the contact's T_ref
        rho_l = r0 / c.thickness + rho_h
        alpha = (r0 / c.thickness * a_c + m.alpha / m.sigma_ref) / rho_l
        k_h = m.k if isinstance(m.k, float) else min(m.k)
        k_l = 1.0 / (1.0 / (h_c * c.thickness) + 1.0 / k_h)
        out[c.name] = m.model_copy(update={
            "sigma_ref": 1.0 / rho_l, "alpha": alpha, "T_ref": T_ref, "k": k_l,
            "source": f"contact layer: r_c = {r0:g} ohm m^2, h_c = {h_c:g} W/m^2/K over {c.thickness:g} m "
                      f"of {host}"})
    return out


def _point_on_face(f: int, lo, hi) -> np.ndarray:
    """A point of face ``f`` (its centre of mass may lie in a hole: try a parameter grid)."""
    for fu in (0.5, 0.3, 0.7, 0.1, 0.9, 0.2, 0.8):
        for fv in (0.5, 0.3, 0.7, 0.1, 0.9, 0.2, 0.8):
            uv = [lo[0] + fu * (hi[0] - lo[0]), lo[1] + fv * (hi[1] - lo[1])]
            x = gmsh.model.getValue(2, f, uv)
            if gmsh.model.isInside(2, f, list(x)):
                return np.asarray(x)
    return np.asarray(gmsh.model.occ.getCenterOfMass(2, f))


@dataclass
class Interface:
    """One face between the two solids of a contact.

    Attributes:
        face: gmsh face tag; ``normal``: unit normal into ``b`` (planar faces);
        area: face area [m^2]; ``cylinder``: (axis point, unit axis, radius, u0, sweep,
        v-extent points (P(u0, v0), P(u0, v1)), +1 if ``b`` lies outside the radius else -1)
        for a cylindrical face, None for a planar one.
    """

    face: int
    normal: np.ndarray | None
    area: float
    cylinder: tuple | None = None


def _cylinder_of(f: int, key: str, a: str, b: str, vb: int, eps: float) -> tuple:
    """Axis, radius and angular range of the cylindrical face ``f`` (see :class:`Interface`)."""
    lo, hi = gmsh.model.getParametrizationBounds(2, f)
    u0, u1, v0, v1 = lo[0], hi[0], lo[1], hi[1]
    du, dv = np.asarray(gmsh.model.getDerivative(2, f, [u0, v0])).reshape(2, 3)
    r = float(np.linalg.norm(du))
    axis = dv / np.linalg.norm(dv)
    p00 = np.asarray(gmsh.model.getValue(2, f, [u0, v0]))
    p01 = np.asarray(gmsh.model.getValue(2, f, [u0, v1]))
    n = np.asarray(gmsh.model.getNormal(f, [u0, v0]))
    pm = np.asarray(gmsh.model.getValue(2, f, [(u0 + u1) / 2, v0]))
    centre = p00 - r * n
    if abs(np.linalg.norm(pm - centre) - r) > 1e-6 * r:
        centre = p00 + r * n
    e = (p00 - centre) / r
    # the angle increases about +axis (right hand) or -axis
    p_next = np.asarray(gmsh.model.getValue(2, f, [u0 + 1e-3 * (u1 - u0), v0]))
    if np.dot(np.cross(axis, e), p_next - p00) < 0:
        axis = -axis
    sweep = u1 - u0
    height = float(np.linalg.norm(p01 - p00))
    area = gmsh.model.occ.getMass(2, f)
    if abs(area - r * sweep * height) > 1e-6 * area:
        raise CaseError(f"{a} and {b} share a cylindrical face that is not bounded by two circles and two "
                        "axis lines (a trimmed cylinder); contact layers on cylinders need a plain sleeve "
                        "or a sector of one", key=key)
    mid = np.asarray(gmsh.model.getValue(2, f, [(u0 + u1) / 2, (v0 + v1) / 2]))
    radial = mid - centre - np.dot(mid - centre, axis) * axis
    radial /= np.linalg.norm(radial)
    outside = gmsh.model.isInside(3, vb, list(mid + eps * radial))
    if outside == gmsh.model.isInside(3, vb, list(mid - eps * radial)):
        raise CaseError(f"cannot tell on which side of the cylindrical face between {a} and {b} {b} lies",
                        key=key)
    return centre, axis, r, u0, sweep, (p00, p01), 1 if outside else -1


def _shared_faces(asm, a: str, b: str, key: str, eps: float) -> list[Interface]:
    """Every face between regions a and b: planar (normal into ``b``) or cylindrical."""
    vols_a, vols_b = set(asm.parts[a].tags), set(asm.parts[b].tags)
    out = []
    for _, f in gmsh.model.getEntities(2):
        up, _ = gmsh.model.getAdjacencies(2, f)
        up = {int(v) for v in up}
        if not (up & vols_a and up & vols_b):
            continue
        vb = next(iter(up & vols_b))
        kind = gmsh.model.getType(2, f)
        if kind == "Cylinder":
            cyl = _cylinder_of(f, key, a, b, vb, eps)
            out.append(Interface(f, None, gmsh.model.occ.getMass(2, f), cyl))
            continue
        if kind != "Plane":
            raise CaseError(f"{a} and {b} share a {kind} face; contact layers are built on planar and "
                            "cylindrical interfaces (lug, washer or butt faces; a shank in its bore)", key=key)
        lo, hi = gmsh.model.getParametrizationBounds(2, f)
        n = np.asarray(gmsh.model.getNormal(f, [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2]))
        c = _point_on_face(f, lo, hi)
        inside_b = gmsh.model.isInside(3, vb, list(c + eps * n))
        if inside_b == gmsh.model.isInside(3, vb, list(c - eps * n)):
            raise CaseError(f"cannot tell on which side of the face between {a} and {b} {b} lies", key=key)
        if not inside_b:
            n = -n
        out.append(Interface(f, n, gmsh.model.occ.getMass(2, f)))
    if not out:
        raise CaseError(f"{a} and {b} share no face: a contact needs the two solids to touch", key=key)
    return out


def _continues_past_bore(asm, b: str, itf: Interface) -> bool:
    """Whether ``b`` has an exterior cylindrical face coaxial with the interface, of its radius
    (the shank goes on beyond the bore, so its nodes on the bore's rim would touch ``a``)."""
    centre, axis, r = itf.cylinder[:3]
    for v in asm.parts[b].tags:
        _, faces = gmsh.model.getAdjacencies(3, v)
        for f in map(int, faces):
            if f == itf.face or gmsh.model.getType(2, f) != "Cylinder":
                continue
            up, _ = gmsh.model.getAdjacencies(2, f)
            if len(up) != 1:
                continue
            lo, hi = gmsh.model.getParametrizationBounds(2, f)
            x = np.asarray(gmsh.model.getValue(2, f, [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2]))
            d = x - centre - np.dot(x - centre, axis) * axis
            if abs(np.linalg.norm(d) - r) <= 1e-6 * r:
                return True
    return False


def cylinder_layer_thickness(r: float, t: float, outside: bool) -> float:
    """Radial thickness of a cylindrical layer at radius ``r`` with the resistance of a planar one.

    A layer of resistivity rho from r to r + t_c has R = rho ln(1 + t_c / r) / (phi h), and the
    planar formula gives rho t / (phi r h); they agree for r ln(1 + t_c / r) = t (outside) and
    r ln(r / (r - t_c)) = t (inside), so the derived material stays exact on a cylinder.
    """
    return r * math.expm1(t / r) if outside else -r * math.expm1(-t / r)


def _cylinder_slab(occ, itf: Interface, t: float) -> tuple[list, float]:
    """The layer on a cylindrical interface (a revolved rectangle); returns (dimtags, volume)."""
    centre, axis, r, _u0, sweep, (p00, p01), side = itf.cylinder
    tc = cylinder_layer_thickness(r, t, side > 0)
    e = (p00 - centre - np.dot(p00 - centre, axis) * axis) / r
    corners = [p00, p01, p01 + side * tc * e, p00 + side * tc * e]
    pts = [occ.addPoint(*map(float, q)) for q in corners]
    lines = [occ.addLine(pts[k], pts[(k + 1) % 4]) for k in range(4)]
    surf = occ.addPlaneSurface([occ.addCurveLoop(lines)])
    out = occ.revolve([(2, surf)], *map(float, centre), *map(float, axis), sweep)
    r_in, r_out = (r, r + tc) if side > 0 else (r - tc, r)
    height = float(np.linalg.norm(p01 - p00))
    return [dt for dt in out if dt[0] == 3], sweep / 2 * (r_out**2 - r_in**2) * height


def _band_faces(asm, b: str, faces, t: float) -> list[tuple[int, np.ndarray, float]]:
    """Pieces of ``b``'s exterior faces coplanar with the (planar) contact faces, within 10 t of them."""
    if not faces:
        return []
    occ = gmsh.model.occ
    shared = {f for f, _, _ in faces}
    boxes = np.array([gmsh.model.getBoundingBox(2, f) for f in shared])
    d = 10 * t
    lo, hi = boxes[:, :3].min(axis=0) - d, boxes[:, 3:].max(axis=0) + d
    out = []
    vols_b = set(asm.parts[b].tags)
    for f0, n, _ in faces:
        p0 = _point_on_face(f0, *gmsh.model.getParametrizationBounds(2, f0))
        for v in vols_b:
            _, bnd = gmsh.model.getAdjacencies(3, v)
            for f in map(int, bnd):
                if f in shared or gmsh.model.getType(2, f) != "Plane":
                    continue
                up, _ = gmsh.model.getAdjacencies(2, f)
                if len(up) != 1:
                    continue
                lo_f, hi_f = gmsh.model.getParametrizationBounds(2, f)
                q = _point_on_face(f, lo_f, hi_f)
                nf = np.asarray(gmsh.model.getNormal(f, [(lo_f[0] + hi_f[0]) / 2, (lo_f[1] + hi_f[1]) / 2]))
                if abs(abs(np.dot(nf, n)) - 1) > 1e-9 or abs(np.dot(q - p0, n)) > 1e-9 + 1e-9 * d:
                    continue
                fb = np.asarray(gmsh.model.getBoundingBox(2, f))
                if np.any(fb[:3] > hi) or np.any(fb[3:] < lo):
                    continue
                box = occ.addBox(*map(float, lo), *map(float, hi - lo))
                pieces, _ = occ.intersect(occ.copy([(2, f)]), [(3, box)])
                out += [(tag, n, occ.getMass(2, tag)) for dim, tag in pieces if dim == 2]
        shared.update(f for f, _, _ in out)
    return out


def add_contacts(asm, geometry) -> None:
    """Carve the contact layers out of the fragmented assembly (call after ``asm.fragment()``)."""
    if not geometry.contacts:
        return
    occ = gmsh.model.occ
    slabs: list[tuple[str, list]] = []
    for k, c in enumerate(geometry.contacts):
        key = f"geometry.contacts.{k}"
        a, b = c.between
        for j, r in enumerate((a, b)):
            if r not in asm.parts:
                raise CaseError(f"no region {r!r} to put a contact on", key=f"{key}.between.{j}",
                                choices=sorted(asm.parts), bad=r)
        interfaces = _shared_faces(asm, a, b, key, 0.5 * c.thickness)
        faces = [(i.face, i.normal, i.area) for i in interfaces if i.cylinder is None]
        host = asm.parts[b]
        if host.thickness is not None and c.thickness > 0.25 * host.thickness:
            raise CaseError(f"contact layer thickness {c.thickness:g} m is more than a quarter of {b}'s "
                            f"thickness {host.thickness:g} m; use a thinner layer", key=f"{key}.thickness")
        dts = []
        area = volume = 0.0
        for f, n, a_f in faces:
            out = occ.extrude([(2, f)], *map(float, c.thickness * n))
            dts += [dt for dt in out if dt[0] == 3]
            area += a_f
            volume += a_f * c.thickness
        for itf in interfaces:
            if itf.cylinder is None:
                continue
            if itf.cylinder[6] < 0 and _continues_past_bore(asm, b, itf):
                raise CaseError(f"{b} runs on past the bore of {a} (a protruding shank): a layer carved out "
                                f"of {b} would be bypassed where it leaves the bore; carve it out of the solid "
                                f"with the bore instead (between: [{b}, {a}])", key=f"{key}.between")
            if itf.cylinder[6] < 0 and c.thickness > 0.25 * itf.cylinder[2]:
                raise CaseError(f"contact layer thickness {c.thickness:g} m is more than a quarter of the "
                                f"radius {itf.cylinder[2]:g} m of the bore it lines; use a thinner layer",
                                key=f"{key}.thickness")
            new, vol = _cylinder_slab(occ, itf, c.thickness)
            dts += new
            area += itf.area
            volume += vol
        # a band of the layer over b's coplanar exterior faces next to the contact: where b runs
        # on past the edge of a (a lap joint), a and b would otherwise share that edge, and the
        # nodes on it would short the layer in the finite-element solution
        for f_band, n, a_f in _band_faces(asm, b, faces, c.thickness):
            out = occ.extrude([(2, f_band)], *map(float, c.thickness * n))
            dts += [dt for dt in out if dt[0] == 3]
            area += a_f
            volume += a_f * c.thickness
        if host.volume is not None:
            host.volume -= volume
        slabs.append((c.name, dts, volume, host, key, area))
    # re-fragment the (already conformal) model with the slabs; the slabs win their pieces
    old = [(name, (3, t)) for name, p in asm.parts.items() for t in p.tags]
    new = [(name, dt) for name, dts, *_ in slabs for dt in dts]
    inputs = [dt for _, dt in old + new]
    _, out_map = occ.fragment(inputs[:len(old)], inputs[len(old):])
    occ.synchronize()
    owner: dict[int, str] = {}
    for (name, _), pieces in zip(old + new, out_map, strict=True):
        for dim, tag in pieces:
            if dim == 3 and (tag not in owner or name.startswith("contact.")):
                owner[tag] = name
    from busbarfem.geometry.assembly import Part

    for name, _dts, vol, host, key, _area in slabs:
        asm.parts[name] = Part(info=RegionInfo(name, 3, name, "conductor", host.info.field), dimtags=[],
                               priority=PRIORITY_CONTACT, volume=vol, size=1.0, key=key)
    for p in asm.parts.values():
        p.tags = sorted(t for t, n in owner.items() if n == p.info.name)
    asm.summary["contacts"] = {name: {"area_m2": area, "thickness_m": c.thickness}
                               for (name, _d, _v, _h, _k, area), c in zip(slabs, geometry.contacts, strict=True)}
    asm.check_volumes()
