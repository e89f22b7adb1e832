"""Mesh size fields: thin-sheet sizes, feature refinement, curvature.

The background size is the minimum of
  * a ``Constant`` field per thin part (busbar, tab) with size
    ``thin_aspect * thickness / elements_through_thickness`` so sheets get several
    elements across their thickness without refining the bulky parts, or the size a
    builder asked for (``Part.size``: pouch foil tabs, meshed one element thick because
    the potential does not vary across a 0.1-0.4 mm foil);
  * a ``Distance``+``Threshold`` pair per feature class and local size (bend arcs and
    sharp inner corners, bolt/hole edges, nugget edges, via edges; and, for any geometry
    including STEP, the edges of the interfaces between regions and of the terminal
    faces), because the current crowds there and the error of P1/P2 sits at those
    re-entrant edges;
  * a ``Constant`` field at the refined size on each volume of ``refine.regions``;
  * the global ``size`` (``Mesh.MeshSizeMax``; a larger ``cell_size`` inside cell
    bodies through one more ``Constant`` field on every other volume) and
    curvature-based sizes.
"""

from __future__ import annotations

from collections import defaultdict

import gmsh

from busbarfem.case.geometry import MeshOptions
from busbarfem.errors import CaseError
from busbarfem.geometry.assembly import Assembly



def _volume_size_field(field, volume_tags, size_in: float, size_out: float) -> int:
    """A gmsh Constant size field: ``size_in`` inside the volumes (and on their boundary)."""
    f = field.add("Constant")
    field.setNumbers(f, "VolumesList", volume_tags)
    field.setNumber(f, "IncludeBoundary", 1)
    field.setNumber(f, "VIn", size_in)
    field.setNumber(f, "VOut", size_out)
    return f

def thin_size(thickness: float, opts: MeshOptions) -> float:
    """Element size [m] in a sheet of ``thickness`` [m]."""
    return min(opts.size, opts.thin_aspect * thickness / opts.elements_through_thickness)


def apply_size_fields(asm: Assembly, opts: MeshOptions) -> dict:
    """Create the size fields for the fragmented assembly; returns a summary for reports."""
    field = gmsh.model.mesh.field
    fields: list[int] = []
    part_size: dict[int, float] = {}
    size_max = max(opts.size, opts.cell_size or 0.0)  # outside every field
    for p in asm.parts.values():
        if p.size is not None:
            h = min(opts.size, max(p.size, opts.min_size or 0.0))
        elif p.thickness is not None:
            h = thin_size(p.thickness, opts)
        else:
            continue
        for t in p.tags:
            part_size[t] = min(h, part_size.get(t, opts.size))
        if h < opts.size:
            fields.append(_volume_size_field(field, p.tags, h, size_max))

    # Curves of each feature class, grouped by the local size of the sheets they touch.
    enabled = {k for k in ("fillets", "bolts", "welds", "vias") if getattr(opts.refine, k)}
    groups: dict[tuple[str, float], set[int]] = defaultdict(set)
    curves = [(gmsh.model.getType(1, c), gmsh.model.getBoundingBox(1, c), c)
              for _, c in gmsh.model.getEntities(1)]
    for feat in asm.features:
        if feat.kind not in enabled:
            continue
        for ctype, bbox, c in curves:
            if feat.curve_test(ctype, bbox):
                h = feat.local_size or _local_size(c, part_size, opts.size)
                groups[(feat.kind, h)].add(c)
    for kind, curve_tags in _named_feature_curves(asm, opts).items():
        for c in curve_tags:
            groups[(kind, _local_size(c, part_size, opts.size))].add(c)
    summary = {}
    for name in opts.refine.regions:
        part = asm.parts.get(name)
        if part is None:
            raise CaseError(f"unknown region '{name}'", key=f"mesh.refine.regions.{opts.refine.regions.index(name)}",
                            choices=sorted(asm.parts), bad=name)
        h = min(part_size.get(t, opts.size) for t in part.tags)
        h_min = max(opts.refine.size or opts.refine.size_factor * h, opts.min_size or 0.0)
        fields.append(_volume_size_field(field, part.tags, h_min, size_max))
        summary[f"region:{name}"] = {"volumes": len(part.tags), "size_min": h_min}
    for (kind, h), tags in groups.items():
        h_min = opts.refine.size or opts.refine.size_factor * h
        if opts.min_size:
            h_min = max(h_min, opts.min_size)
        d = field.add("Distance")
        field.setNumbers(d, "CurvesList", sorted(tags))
        field.setNumber(d, "Sampling", 60)
        t = field.add("Threshold")
        field.setNumber(t, "InField", d)
        field.setNumber(t, "SizeMin", h_min)
        field.setNumber(t, "SizeMax", size_max)
        field.setNumber(t, "DistMin", 0.5 * h_min)
        field.setNumber(t, "DistMax", opts.refine.distance)
        fields.append(t)
        summary[f"{kind}@{h:.3g}"] = {"curves": len(tags), "size_min": h_min}
    if size_max > opts.size:
        # everything but the cell bodies keeps `size`; cell faces touching a conductor
        # take the conductor's size (IncludeBoundary) so the interface stays resolved
        others = [t for p in asm.parts.values() if p.info.kind != "cell" for t in p.tags]
        if others:
            f = field.add("Constant")
            field.setNumbers(f, "VolumesList", others)
            field.setNumber(f, "IncludeBoundary", 1)
            field.setNumber(f, "VIn", opts.size)
            field.setNumber(f, "VOut", opts.cell_size)
            fields.append(f)
    if fields:
        fmin = field.add("Min")
        field.setNumbers(fmin, "FieldsList", fields)
        field.setAsBackgroundMesh(fmin)
    gmsh.option.setNumber("Mesh.MeshSizeMax", size_max)
    gmsh.option.setNumber("Mesh.MeshSizeMin", opts.min_size or 0.0)
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
    gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", opts.curvature_elements)
    return summary


def _named_feature_curves(asm: Assembly, opts: MeshOptions) -> dict[str, set[int]]:
    """Curves of the geometry-independent refinement switches (``interfaces``, ``terminals``).

    ``interfaces``: the boundary curves of every face shared by volumes of two different
    regions; ``None`` means on when the model is imported from STEP (no builder features).
    ``terminals``: the boundary curves of the terminal faces.
    """
    from busbarfem import naming

    interfaces = opts.refine.interfaces
    if interfaces is None:
        interfaces = "step" in asm.summary
    out: dict[str, set[int]] = {}
    if interfaces:
        region_of = {t: name for name, p in asm.parts.items() for t in p.tags}
        curves: set[int] = set()
        for _, f in gmsh.model.getEntities(2):
            vols, _ = gmsh.model.getAdjacencies(2, f)
            if len({region_of.get(int(v)) for v in vols}) > 1:
                _, edges = gmsh.model.getAdjacencies(2, f)
                curves.update(int(abs(c)) for c in edges)
        if curves:
            out["interfaces"] = curves
    if opts.refine.terminals:
        curves = set()
        for dim, tag in gmsh.model.getPhysicalGroups(2):
            if gmsh.model.getPhysicalName(dim, tag) in (naming.TERMINAL_POS, naming.TERMINAL_NEG):
                for f in gmsh.model.getEntitiesForPhysicalGroup(dim, tag):
                    _, edges = gmsh.model.getAdjacencies(2, int(f))
                    curves.update(int(abs(c)) for c in edges)
        if curves:
            out["terminals"] = curves
    return out


def _local_size(curve: int, part_size: dict[int, float], default: float) -> float:
    """Smallest thin-sheet size among the volumes around ``curve`` (else ``default``)."""
    h = default
    surfs, _ = gmsh.model.getAdjacencies(1, curve)
    for s in surfs:
        vols, _ = gmsh.model.getAdjacencies(2, s)
        for v in vols:
            h = min(h, part_size.get(int(v), default))
    return h
