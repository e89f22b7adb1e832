"""Collects OCC solids from the builders, fragments them and names the pieces.

Every builder adds :class:`Part` objects (a named region made of OCC volumes, with a
priority). One ``occ.fragment`` of all parts makes every interface conformal; a piece
covered by several parts (a bolt inside a busbar, a weld nugget through a tab) goes to
the part with the highest priority, so the inserted body replaces the host material.
Faces are found afterwards by geometric predicates (:class:`FaceSelector`), because OCC
renumbers entities on every boolean operation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import gmsh
import numpy as np

from busbarfem.errors import CaseError
from busbarfem.naming import GeometryInfo, RegionInfo

# Priorities: an inserted body beats the body it sits in.
PRIORITY_CELL = 0
PRIORITY_SHEET = 10  # busbars, tabs
PRIORITY_INSERT = 20  # bolts, vias, weld nuggets


@dataclass
class Part:
    """One named volume region before fragmentation.

    Attributes:
        info: region metadata (name, material, kind, field, ...).
        dimtags: OCC volumes of the region.
        priority: who owns overlapping pieces (higher wins).
        volume: analytic volume [m^3] after the higher-priority inserts are removed.
        thickness: sheet thickness [m] for thin parts (drives the through-thickness size).
        size: element size [m] the builder wants inside the part (capped by ``mesh.size``);
            for parts whose thin-sheet size would be wasteful (foil tabs).
    """

    info: RegionInfo
    dimtags: list[tuple[int, int]]
    priority: int
    volume: float | None = None
    thickness: float | None = None
    size: float | None = None
    tags: list[int] = field(default_factory=list)  # volume tags after fragmentation
    key: str | None = None  # case-file key of the solid (geometry.vias.0), for error messages


@dataclass
class FaceSelector:
    """A face reference resolved after fragmentation.

    Attributes:
        region: name of the volume region whose boundary faces are searched.
        point: a point on the face plane [m].
        normal: outward unit normal of the face.
        radius: faces whose centre lies farther than this from ``point`` are rejected [m].
    """

    region: str
    point: tuple[float, float, float]
    normal: tuple[float, float, float]
    radius: float


@dataclass
class BoxSelector:
    """Faces of the whole model whose bounding box lies inside ``bbox`` [m] (imported CAD)."""

    bbox: tuple[float, float, float, float, float, float]


@dataclass
class Feature:
    """A refinement feature: where the size field should shrink.

    Attributes:
        kind: the :class:`Refinement` switch it belongs to (fillets, bolts, welds, vias).
        curve_test: predicate on a curve's (type, bbox) selecting its curves.
        local_size: the size of the sheet it sits in [m] (refinement is relative to it).
    """

    kind: str
    curve_test: Callable[[str, tuple[float, ...]], bool]
    local_size: float | None = None


class Assembly:
    """The model under construction: parts, face references, refinement features."""

    def __init__(self) -> None:
        self.parts: dict[str, Part] = {}
        self.faces: dict[str, FaceSelector | BoxSelector | list[FaceSelector]] = {}
        self.features: list[Feature] = []
        self.surfaces: dict[str, tuple[RegionInfo, list[str]]] = {}
        self.summary: dict = {}  # builder facts for GeometryInfo.parameters

    def add(self, part: Part) -> Part:
        """Register a part; names must be unique."""
        if part.info.name in self.parts:
            raise ValueError(f"region name {part.info.name!r} used twice")
        self.parts[part.info.name] = part
        return part

    def add_face(self, ref: str, selector: FaceSelector | list[FaceSelector]) -> None:
        """Make a face reference (``busbar_1.start``) resolvable."""
        self.faces[ref] = selector

    # ------------------------------------------------------------------ fragment
    def fragment(self) -> None:
        """Fragment all parts together and assign each piece to its owning part."""
        order: list[tuple[str, tuple[int, int]]] = [
            (name, dt) for name, p in self.parts.items() for dt in p.dimtags
        ]
        inputs = [dt for _, dt in order]
        if len(inputs) > 1:
            _, out_map = gmsh.model.occ.fragment(inputs[:1], inputs[1:])
        else:
            out_map = [inputs]
        gmsh.model.occ.synchronize()
        owner: dict[int, str] = {}
        for (name, _), pieces in zip(order, out_map, strict=True):
            prio = self.parts[name].priority
            for dim, tag in pieces:
                if dim != 3:
                    continue
                cur = owner.get(tag)
                if cur is None or self.parts[cur].priority < prio:
                    owner[tag] = name
        for p in self.parts.values():
            p.tags = sorted(t for t, n in owner.items() if n == p.info.name)
        empty = [n for n, p in self.parts.items() if not p.tags]
        if empty:
            raise CaseError(
                "these regions are completely covered by other solids and vanished: "
                + ", ".join(empty)
            )
        self.check_volumes()

    def check_volumes(self, rtol: float = 1e-3) -> None:
        """CaseError if a region's CAD volume differs from its analytic volume.

        A mismatch means an insert (bolt, nugget, via, hole) does not sit fully inside
        its host, or two sheets overlap: the model would silently not be what was asked.
        """
        bad = []
        keys = []
        for name, p in self.parts.items():
            if p.volume is None:
                continue
            cad = sum(gmsh.model.occ.getMass(3, t) for t in p.tags)
            if abs(cad - p.volume) > rtol * abs(p.volume):
                where = f" [{p.key}]" if p.key else ""
                bad.append(f"{name}{where} (CAD {cad:.6g} m^3, expected {p.volume:.6g} m^3)")
                keys.append(p.key)
        if bad:
            # locate the error at the first offending solid the case file names (inserts are
            # listed after their hosts, so the insert that sticks out is preferred)
            named = [k for k in keys if k]
            inserts = [k for k in named if ".bolts." in k or ".welds." in k or ".vias." in k]
            raise CaseError(
                "solids overlap or inserts stick out of their host (bolt, weld nugget, via or "
                "hole not fully inside the busbar/tab, or two sheets intersecting): "
                + "; ".join(bad),
                key=(inserts or named or [None])[0],
            )

    # ------------------------------------------------------------------ faces
    def boundary_faces(self, region: str) -> list[int]:
        """Exterior-or-interface faces of a region's volumes (each face once)."""
        tags = self.parts[region].tags
        faces = gmsh.model.getBoundary([(3, t) for t in tags], combined=False, oriented=False)
        return sorted({abs(t) for _, t in faces})

    def resolve(self, ref: str) -> list[int]:
        """Surface tags of a face reference; CaseError listing valid references."""
        if ref not in self.faces:
            raise CaseError(
                f"unknown face reference {ref!r}", choices=sorted(self.faces), bad=ref
            )
        sels = self.faces[ref]
        sels = sels if isinstance(sels, list) else [sels]
        found: list[int] = []
        for sel in sels:
            if isinstance(sel, BoxSelector):
                found += _faces_in_box(sel.bbox)
            else:
                found += _select_faces(self.boundary_faces(sel.region), sel)
        if not found:
            raise CaseError(f"face reference {ref!r} matched no face of the meshed solid")
        return sorted(set(found))

    # ------------------------------------------------------------------ groups
    def add_physical_groups(self, info: GeometryInfo) -> None:
        """Create one physical group per volume region and per named surface."""
        for name, p in self.parts.items():
            gmsh.model.addPhysicalGroup(3, p.tags, name=name)
            info.add(p.info)
            if p.volume is not None:
                info.volumes[name] = p.volume
        for name, (rinfo, refs) in self.surfaces.items():
            tags: list[int] = []
            for ref in refs:
                tags += self.resolve(ref)
            gmsh.model.addPhysicalGroup(2, sorted(set(tags)), name=name)
            info.add(rinfo)


def _faces_in_box(box) -> list[int]:
    """Exterior faces (one adjacent volume) whose bounding box lies inside ``box``."""
    tol = 1e-6 * max(box[3] - box[0], box[4] - box[1], box[5] - box[2], 1e-3) + 2e-7
    hits = []
    for _, s in gmsh.model.getEntities(2):
        b = gmsh.model.getBoundingBox(2, s)
        if all(b[i] >= box[i] - tol for i in range(3)) and all(b[i + 3] <= box[i + 3] + tol
                                                                for i in range(3)):
            vols, _ = gmsh.model.getAdjacencies(2, s)
            if len(vols) == 1:
                hits.append(s)
    return hits


def _select_faces(candidates: list[int], sel: FaceSelector) -> list[int]:
    """Planar faces among ``candidates`` lying in the selector's plane near its point."""
    p0 = np.asarray(sel.point)
    n0 = np.asarray(sel.normal) / np.linalg.norm(sel.normal)
    hits = []
    for s in candidates:
        if gmsh.model.getType(2, s) != "Plane":
            continue
        c = np.asarray(gmsh.model.occ.getCenterOfMass(2, s))
        if abs(np.dot(c - p0, n0)) > 1e-7 * max(1.0, sel.radius * 1e3):
            continue
        if np.linalg.norm(c - p0) > sel.radius:
            continue
        lo, hi = gmsh.model.getParametrizationBounds(2, s)
        uv = [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2]
        n = np.asarray(gmsh.model.getNormal(s, uv))
        if abs(abs(np.dot(n, n0)) - 1.0) > 1e-6:
            continue
        hits.append(s)
    return hits


def curve_is_circle_at(
    center: tuple[float, float], radius: float, tol: float
) -> Callable[[str, tuple[float, ...]], bool]:
    """Curve predicate: a circle (or arc) of ``radius`` about a vertical axis at ``center``."""

    def test(ctype: str, bbox: tuple[float, ...]) -> bool:
        if ctype != "Circle":
            return False
        x0, y0, _, x1, y1, _ = bbox
        # the bbox of an arc lies within the full circle's square; a full circle fills it
        return (
            x0 >= center[0] - radius - tol
            and x1 <= center[0] + radius + tol
            and y0 >= center[1] - radius - tol
            and y1 <= center[1] + radius + tol
            and max(x1 - x0, y1 - y0) > 0.05 * radius
        )

    return test


def curve_is_vertical_line_at(xy: tuple[float, float], tol: float) -> Callable:
    """Curve predicate: a vertical straight edge through ``xy`` (a sharp bend corner)."""

    def test(ctype: str, bbox: tuple[float, ...]) -> bool:
        x0, y0, _, x1, y1, _ = bbox
        return (
            ctype == "Line"
            and math.hypot((x0 + x1) / 2 - xy[0], (y0 + y1) / 2 - xy[1]) < tol
            and max(x1 - x0, y1 - y0) < tol
        )

    return test


def new_gmsh_model(name: str) -> None:
    """Start an empty gmsh model ``name`` with default options (rank 0 only).

    The same case must mesh the same whatever ran before in this process, so the options
    are reset and the terminal output is off.
    """
    if not gmsh.isInitialized():
        gmsh.initialize(interruptible=False)
    gmsh.option.restoreDefaults()
    gmsh.option.setNumber("General.Terminal", 0)
    gmsh.clear()
    gmsh.model.add(name)
