"""Geometry and meshes made elsewhere: STEP solids mapped by rules, external meshes.

STEP (``geometry.step``): ``occ.importShapes`` reads the solids with their labels, the
shapes are healed, all solids are fragmented together, and
each piece is assigned to a region by the case's rules. The resulting :class:`Part`
objects join the normal assembly, so they mesh and name like built geometry.

Meshes (``geometry.mesh_file``): ``.msh`` is merged by gmsh itself (physical names
survive); ``.med``, ``.inp`` and ``.vtu`` are read by meshio and written into the
current gmsh model as discrete entities (one per region) with the same physical
groups, which is what :func:`dolfinx.io.gmsh.model_to_mesh` reads.

Conductor fields (MSMD stage parity) that a rule leaves open are inferred by
:func:`infer_fields` from the regions they touch.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import gmsh
import numpy as np

from busbarfem import naming
from busbarfem.case.geometry import MeshFile, RegionSpec, StepImport
from busbarfem.errors import CaseError
from busbarfem.geometry.assembly import PRIORITY_SHEET, Assembly, BoxSelector, Part
from busbarfem.naming import GeometryInfo, RegionInfo

_MM = 1e-3


# --------------------------------------------------------------------------- fields
def infer_fields(specs: dict[str, RegionSpec], adjacency: dict[str, set[str]],
                 key: str) -> dict[str, int | None]:
    """Field of every region: given, from a tab's polarity/stage, or through contact.

    A conductor without ``field`` takes the field of the conductors it touches (cells
    stop the propagation: they carry both). A tab with ``polarity`` and ``stage`` gets
    ``positive_field``/``negative_field`` of its stage.

    Raises:
        CaseError: two different fields meet in touching conductors, or a conductor's
            field cannot be inferred while the model has cells.
    """
    fields: dict[str, int | None] = {}
    for name, s in specs.items():
        if s.kind == "cell":
            fields[name] = None
        elif s.field is not None:
            fields[name] = s.field
        elif s.polarity is not None and s.stage is not None:
            fields[name] = (naming.positive_field(s.stage) if s.polarity == "pos"
                            else naming.negative_field(s.stage))
    seeds = [n for n, f in fields.items() if f is not None]
    while seeds:
        cur = seeds.pop()
        for nb in adjacency.get(cur, ()):
            if nb not in specs or specs[nb].kind == "cell":
                continue
            if fields.get(nb) is None:
                fields[nb] = fields[cur]
                seeds.append(nb)
            elif fields[nb] != fields[cur]:
                raise CaseError(
                    f"conductors {cur!r} (field {fields[cur]}) and {nb!r} (field {fields[nb]}) "
                    "touch but carry different potentials; check field/polarity/stage", key=key)
    has_cells = any(s.kind == "cell" for s in specs.values())
    for name, s in specs.items():
        if s.kind != "cell" and fields.get(name) is None:
            if has_cells:
                raise CaseError(f"cannot infer the field of conductor {name!r} (it touches no "
                                "conductor with a known field); give its field", key=key)
            fields[name] = 1
    return fields


def _info(name: str, spec: RegionSpec, fld: int | None) -> RegionInfo:
    return RegionInfo(name, 3, spec.material or ("cell" if spec.kind == "cell" else None),
                      spec.kind, fld, spec.stage, spec.parallel, spec.polarity)


# --------------------------------------------------------------------------- STEP
def _read_step(path: Path, heal: bool) -> list[tuple[int, str]]:
    """Import the solids of a STEP file in millimetres; returns (volume tag, label) pairs."""
    from busbarfem.safeio import check_regular_file

    if not path.is_file():
        raise CaseError(f"STEP file {path} does not exist", key="geometry.step.file")
    check_regular_file(path, "STEP file", key="geometry.step.file", file="")
    with open(path, "rb") as fh:
        head = fh.read(64).lstrip()
    if not head.startswith(b"ISO-10303-21"):
        raise CaseError(f"{path.name} is not a STEP file (a STEP file starts with "
                        "'ISO-10303-21;')", key="geometry.step.file")
    occ = gmsh.model.occ
    gmsh.option.setString("Geometry.OCCTargetUnit", "MM")
    gmsh.option.setNumber("Geometry.OCCImportLabels", 1)
    try:
        out = occ.importShapes(str(path), highestDimOnly=True, format="step")
        occ.synchronize()
    except Exception as exc:
        raise CaseError(f"could not read STEP file {path.name}: {exc}",
                        key="geometry.step.file") from None
    labels = {tag: gmsh.model.getEntityName(dim, tag) for dim, tag in out if dim == 3}
    tags = sorted(labels)
    if heal and out:
        # healing works on the whole shape list and keeps the tags of solids it does
        # not replace; a solid it rebuilds loses its label (it then matches by bbox only)
        healed = occ.healShapes(out, makeSolids=True)
        occ.synchronize()
        tags = sorted({t for d, t in healed if d == 3})
    solids = [(t, labels.get(t) or gmsh.model.getEntityName(3, t)) for t in tags]
    if not solids:
        raise CaseError(f"STEP file {path.name} holds no solid (only {len(out)} lower-dimensional "
                        "shapes); export solids", key="geometry.step.file")
    return solids


def _fmt_box(b) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in b) + "]"


def _inside(inner, outer, tol: float) -> bool:
    return all(inner[i] >= outer[i] - tol for i in range(3)) and \
        all(inner[i + 3] <= outer[i + 3] + tol for i in range(3))


def _unit_hint(step: StepImport, boxes: list, unmatched: list, tol: float) -> str:
    """Where the solids are and in which unit they were read; names the other unit when
    the bbox rules would match more of the unmatched solids with it (a unit mix-up)."""
    span = [min(b[i] for b in boxes) for i in range(3)] + [max(b[i] for b in boxes) for i in range(3, 6)]
    how = ("the file's declared length unit converted to metres" if step.unit == "mm"
           else "coordinates taken as metres")
    text = (f"all solids together span {_fmt_box(span)} m, read with geometry.step.unit: "
            f"{step.unit} ({how})")
    other, factor = ("m", 1 / _MM) if step.unit == "mm" else ("mm", _MM)
    rule_boxes = [r.match.bbox for r in step.rules if r.match.bbox is not None]
    now = sum(any(_inside(b, rb, tol) for rb in rule_boxes) for b in unmatched)
    then = sum(any(_inside([v * factor for v in b], rb, tol * factor) for rb in rule_boxes)
               for b in unmatched)
    if then > now:
        text += (f"; with geometry.step.unit: {other} the bbox rules would match {then} of them: "
                 f"the rules and the file seem to use different units")
    return text


def add_step(asm: Assembly, step: StepImport) -> dict:
    """Import, heal, fragment and map the STEP solids to regions (Parts of ``asm``).

    Returns a summary for ``GeometryInfo.parameters`` (solid count, pieces per region).
    """
    occ = gmsh.model.occ
    solids = _read_step(step.path(), step.heal)
    dts = [(3, t) for t, _ in solids]
    if len(dts) > 1:  # before scaling: OCC's tolerances are made for millimetre models
        _, out_map = occ.fragment(dts[:1], dts[1:])
    else:
        out_map = [dts]
    occ.synchronize()
    if step.unit == "mm":
        occ.dilate(occ.getEntities(3), 0, 0, 0, _MM, _MM, _MM)
        occ.synchronize()
    labels: dict[int, list[str]] = defaultdict(list)
    for (_, label), pieces in zip(solids, out_map, strict=True):
        for d, t in pieces:
            if d == 3:
                labels[t].append(label)
    pieces = sorted(labels)
    bbox = {t: occ.getBoundingBox(3, t) for t in pieces}
    size = max(max(b[3] - b[0], b[4] - b[1], b[5] - b[2]) for b in bbox.values())
    tol = 1e-6 * size + 1e-7 * (1 if step.unit == "m" else _MM)  # OCC pads boxes by 1e-7
    faces = {t: {abs(f) for _, f in gmsh.model.getBoundary([(3, t)], oriented=False)}
             for t in pieces}

    owner: dict[int, str] = {}
    for t in pieces:  # name and bbox rules, first match wins
        for r in step.rules:
            m = r.match
            if m.name is not None and any(re.search(m.name, lb) for lb in labels[t]):
                owner[t] = r.region
            elif m.bbox is not None and _inside(bbox[t], m.bbox, tol):
                owner[t] = r.region
            else:
                continue
            break
    adj_rules = [r for r in step.rules if r.match.adjacent_to is not None]
    changed = True
    while changed and adj_rules:
        changed = False
        for t in pieces:
            if t in owner:
                continue
            for r in adj_rules:
                if any(owner.get(o) == r.match.adjacent_to and faces[t] & faces[o] for o in pieces):
                    owner[t] = r.region
                    changed = True
                    break
    missing = [t for t in pieces if t not in owner]
    if missing:
        lines = [f"{' | '.join(labels[t]) or '(no name)'} bbox {_fmt_box(bbox[t])} m" for t in missing]
        raise CaseError(f"{len(missing)} STEP solid(s) match no rule:\n  " + "\n  ".join(lines)
                        + "\n" + _unit_hint(step, [bbox[t] for t in pieces], [bbox[t] for t in missing], tol),
                        key="geometry.step.rules")

    specs = step.regions()
    unused = [n for n in specs if n not in owner.values()]
    if unused:
        raise CaseError(f"rules for {unused} matched no solid", key="geometry.step.rules")
    adjacency: dict[str, set[str]] = defaultdict(set)
    for a in pieces:
        for b in pieces:
            if a < b and owner[a] != owner[b] and faces[a] & faces[b]:
                adjacency[owner[a]].add(owner[b])
                adjacency[owner[b]].add(owner[a])
    fields = infer_fields(specs, adjacency, "geometry.step.rules")
    counts = {}
    for name, spec in specs.items():
        tags = [t for t in pieces if owner[t] == name]
        vol = sum(occ.getMass(3, t) for t in tags)
        area = sum(occ.getMass(2, f) for t in tags for f in faces[t])
        # 2V/S is the thickness of a sheet; it only ever shrinks the size of thin parts
        thick = 2 * vol / area if spec.kind != "cell" and area > 0 else None
        asm.add(Part(_info(name, spec, fields[name]), [(3, t) for t in tags], PRIORITY_SHEET,
                     volume=vol, thickness=thick))
        counts[name] = len(tags)
    if step.terminals is not None:
        for name, box, pol in ((naming.TERMINAL_POS, step.terminals.positive.bbox, "pos"),
                               (naming.TERMINAL_NEG, step.terminals.negative.bbox, "neg")):
            ref = f"step.{name}"
            asm.add_face(ref, BoxSelector(tuple(box)))
            asm.surfaces[name] = (RegionInfo(name, 2, None, "surface", None, polarity=pol), [ref])
    return {"solids": len(solids), "pieces": counts}


# --------------------------------------------------------------------------- meshes
_ID_KEYS = ("gmsh:physical", "medit:ref", "CellEntityIds", "region")
_TET = {"tetra": 4, "tetra10": 11}
_TRI = {"triangle": 2, "triangle6": 9}


def _meshio_regions(path: Path):
    """Read a mesh with meshio; returns (points, {name: (dim, gmsh type, conn)})."""
    import meshio

    try:
        msh = meshio.read(path)
    except (Exception, SystemExit) as exc:  # meshio raises many types, or exits, on bad input
        raise CaseError(f"could not read mesh file {path.name}: {type(exc).__name__}: {exc}",
                        key="geometry.mesh_file.file") from None
    groups: dict[str, list[tuple[int, int, np.ndarray]]] = defaultdict(list)
    names_by_block: list[np.ndarray | None] = [None] * len(msh.cells)
    # named cell sets (Abaqus ELSET, MED families, meshio cell_sets)
    for name, per_block in (msh.cell_sets or {}).items():
        if name.startswith("gmsh:") or name == "Set-ALL":
            continue
        for k, idx in enumerate(per_block):
            if idx is None or len(idx) == 0:
                continue
            if names_by_block[k] is None:
                names_by_block[k] = np.full(len(msh.cells[k].data), "", dtype=object)
            names_by_block[k][np.asarray(idx, dtype=np.int64)] = name
    families = getattr(msh, "cell_tags", None) or {}
    if "cell_tags" in msh.cell_data and families:  # MED: family id -> its group names
        for k, fam in enumerate(msh.cell_data["cell_tags"]):
            fam = np.asarray(fam)
            lab = np.full(len(fam), "", dtype=object)
            for fid, groups_of in families.items():
                if groups_of:
                    lab[fam == fid] = groups_of[0]
            names_by_block[k] = lab
    id_key = next((k for k in _ID_KEYS if k in msh.cell_data), None)
    for k, block in enumerate(msh.cells):
        if block.type in _TET:
            dim, etype = 3, _TET[block.type]
        elif block.type in _TRI:
            dim, etype = 2, _TRI[block.type]
        else:
            continue
        if names_by_block[k] is not None:
            labels = names_by_block[k]
        elif id_key is not None:
            labels = np.asarray(msh.cell_data[id_key][k]).astype(np.int64).astype(str).astype(object)
        elif dim == 3:
            raise CaseError(f"{path.name}: tetrahedra without region ids (no cell sets and no "
                            f"cell data {list(_ID_KEYS)})", key="geometry.mesh_file.file")
        else:
            continue
        for lab in np.unique(labels):
            if lab == "":
                continue
            groups[str(lab)].append((dim, etype, block.data[labels == lab]))
    if not any(d == 3 for g in groups.values() for d, _, _ in g):
        raise CaseError(f"{path.name} holds no tetrahedra", key="geometry.mesh_file.file")
    return np.asarray(msh.points, dtype=float), groups


def _write_discrete(points: np.ndarray, groups: dict) -> None:
    """Put a meshio mesh into the current gmsh model: one discrete entity per region."""
    model = gmsh.model
    ntags = np.arange(1, len(points) + 1)
    base = model.addDiscreteEntity(3)
    pts = np.zeros((len(points), 3))
    pts[:, : points.shape[1]] = points
    model.mesh.addNodes(3, base, ntags, pts.ravel())
    first = True
    for name, blocks in groups.items():
        for dim in (3, 2):
            mine = [(et, conn) for d, et, conn in blocks if d == dim]
            if not mine:
                continue
            ent = base if (dim == 3 and first) else model.addDiscreteEntity(dim)
            first = first and dim != 3
            for et, conn in mine:
                model.mesh.addElementsByType(ent, et, [], (conn + 1).ravel())
            model.addPhysicalGroup(dim, [ent], name=name)
    model.mesh.reclassifyNodes()


def _volume_adjacency() -> dict[str, set[str]]:
    """Volume regions sharing mesh triangles (from the tets' boundary facets)."""
    from busbarfem.geometry.inspect import physical_names, region_facets

    vols = physical_names(3)
    facets = {n: region_facets(n) for n in vols}
    adj: dict[str, set[str]] = defaultdict(set)
    for i, a in enumerate(vols):
        for b in vols[i + 1:]:
            if facets[a] & facets[b]:
                adj[a].add(b)
                adj[b].add(a)
    return adj


def load_mesh_file(spec: MeshFile) -> GeometryInfo:
    """Load an external mesh into the current gmsh model; returns its regions.

    Raises:
        CaseError: unreadable file, unknown format, or volume regions not in ``regions``.
    """
    path = spec.path()
    key = "geometry.mesh_file"
    from busbarfem.safeio import check_regular_file

    if not path.is_file():
        raise CaseError(f"mesh file {path} does not exist", key=f"{key}.file")
    check_regular_file(path, "mesh file", key=f"{key}.file", file="")
    suffix = path.suffix.lower()
    if suffix == ".msh":
        try:
            gmsh.merge(str(path))
        except Exception as exc:
            raise CaseError(f"gmsh could not read {path.name}: {exc}", key=f"{key}.file") from None
    elif suffix in (".med", ".inp", ".vtu"):
        points, groups = _meshio_regions(path)
        _write_discrete(points, groups)
    else:
        raise CaseError(f"unsupported mesh format {suffix!r}", key=f"{key}.file",
                        choices=[".msh", ".med", ".inp", ".vtu"], bad=suffix)
    if spec.unit == "mm":
        gmsh.model.mesh.affineTransform([_MM, 0, 0, 0, 0, _MM, 0, 0, 0, 0, _MM, 0])
    groups = [(d, t, gmsh.model.getPhysicalName(d, t)) for d, t in gmsh.model.getPhysicalGroups()]
    if not any(d == 3 for d, _, _ in groups):
        raise CaseError(f"{path.name} has no volume physical group (tetrahedra with a region)",
                        key=f"{key}.file")
    for d, t, name in groups:
        new = spec.names.get(name or str(t), name or str(t))  # unnamed: called by its number
        if new != name:  # setPhysicalName would keep the old name: re-create the group
            ents = gmsh.model.getEntitiesForPhysicalGroup(d, t)
            gmsh.model.removePhysicalGroups([(d, t)])
            gmsh.model.addPhysicalGroup(d, list(ents), tag=t, name=new)
    vol_names = [gmsh.model.getPhysicalName(d, t) for d, t, _ in groups if d == 3]
    unknown = [n for n in vol_names if n not in spec.regions]
    if unknown:
        raise CaseError(f"volume regions {unknown} of {path.name} are not described in "
                        "geometry.mesh_file.regions", key=f"{key}.regions", choices=vol_names,
                        bad=unknown[0])
    extra = [n for n in spec.regions if n not in vol_names]
    if extra:
        raise CaseError(f"regions {extra} are not volume regions of {path.name}",
                        key=f"{key}.regions", choices=vol_names, bad=extra[0])
    specs = {n: spec.regions[n] for n in vol_names}
    fields = infer_fields(specs, _volume_adjacency(), f"{key}.regions")
    info = GeometryInfo()
    for n in vol_names:
        info.add(_info(n, specs[n], fields[n]))
    for d, t, _ in groups:
        if d == 2:
            name = gmsh.model.getPhysicalName(d, t)
            pol = {naming.TERMINAL_POS: "pos", naming.TERMINAL_NEG: "neg"}.get(name)
            info.add(RegionInfo(name, 2, None, "surface", None, polarity=pol))
    return info
