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


def _shared_planar_faces(asm, a: str, b: str, key: str) -> list[tuple[int, np.ndarray, float]]:
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
        c = np.asarray(gmsh.model.occ.getCenterOfMass(2, f))
        vb = next(iter(up & vols_b))
        bb = np.asarray(gmsh.model.getBoundingBox(3, vb))
        eps = 1e-6 * float(np.linalg.norm(bb[3:] - bb[:3]))
        if not gmsh.model.isInside(3, vb, list(c + eps * n)):
            n = -n
        out.append((f, n, gmsh.model.occ.getMass(2, f)))
    if not out:
        raise CaseError(f"{a} and {b} share no face: a contact needs the two solids to touch", key=key)
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
        faces = _shared_planar_faces(asm, a, b, key)
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
