"""Contact resistance as a thin conformal layer (issue 16; docs/theory.md, Contact resistance).

A contact between solids ``a`` and ``b`` (``geometry.contacts``) becomes a layer region
``contact.<a>.<b>`` of thickness ``t`` carved out of ``b`` along every planar face the two
share. Its material is derived from the specific values and from ``b``'s own material so
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


def _shared_planar_faces(asm, a: str, b: str, key: str, eps: float) -> list[tuple[int, np.ndarray, float]]:
    """(face, unit normal pointing into ``b``, area) of every face between regions a and b."""
    vols_a, vols_b = set(asm.parts[a].tags), set(asm.parts[b].tags)
    out = []
    for _, f in gmsh.model.getEntities(2):
        up, _ = gmsh.model.getAdjacencies(2, f)
        up = {int(v) for v in up}
        if not (up & vols_a and up & vols_b):
            continue
        if gmsh.model.getType(2, f) != "Plane":
            raise CaseError(f"{a} and {b} share a {gmsh.model.getType(2, f)} face; contact layers are "
                            "built on planar interfaces only (flat lug, washer or butt faces)", key=key)
        lo, hi = gmsh.model.getParametrizationBounds(2, f)
        n = np.asarray(gmsh.model.getNormal(f, [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2]))
        c = _point_on_face(f, lo, hi)
        vb = next(iter(up & vols_b))
        inside_b = gmsh.model.isInside(3, vb, list(c + eps * n))
        if inside_b == gmsh.model.isInside(3, vb, list(c - eps * n)):
            raise CaseError(f"cannot tell on which side of the face between {a} and {b} {b} lies", key=key)
        if not inside_b:
            n = -n
        out.append((f, n, gmsh.model.occ.getMass(2, f)))
    if not out:
        raise CaseError(f"{a} and {b} share no face: a contact needs the two solids to touch", key=key)
    return out


def _band_faces(asm, b: str, faces, t: float) -> list[tuple[int, np.ndarray, float]]:
    """Pieces of ``b``'s exterior faces coplanar with the contact faces, within 10 t of them."""
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
        faces = _shared_planar_faces(asm, a, b, key, 0.5 * c.thickness)
        host = asm.parts[b]
        if host.thickness is not None and c.thickness > 0.25 * host.thickness:
            raise CaseError(f"contact layer thickness {c.thickness:g} m is more than a quarter of {b}'s "
                            f"thickness {host.thickness:g} m; use a thinner layer", key=f"{key}.thickness")
        dts = []
        area = 0.0
        for f, n, a_f in faces:
            out = occ.extrude([(2, f)], *map(float, c.thickness * n))
            dts += [dt for dt in out if dt[0] == 3]
            area += a_f
        # a band of the layer over b's coplanar exterior faces next to the contact: where b runs
        # on past the edge of a (a lap joint), a and b would otherwise share that edge, and the
        # nodes on it would short the layer in the finite-element solution
        for f_band, n, a_f in _band_faces(asm, b, faces, c.thickness):
            out = occ.extrude([(2, f_band)], *map(float, c.thickness * n))
            dts += [dt for dt in out if dt[0] == 3]
            area += a_f
        if host.volume is not None:
            host.volume -= area * c.thickness
        slabs.append((c.name, dts, area * c.thickness, host, key))
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

    for name, _dts, vol, host, key in slabs:
        asm.parts[name] = Part(info=RegionInfo(name, 3, name, "conductor", host.info.field), dimtags=[],
                               priority=PRIORITY_CONTACT, volume=vol, size=1.0, key=key)
    for p in asm.parts.values():
        p.tags = sorted(t for t, n in owner.items() if n == p.info.name)
    asm.summary["contacts"] = {name: {"area_m2": vol / c.thickness, "thickness_m": c.thickness}
                               for (name, _d, vol, _h, _k), c in zip(slabs, geometry.contacts, strict=True)}
    asm.check_volumes()
