"""Case-file models of the geometry (``geometry:``) and meshing (``mesh:``) sections.

All lengths are in metres (SI). A busbar is a strip swept along a centre-line polyline.
In the plane form (2-coordinate path points) the path lies in the xy plane and the strip
is extruded upwards from ``z0`` by its thickness. Bends are rounded with *concentric*
arcs: ``fillet_radius`` is the radius of the inner edge, the outer edge gets
``fillet_radius + width`` (the classic bent bar, constant width through the bend).
``fillet_radius = 0`` gives a sharp, mitred corner on both edges (the re-entrant inner
corner is the current-crowding singularity).

In the 3D form (3-coordinate path points) the strip is a bent sheet: its cross-section
(width x thickness, centred on the centre-line) is carried along the path and, at every
bend, rotated about the bend axis with the path, as a press brake bends a sheet (see
:mod:`busbarfem.geometry.bend`). Bends may lie in any plane; each has its own inner
radius (``bend_radii``); segments may have their own width and thickness
(``segments``); holes and slots are placed by their developed position (``at``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from busbarfem.case.base import StrictModel

XY = tuple[float, float]
XYZ = tuple[float, float, float]


# --------------------------------------------------------------------------- helpers
def _unit(ax: float, ay: float) -> tuple[float, float]:
    n = math.hypot(ax, ay)
    return ax / n, ay / n


def path_turns(path: list[XY]) -> list[float]:
    """Signed turn angle [rad] at every interior vertex of ``path`` (left turn > 0)."""
    turns = []
    for i in range(1, len(path) - 1):
        d1 = _unit(path[i][0] - path[i - 1][0], path[i][1] - path[i - 1][1])
        d2 = _unit(path[i + 1][0] - path[i][0], path[i + 1][1] - path[i][1])
        turns.append(math.atan2(d1[0] * d2[1] - d1[1] * d2[0], d1[0] * d2[0] + d1[1] * d2[1]))
    return turns


def max_fillet_radius(path: list[XY], width: float) -> float:
    """Largest inner fillet radius [m] whose bend arcs still fit on every path segment.

    Each bend with turn angle theta consumes ``(r + w/2) tan(|theta|/2)`` of the centre
    line on both adjacent segments; the two bends of a segment must share its length.
    """
    turns = [0.0] + path_turns(path) + [0.0]
    limit = math.inf
    for j in range(len(path) - 1):
        length = math.dist(path[j], path[j + 1])
        tau = math.tan(abs(turns[j]) / 2) + math.tan(abs(turns[j + 1]) / 2)
        if tau > 1e-12:
            limit = min(limit, length / tau - width / 2)
    return limit


def is_3d(path) -> bool:
    """True for a 3D centre-line (3-coordinate points)."""
    return len(path[0]) == 3


# --------------------------------------------------------------------------- parts
class Hole(StrictModel):
    """A round through-hole or a slot in a busbar (e.g. a clearance hole).

    Place it by ``center`` (x, y) (plane paths: drilled along z) or by ``at`` = (s, u): the
    developed distance ``s`` along the centre-line from the first path point and the offset
    ``u`` across the width (towards the width direction), drilled along the local sheet
    normal; ``at`` holes must lie on a straight segment. ``length > 0`` makes a slot
    (a stadium: two half circles of ``radius`` whose centres are ``length`` apart).
    """

    center: XY | None = Field(None, description="Hole centre (x, y) [m] (plane paths).")
    at: XY | None = Field(None, description="(s, u): developed distance along the centre-line from "
                          "its start and offset across the width [m] (any path).")
    radius: float = Field(gt=0, description="Hole radius (slot half-width) [m].")
    length: float = Field(0.0, ge=0, description="Slot length between its two end-circle centres [m]; "
                          "0 = a round hole.")
    angle: float = Field(0.0, description="Slot direction [deg]: from +x for 'center', from the path "
                         "direction (towards the width direction) for 'at'.")

    @model_validator(mode="after")
    def _one_position(self) -> Hole:
        if (self.center is None) == (self.at is None):
            raise ValueError("give exactly one of center (x, y) or at (s, u)")
        return self


class Section(StrictModel):
    """The cross-section of one path segment (unset values: the busbar's own)."""

    width: float | None = Field(None, gt=0, description="Segment width [m].")
    thickness: float | None = Field(None, gt=0, description="Segment thickness [m].")


class Busbar(StrictModel):
    """A busbar: a strip along a centre-line path (plane or 3D, see the module docstring)."""

    path: list[XY | XYZ] = Field(
        min_length=2,
        description="Centre-line polyline, >= 2 points [m]: (x, y) points lie in the xy plane (strip "
        "from z0 upwards); (x, y, z) points make a bent sheet whose section is centred on the line. The "
        "end faces at the first/last point are the 'busbar_<i>.start'/'.end' references.",
    )
    width: float = Field(gt=0, description="Strip width across the path [m].")
    thickness: float = Field(gt=0, description="Thickness along z [m].")
    z0: float = Field(0.0, description="Height of the bottom face [m].")
    fillet_radius: float = Field(
        0.0,
        ge=0,
        description="Inner-edge bend radius at every bend [m]; the outer edge gets "
        "fillet_radius + width (concentric arcs). 0 = sharp mitred corner.",
    )
    material: str = Field("copper", description="Material name (materials library).")
    holes: list[Hole] = Field(default_factory=list, description="Through-holes and slots.")
    normal: XYZ | None = Field(
        None, description="3D paths: the sheet normal (thickness direction) on the first segment. "
        "Default: in the plane of the first bend (the sheet is bent about its width axis, press-brake "
        "style), or +z-like when the path is straight. Plane paths: always +z.")
    bend_radii: list[float] | None = Field(
        None, description="Inner radius of each bend [m], one per interior path point (overrides "
        "fillet_radius; the bent-sheet builder needs every radius > 0 at a real bend). In 3D the inner "
        "radius is measured from the bend axis to the nearest edge/face of the section.")
    segments: list[Section] | None = Field(
        None, description="Per-segment width/thickness, one entry per path segment (default: the bar's). "
        "The section may change only at a straight (collinear) path point.")

    @field_validator("path")
    @classmethod
    def _check_path(cls, path: list) -> list:
        if len({len(p) for p in path}) > 1:
            raise ValueError("path points must all have 2 coordinates (x, y) or all 3 (x, y, z)")
        for a, b in zip(path[:-1], path[1:], strict=True):
            if math.dist(a, b) <= 0:
                raise ValueError(f"path has a zero-length segment at {a}")
        if is_3d(path):
            from busbarfem.geometry.bend import turn_angles

            for k, t in enumerate(turn_angles(path)):
                if t > math.radians(170):
                    raise ValueError(f"path turns by {math.degrees(t):.1f} deg at point {k + 1}; at most "
                                     "170 deg per vertex (split a U-turn into two bends)")
            return path
        for k, t in enumerate(path_turns(path)):
            if abs(t) > math.radians(170):
                raise ValueError(
                    f"path turns by {math.degrees(t):.1f} deg at point {k + 1}; "
                    "at most 170 deg per vertex (split a U-turn into two bends)"
                )
        return path

    def needs_bend_builder(self) -> bool:
        """True when the bent-sheet builder must make this bar (3D path or per-bend/segment data)."""
        return (is_3d(self.path) or self.bend_radii is not None or self.segments is not None
                or any(h.at is not None or h.length > 0 for h in self.holes))

    def sections(self) -> list[tuple[float, float]]:
        """(width, thickness) of every path segment [m]."""
        segs = self.segments or [Section()] * (len(self.path) - 1)
        return [(s.width or self.width, s.thickness or self.thickness) for s in segs]

    @model_validator(mode="after")
    def _check_fillet(self) -> Busbar:
        if self.segments is not None and len(self.segments) != len(self.path) - 1:
            raise ValueError(f"segments has {len(self.segments)} entries; the path has "
                             f"{len(self.path) - 1} segments (one entry each)")
        if self.bend_radii is not None and len(self.bend_radii) != len(self.path) - 2:
            raise ValueError(f"bend_radii has {len(self.bend_radii)} entries; the path has "
                             f"{len(self.path) - 2} interior points (one radius each)")
        if self.bend_radii is not None and any(r < 0 for r in self.bend_radii):
            raise ValueError("bend_radii must be >= 0")
        if self.needs_bend_builder():
            from busbarfem.geometry.bend import BendError, plan

            try:
                plan(self)
            except BendError as exc:
                raise ValueError(str(exc)) from None
            return self
        if any(h.center is None for h in self.holes):
            raise ValueError("holes placed by 'at' need the bent-sheet builder")
        turns = path_turns(self.path)
        if not any(abs(t) > 1e-9 for t in turns):
            return self
        limit = max_fillet_radius(self.path, self.width)
        if limit < 0:
            raise ValueError(
                f"path segments are too short for a bar of width {self.width} m even "
                "with sharp corners"
            )
        if self.fillet_radius > 0 and self.fillet_radius >= limit:
            raise ValueError(
                f"fillet_radius {self.fillet_radius} m does not fit: the largest "
                f"feasible inner radius for this path and width is {limit:.6g} m"
            )
        return self

    def centre_length(self) -> float:
        """Length [m] of the centre line including the bend arcs (the developed length)."""
        if self.needs_bend_builder():
            from busbarfem.geometry.bend import plan

            return plan(self).developed_length
        h = self.width / 2
        length = sum(math.dist(a, b) for a, b in zip(self.path[:-1], self.path[1:], strict=True))
        if self.fillet_radius > 0:
            rc = self.fillet_radius + h
            for t in path_turns(self.path):
                length += rc * abs(t) - 2 * rc * math.tan(abs(t) / 2)
        return length


class Fitting(StrictModel):
    """A washer or nut: a ring of ``outer_radius`` around the bolt shank, ``thickness`` along its axis."""

    outer_radius: float = Field(gt=0, description="Outer radius [m] (> the bolt radius).")
    thickness: float = Field(gt=0, description="Thickness along the bolt axis [m].")
    material: str = Field("steel", description="Material name.")
    end: Literal["top", "bottom", "both"] = Field(
        "top", description="Which protruding end it sits on: 'top' (+axis side), 'bottom' or 'both'.")


class Bolt(StrictModel):
    """A bolt, stud or terminal post: a cylinder through one or several plates.

    The part inside a plate replaces plate material (conformal interface). The axis runs
    along ``axis`` (default +z) through ``center``; the shank spans the plates it passes
    through (found where the axis line enters and leaves them) plus ``height`` beyond the
    last plate on the +axis side and ``below`` beyond the first on the -axis side. A
    negative ``height`` means a protrusion of -height on the -axis side only. The end
    faces are ``bolt_<i>.top`` (+axis end) and ``bolt_<i>.bottom`` (-axis end). A washer
    sits on the plate surface, a nut on the washer (or the plate), both inside the
    protrusion of their end.
    """

    center: XY | XYZ = Field(description="A point of the bolt axis [m]: (x, y) for a vertical bolt "
                             "through a plane busbar, or (x, y, z).")
    axis: XYZ = Field((0.0, 0.0, 1.0), description="Axis direction (any length; +axis is 'top').")
    radius: float = Field(gt=0, description="Bolt (shank) radius [m].")
    height: float = Field(
        description="Protrusion beyond the plates on the +axis side [m] (negative: -height on the "
        "-axis side instead); its end face is 'bolt_<i>.top'."
    )
    below: float = Field(0.0, ge=0, description="Protrusion beyond the plates on the -axis side [m]; "
                         "its end face is 'bolt_<i>.bottom'.")
    busbar: int = Field(1, ge=1, description="1-based index of the busbar it passes through.")
    through: list[int] | None = Field(
        None, min_length=1, description="1-based indices of all busbars it passes through (several "
        "stacked plates); default [busbar].")
    washer: Fitting | None = Field(None, description="Washer (region washer_<i>).")
    nut: Fitting | None = Field(None, description="Nut (region nut_<i>), on the washer if both are given.")
    material: str = Field("steel", description="Material name (materials library).")

    @field_validator("axis")
    @classmethod
    def _axis(cls, v):
        if math.hypot(*v) <= 0:
            raise ValueError("axis must be a non-zero vector")
        return v

    @model_validator(mode="after")
    def _check_fittings(self) -> Bolt:
        for what in ("washer", "nut"):
            f = getattr(self, what)
            if f is not None and f.outer_radius <= self.radius:
                raise ValueError(f"{what}.outer_radius {f.outer_radius} m must exceed the bolt radius "
                                 f"{self.radius} m")
        for end, room in (("top", self.protrusion()[1]), ("bottom", self.protrusion()[0])):
            need = sum(f.thickness for f in (self.washer, self.nut) if f is not None and f.end in (end, "both"))
            if need > room + 1e-12:
                raise ValueError(f"washer + nut on the {end} end are {need:g} m thick but the bolt "
                                 f"protrudes only {room:g} m there")
        return self

    def protrusion(self) -> tuple[float, float]:
        """(below, above) protrusions [m] beyond the plates along the axis."""
        if self.height < 0:
            return self.below - self.height, 0.0
        return self.below, self.height

    def plates(self) -> list[int]:
        """1-based busbar indices the bolt passes through."""
        return list(self.through) if self.through is not None else [self.busbar]

    def is_plain(self) -> bool:
        """True for the original form: vertical through one plane busbar, protruding above only."""
        return (len(self.center) == 2 and tuple(self.axis) == (0.0, 0.0, 1.0) and self.height > 0
                and self.below == 0 and self.through is None and self.washer is None and self.nut is None)


class Tab(StrictModel):
    """A cell tab or connector strip: a thin strip along a path (same shape rules as a busbar).

    Its region name is ``tab_<polarity>_<stage>_<parallel>``; it is welded to a busbar
    by a :class:`Weld` group. Leave a small ``gap`` between tab and busbar (z0) if the
    current must pass through the nuggets only; touching faces are fully bonded.
    """

    path: list[XY] = Field(min_length=2, description="Centre-line polyline in the xy plane [m].")
    width: float = Field(gt=0, description="Tab width [m].")
    thickness: float = Field(gt=0, description="Tab thickness along z [m].")
    z0: float = Field(0.0, description="Height of the bottom face [m].")
    fillet_radius: float = Field(0.0, ge=0, description="Inner bend radius [m] (0 = sharp).")
    material: str = Field("nickel", description="Material name.")
    polarity: Literal["pos", "neg"] = Field("pos", description="Which cell terminal it belongs to.")
    stage: int = Field(1, ge=1, description="Series stage of its cell (1-based).")
    parallel: int = Field(1, ge=1, description="Parallel index of its cell (1-based).")

    @model_validator(mode="after")
    def _check_shape(self) -> Tab:
        Busbar(path=self.path, width=self.width, thickness=self.thickness,
               fillet_radius=self.fillet_radius)
        return self

    def as_busbar(self) -> Busbar:
        """The same strip as a :class:`Busbar` (shared outline builder)."""
        return Busbar(path=self.path, width=self.width, thickness=self.thickness, z0=self.z0,
                      fillet_radius=self.fillet_radius, material=self.material)


class Pattern(StrictModel):
    """Where the members of an array (weld nuggets, vias) sit, in the xy plane."""

    center: XY = Field(description="Centre of the pattern (x, y) [m].")
    count: int = Field(1, ge=1, description="Number of members [-].")
    pitch: float = Field(0.0, ge=0, description="Centre-to-centre spacing [m].")
    layout: Literal["line", "grid"] = Field(
        "line", description="'line': a row along 'angle'; 'grid': 'columns' per row."
    )
    columns: int = Field(1, ge=1, description="Members per row for layout 'grid' [-].")
    angle: float = Field(0.0, description="Row direction, degrees from +x [deg].")
    points: list[XY] | None = Field(
        None, description="Explicit member centres [m]; overrides center/count/pitch/layout."
    )

    def positions(self) -> list[XY]:
        """Member centres [m]."""
        if self.points is not None:
            return [tuple(p) for p in self.points]
        ncol = self.count if self.layout == "line" else min(self.columns, self.count)
        nrow = math.ceil(self.count / ncol)
        a = math.radians(self.angle)
        ex, ey = (math.cos(a), math.sin(a)), (-math.sin(a), math.cos(a))
        out = []
        for k in range(self.count):
            i, j = k % ncol, k // ncol
            u = (i - (ncol - 1) / 2) * self.pitch
            v = (j - (nrow - 1) / 2) * self.pitch
            out.append((self.center[0] + u * ex[0] + v * ey[0],
                        self.center[1] + u * ex[1] + v * ey[1]))
        return out

    @model_validator(mode="after")
    def _check_pitch(self) -> Pattern:
        if self.points is None and self.count > 1 and self.pitch <= 0:
            raise ValueError("pitch must be > 0 when count > 1")
        return self


class Weld(StrictModel):
    """A group of weld nuggets joining a tab to a busbar (regions ``weld_<k>``, one per nugget).

    Each nugget is a cylinder through the whole tab, across any gap, and ``depth`` into
    the busbar; it replaces tab and busbar material where it sits.
    """

    tab: int = Field(1, ge=1, description="1-based index into geometry.tabs.")
    busbar: int = Field(1, ge=1, description="1-based index into geometry.busbars.")
    radius: float = Field(gt=0, description="Nugget radius [m].")
    depth: float = Field(gt=0, description="Penetration into the busbar [m] (<= its thickness).")
    pattern: Pattern = Field(description="Nugget positions.")
    material: str | None = Field(
        None, description="Nugget material; None = the busbar's material. Use a degraded "
        "material for a bad weld."
    )


class ViaArray(StrictModel):
    """Vias (rivets/press-fit pins) joining two busbar layers (regions ``via_<k>``, one each).

    A laminated busbar is two or more busbars stacked with ``z0`` offsets (the insulation
    gap is left empty); each via runs from the bottom of the lower layer to the top of
    the upper one and replaces layer material where it sits.
    """

    busbars: tuple[int, int] = Field(description="1-based indices of the two joined busbars.")
    radius: float = Field(gt=0, description="Via radius [m].")
    pattern: Pattern = Field(description="Via positions.")
    material: str | None = Field(None, description="Via material; None = the lower layer's.")


class Terminals(StrictModel):
    """Which faces are the module terminals (equipotential load surfaces)."""

    positive: str | list[str] = Field(
        description="Face reference of terminal_pos: 'busbar_<i>.start', 'busbar_<i>.end', "
        "'bolt_<i>.top', 'bolt_<i>.bottom', 'tab_<i>.start'/'.end', or 'module' (the module's own "
        "posts); or a list of face references forming one terminal (e.g. two bolt ends)."
    )
    negative: str | list[str] = Field(description="Face reference(s) of terminal_neg (same syntax as positive).")

    @field_validator("positive", "negative")
    @classmethod
    def _nonempty(cls, v):
        if isinstance(v, list) and not v:
            raise ValueError("give at least one face reference")
        return v

    def refs(self, side: str) -> list[str]:
        """The face references of ``side`` ('positive' or 'negative') as a list."""
        v = getattr(self, side)
        return [v] if isinstance(v, str) else list(v)


CELL_PRESETS: dict[str, tuple[float, float]] = {
    # (radius, height) [m] of common cylindrical formats (nominal can dimensions)
    "18650": (0.009, 0.065),
    "21700": (0.0105, 0.070),
    "4680": (0.023, 0.080),
}


class CylindricalCell(StrictModel):
    """A cylindrical cell: body (jelly roll + can, MSMD region) and its two terminals.

    The positive terminal is a cap (``tab_pos``) on the top face. The negative terminal
    (``tab_neg``) is a disk under the bottom face, or - with busbars on the top only - a
    pad on the top shoulder offset towards -x (the can rim, as in top-contact modules).
    """

    type: Literal["cylindrical"] = Field("cylindrical", description="Cell format.")
    preset: Literal["18650", "21700", "4680", "custom"] = Field(
        "21700", description="Format preset; 'custom' needs radius and height."
    )
    radius: float | None = Field(None, gt=0, description="Body radius [m] (overrides preset).")
    height: float | None = Field(None, gt=0, description="Body height [m] (overrides preset).")
    cap_radius_ratio: float = Field(0.35, gt=0, lt=1, description="Positive cap radius / body radius [-].")
    neg_radius_ratio: float = Field(
        0.6, gt=0, lt=1, description="Negative bottom disk radius / body radius [-] (two-sided)."
    )
    tab_thickness: float = Field(0.0008, gt=0, description="Cap / negative tab thickness [m].")
    tab_material: str = Field("nickel_plated_steel", description="Material of caps and tabs.")
    material: str = Field(
        "cell", description="Label of the cell body (its properties come from the cell model)."
    )

    def dimensions(self) -> tuple[float, float]:
        """(radius, height) [m] after applying the preset."""
        r0, h0 = CELL_PRESETS.get(self.preset, (None, None))
        r, h = self.radius or r0, self.height or h0
        if r is None or h is None:
            raise ValueError("a 'custom' cell needs radius and height")
        return r, h

    @model_validator(mode="after")
    def _check_dims(self) -> CylindricalCell:
        self.dimensions()
        return self


PRISMATIC_DEFAULT = (0.148, 0.0265, 0.091)  # VDA PHEV2-like can: width, depth, height [m]


class PrismaticCell(StrictModel):
    """A prismatic (hard-case) cell: a box body with two cylindrical terminal posts on top.

    Axes in the module: the body's ``depth`` (its thin dimension) lies along x, the
    stacking axis; ``width`` along y; ``height`` along z. The posts stand on the top face
    at y = +terminal_offset and -terminal_offset (which one is positive alternates with the
    stage, the cell being turned by 180 deg). Electrode layers are parallel to the broad
    (yz) faces, so the through-plane direction is **x**: set the case's
    ``cell.k: [k_through, k_in_plane, k_in_plane]``.
    """

    type: Literal["prismatic"] = Field(description="Cell format.")
    width: float = Field(PRISMATIC_DEFAULT[0], gt=0, description="Body width along y [m].")
    depth: float = Field(PRISMATIC_DEFAULT[1], gt=0, description="Body depth (thickness) along x, the stacking axis [m].")
    height: float = Field(PRISMATIC_DEFAULT[2], gt=0, description="Body height along z [m].")
    terminal_radius: float = Field(0.006, gt=0, description="Terminal post radius [m].")
    terminal_height: float = Field(0.003, gt=0, description="Terminal post height above the lid [m].")
    terminal_offset: float | None = Field(
        None, gt=0, description="Distance of each post axis from the lid centre along y [m]; "
        "default 0.35 x width.")
    positive_material: str = Field("aluminium", description="Positive post material.")
    negative_material: str = Field("copper", description="Negative post material.")
    material: str = Field(
        "cell", description="Label of the cell body (its properties come from the cell model)."
    )

    def offset(self) -> float:
        """Post offset from the lid centre along y [m]."""
        return self.terminal_offset if self.terminal_offset is not None else 0.35 * self.width

    @model_validator(mode="after")
    def _check_posts(self) -> PrismaticCell:
        r, e = self.terminal_radius, self.offset()
        if 2 * r >= self.depth:
            raise ValueError(f"terminal_radius {r} m: the post does not fit on a lid of depth "
                             f"{self.depth} m")
        if e + r > self.width / 2 or e < r:
            raise ValueError(f"terminal_offset {e} m: posts of radius {r} m must lie on the lid "
                             f"(offset between {r} and {self.width / 2 - r} m)")
        return self


class PouchCell(StrictModel):
    """A pouch cell: a thin box body with two foil tabs leaving its edge(s).

    Local axes: the body's ``thickness`` lies along the stacking axis, ``width`` along y
    and ``height`` along the tab direction. ``orientation: standing`` (default): stacking
    axis x, tabs pointing up (+z); the cells stand on the cold plate (z = 0).
    ``orientation: lying``: stacking axis z (cells lie flat on top of each other, the
    lowest on the cold plate), tabs pointing along +x. Electrode layers are parallel to
    the broad faces, so the through-plane direction is the stacking axis: set the case's
    ``cell.k`` to ``[k_through, k_in, k_in]`` (standing) or ``[k_in, k_in, k_through]``
    (lying).

    ``tabs: same_side``: both tabs leave the top edge at y = +tab_offset and -tab_offset;
    ``opposite``: the positive tab leaves the top edge and the negative one the bottom
    edge, both at y = 0 (or tab_offset). Each tab runs ``tab_length`` from the body edge to
    the busbar, passes through a slot in it and ends flush with its outer face (a
    slot-through laser-welded joint: the tab is bonded on the slot faces).
    """

    type: Literal["pouch"] = Field(description="Cell format.")
    width: float = Field(0.1, gt=0, description="Body width along y [m].")
    height: float = Field(0.12, gt=0, description="Body size along the tab direction [m].")
    thickness: float = Field(0.008, gt=0, description="Body thickness along the stacking axis [m].")
    orientation: Literal["standing", "lying"] = Field(
        "standing", description="'standing': stacked along x, tabs up; 'lying': stacked along z, "
        "tabs along +x.")
    tabs: Literal["same_side", "opposite"] = Field(
        "same_side", description="Both tabs on one edge, or one on each opposite edge.")
    tab_width: float = Field(0.03, gt=0, description="Tab width along y [m].")
    tab_thickness: float = Field(0.0004, gt=0, description="Tab (foil) thickness [m].")
    tab_length: float = Field(0.01, gt=0, description="Free tab length from the body edge to the busbar [m].")
    tab_offset: float | None = Field(
        None, ge=0, description="Tab centre distance from the body's mid-plane along y [m]; "
        "default width/4 (same_side) or 0 (opposite).")
    positive_material: str = Field("aluminium", description="Positive tab material.")
    negative_material: str = Field("nickel", description="Negative tab material.")
    material: str = Field(
        "cell", description="Label of the cell body (its properties come from the cell model)."
    )

    def offset(self) -> float:
        """Tab centre offset from the body mid-plane along y [m]."""
        if self.tab_offset is not None:
            return self.tab_offset
        return self.width / 4 if self.tabs == "same_side" else 0.0

    @model_validator(mode="after")
    def _check_tabs(self) -> PouchCell:
        e, h = self.offset(), self.tab_width / 2
        if e + h > self.width / 2:
            raise ValueError(f"tab at offset {e} m with width {self.tab_width} m sticks out of a "
                             f"body of width {self.width} m")
        if self.tabs == "same_side" and e < h:
            raise ValueError(f"tab_offset {e} m: the two tabs (width {self.tab_width} m) overlap; "
                             f"use at least {h} m")
        if self.tab_thickness >= self.thickness:
            raise ValueError("tab_thickness must be smaller than the body thickness")
        return self


def _cell_type(value) -> str:
    """Discriminator of the module's cell: ``type`` (cylindrical when omitted)."""
    if isinstance(value, dict):
        return value.get("type", "cylindrical")
    return getattr(value, "type", "cylindrical")


ModuleCell = Annotated[
    Annotated[CylindricalCell, Tag("cylindrical")]
    | Annotated[PrismaticCell, Tag("prismatic")]
    | Annotated[PouchCell, Tag("pouch")],
    Discriminator(_cell_type),
]


class ModuleWeld(StrictModel):
    """Weld nuggets joining every cell terminal to its busbar plate."""

    count: int = Field(1, ge=1, description="Nuggets per terminal [-].")
    radius: float = Field(0.0008, gt=0, description="Nugget radius [m].")
    pitch: float = Field(0.002, ge=0, description="Nugget spacing (along y) [m].")
    material: str | None = Field(None, description="Nugget material; None = the plate material.")


class ModuleHolder(StrictModel):
    """A cell holder (cylindrical cells): a block around the cell bodies, from their bottom face
    up to ``height`` (default the cell height), ``margin`` beyond the outermost cells; it is
    meshed conformally with the cans, so heat crosses between neighbours through it (region
    ``holder``). Give it a material with ``sigma_ref: 0`` (an insulator) in ``materials:``."""

    material: str = Field(description="Holder material (define it in materials:, e.g. a plastic).")
    margin: float = Field(0.002, gt=0, description="Holder extent beyond the outermost cell surfaces [m].")
    height: float | None = Field(None, gt=0, description="Holder height from the cells' bottom face [m]; "
                                 "default the cell height.")


class Module(StrictModel):
    """An nSmP module with busbar plates (the nSmP/PCU topology of AcuSolve's BATTERY_MODULE).

    ``parallel_connected_units`` (PCU) divides n_s: inside each PCU the p strings of
    n_s/PCU series cells are separate (one plate per string between stages) and they are
    cross-connected (one plate across all p cells) only at PCU ends; PCU = n_s is the
    usual fully cross-connected nSmP, PCU = 1 joins the strings at the module ends only.
    Every plate joining stage s to s+1 carries the positive field of s.

    **Cylindrical cells**: stages (1..n_s) are columns along x, parallel cells (1..m_p)
    rows along y. With ``busbars: both`` the cells alternate orientation (odd stages
    positive-up) and plates sit on both ends; with ``top`` all cells are positive-up and
    every plate is on top. Plates sit ``gap`` above the terminals and touch them only
    through the nuggets. Face reference ``module``: the +y end faces of the terminal
    plates. Surface ``cold_plate``: the module's bottom-most faces.

    **Prismatic and pouch cells**: all cells form one stack along the stacking axis (x;
    z for lying pouches) in the order stage 1 (parallel 1..m_p), stage 2, ...; parallel
    cells of a stage have the same orientation and share the plates, and every next stage
    is turned over so that the + terminals of stage s sit next to the - terminals of
    stage s+1 (one plate joins them). ``pitch[0]`` is the stacking pitch (``pitch[1]`` is
    unused). A single stack cannot keep parallel strings apart (their plates would
    cross), so with m_p > 1 the PCU must equal n_s. Prismatic posts are joined to the
    plates (``gap`` above them) by ``weld`` nuggets; pouch tabs pass through slots in the
    plates (``weld`` and ``gap`` unused). ``busbars`` is implied by the cell (prismatic and
    same-side pouch: top; opposite-tab pouch: both). Face reference ``module``: the end
    faces of the terminal plates, which extend ``terminal_extension`` beyond the stack
    (the negative one before stage 1, the positive one after stage n_s). Surface
    ``cold_plate``: the cells' bottom faces (z = 0), or for opposite-tab standing pouches
    the bottom plates' lower faces.
    """

    series: int = Field(ge=1, description="Number of series stages n_s [-].")
    parallel: int = Field(ge=1, description="Cells in parallel per stage m_p [-].")
    parallel_connected_units: int | None = Field(
        None, ge=1, description="PCU count; must divide series; None = series (fully connected)."
    )
    cell: ModuleCell = Field(
        default_factory=CylindricalCell,
        description="Cell format: type cylindrical (default), prismatic or pouch.",
    )
    pitch: XY | None = Field(
        None, description="Cell pitch (x between stages, y between parallel cells) [m]; "
        "default: diameter + 2 mm both ways. Prismatic/pouch: (stacking pitch, unused), "
        "default cell thickness + 2 mm."
    )
    busbars: Literal["both", "top"] = Field(
        "both", description="Cylindrical: plates on both ends or top only (others: implied).")
    busbar_thickness: float = Field(0.002, gt=0, description="Plate thickness [m].")
    busbar_material: str = Field("copper", description="Plate material.")
    gap: float = Field(0.0003, gt=0, description="Gap between a terminal and its plate [m].")
    terminal_extension: float = Field(
        0.01, gt=0, description="How far the terminal plates extend beyond the cells [m] "
        "(+y for cylindrical cells, along the stacking axis otherwise)."
    )
    weld: ModuleWeld = Field(default_factory=ModuleWeld, description="Terminal welds.")
    holder: ModuleHolder | None = Field(None, description="Cylindrical cells: a holder block around the "
                                        "cell bodies (region holder).")

    def stack_thickness(self) -> float:
        """Cell thickness along the stacking axis [m] (prismatic/pouch)."""
        return self.cell.depth if self.cell.type == "prismatic" else self.cell.thickness

    def stack_pitch(self) -> float:
        """Stacking pitch [m] (prismatic/pouch)."""
        return self.pitch[0] if self.pitch is not None else self.stack_thickness() + 0.002

    @model_validator(mode="after")
    def _check_pcu(self) -> Module:
        pcu = self.parallel_connected_units or self.series
        if self.series % pcu:
            raise ValueError(
                f"parallel_connected_units = {pcu} must divide series = {self.series}"
            )
        if self.cell.type == "cylindrical":
            r, hgt = self.cell.dimensions()
            if self.holder is not None and self.holder.height is not None and self.holder.height > hgt:
                raise ValueError(f"holder height {self.holder.height} m exceeds the cell height {hgt} m")
            px, py = self.pitch or (2 * r + 0.002, 2 * r + 0.002)
            if px < 2 * r or py < 2 * r:
                raise ValueError(f"pitch {px, py} m is smaller than the cell diameter {2 * r} m")
            return self
        if self.holder is not None:
            raise ValueError("a holder is available for cylindrical cells only")
        if self.parallel > 1 and pcu != self.series:
            raise ValueError(
                f"parallel_connected_units = {pcu}: a {self.cell.type} stack cannot keep "
                f"parallel strings apart; use parallel_connected_units: {self.series} "
                "(every stage cross-connected) or parallel: 1")
        t, px = self.stack_thickness(), self.stack_pitch()
        if px <= t:
            raise ValueError(f"stacking pitch {px} m must exceed the cell thickness {t} m "
                             "(touching cells would short their potentials)")
        if self.cell.type == "prismatic" and 2 * self.cell.terminal_radius + 0.001 >= px:
            raise ValueError(f"stacking pitch {px} m leaves no room between the plates on "
                             f"posts of radius {self.cell.terminal_radius} m")
        return self


BBox = tuple[float, float, float, float, float, float]
REGION_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"


class RegionSpec(StrictModel):
    """What an imported region is: material, conductor or cell, field, stage/parallel/polarity.

    ``field`` may be omitted for a conductor: it is then inferred through the conductors
    it touches from a region that has one, or from a tab's ``polarity`` and ``stage``
    (``positive_field``/``negative_field`` of the stage). A cell needs ``stage`` and
    ``parallel`` (its two potentials follow the stage parity); its material is a label.
    """

    material: str | None = Field(None, description="Material name (conductors); a label for cells.")
    kind: Literal["conductor", "cell"] = Field("conductor", description="Plain conductor or MSMD cell.")
    field: Literal[1, 2] | None = Field(None, description="Global potential a conductor carries.")
    stage: int | None = Field(None, ge=1, description="Series stage (cells, tabs) [-].")
    parallel: int | None = Field(None, ge=1, description="Parallel index (cells, tabs) [-].")
    polarity: Literal["pos", "neg"] | None = Field(None, description="Tab polarity.")

    @model_validator(mode="after")
    def _check_kind(self) -> RegionSpec:
        if self.kind == "cell":
            if self.stage is None or self.parallel is None:
                raise ValueError("a cell region needs stage and parallel")
            if self.field is not None:
                raise ValueError("a cell carries both fields; leave field out")
        elif self.material is None:
            raise ValueError("a conductor region needs a material")
        return self

    def same_as(self, other: RegionSpec) -> bool:
        """True when both specs describe the region identically."""
        return self.model_dump() == other.model_dump()


class StepMatch(StrictModel):
    """Which STEP solids a rule selects: exactly one criterion."""

    name: str | None = Field(None, description="Regular expression searched in the STEP solid's "
                             "name (its product/label path, e.g. 'Shapes/Assembly/1/Busbar').")
    bbox: BBox | None = Field(None, description="Box (xmin, ymin, zmin, xmax, ymax, zmax) [m]: selects "
                              "solids whose bounding box lies inside.")
    adjacent_to: str | None = Field(None, description="Region name: selects solids sharing a face "
                                    "with it (resolved after the name/bbox rules).")

    @model_validator(mode="after")
    def _one(self) -> StepMatch:
        given = [k for k in ("name", "bbox", "adjacent_to") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of name, bbox, adjacent_to (got {given or 'none'})")
        if self.name is not None:
            import re

            try:
                re.compile(self.name)
            except re.error as exc:
                raise ValueError(f"bad regular expression {self.name!r}: {exc}") from None
        if self.bbox is not None and any(lo > hi for lo, hi in zip(self.bbox[:3], self.bbox[3:], strict=True)):
            raise ValueError("bbox must be [xmin, ymin, zmin, xmax, ymax, zmax]")
        return self


class StepRule(RegionSpec):
    """Map the STEP solids selected by ``match`` to the region ``region``."""

    match: StepMatch = Field(description="Which solids.")
    region: str = Field(pattern=REGION_NAME, description="Region (physical) name, e.g. busbar_1, cell_1_1.")


class FaceBox(StrictModel):
    """Faces whose bounding box lies inside ``bbox`` (exterior faces of the imported solids)."""

    bbox: BBox = Field(description="Box (xmin, ymin, zmin, xmax, ymax, zmax) [m].")


class StepTerminals(StrictModel):
    """Module terminal faces of an imported model."""

    positive: FaceBox = Field(description="terminal_pos faces.")
    negative: FaceBox = Field(description="terminal_neg faces.")


def _resolve_file(name: str, info: ValidationInfo) -> Path:
    case_dir = Path((info.context or {}).get("case_dir", "."))
    p = Path(name)
    return p if p.is_absolute() else case_dir / p


class StepImport(StrictModel):
    """``geometry.step``: solids from a STEP file, mapped to regions by rules.

    All solids are healed and fragmented together (shared faces become conformal
    interfaces); then every piece goes to the first rule that matches it (name and bbox
    rules in order, then ``adjacent_to`` rules until nothing changes). Where solids
    overlap, the shared piece goes to the first matching rule: list inserts (bolts,
    nuggets) before their hosts. A piece no rule matches is an error that lists it with
    its bounding box.
    """

    file: str = Field(description="STEP file (.step/.stp), relative to the case file.")
    unit: Literal["mm", "m"] = Field(
        "mm", description="'mm': a normal CAD export, the file's declared length unit is honoured "
        "and converted to metres; 'm': the coordinate numbers are metres even though the header "
        "says millimetres (files written by SI scripts, e.g. gmsh's own STEP export).")
    heal: bool = Field(True, description="Heal the shapes (sew faces, fix small edges) on import.")
    rules: list[StepRule] = Field(min_length=1, description="Solid-to-region rules (first match wins).")
    terminals: StepTerminals | None = Field(None, description="Terminal faces by bounding box.")
    _path: Path | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> StepImport:
        specs: dict[str, RegionSpec] = {}
        for k, r in enumerate(self.rules):
            spec = RegionSpec(**{f: getattr(r, f) for f in RegionSpec.model_fields})
            if r.region in specs and not specs[r.region].same_as(spec):
                raise ValueError(f"rules[{k}]: region {r.region!r} is described differently by "
                                 "an earlier rule (material/kind/field/stage must agree)")
            specs[r.region] = spec
        for k, r in enumerate(self.rules):
            if r.match.adjacent_to is not None and r.match.adjacent_to not in specs:
                raise ValueError(f"rules[{k}].match.adjacent_to: no rule makes region "
                                 f"{r.match.adjacent_to!r}; regions: {sorted(specs)}")
        self._path = _resolve_file(self.file, info)
        return self

    def path(self) -> Path:
        """The STEP file (resolved against the case folder)."""
        return self._path if self._path is not None else Path(self.file)

    def regions(self) -> dict[str, RegionSpec]:
        """Region name -> its spec, in rule order."""
        out: dict[str, RegionSpec] = {}
        for r in self.rules:
            out.setdefault(r.region, RegionSpec(**{f: getattr(r, f) for f in RegionSpec.model_fields}))
        return out


class MeshFile(StrictModel):
    """``geometry.mesh_file``: a mesh made elsewhere, with named regions.

    Formats and what names they carry: ``.msh`` (gmsh 2.2/4.1, read by gmsh itself:
    physical groups with their names; an unnamed group is called by its number);
    ``.med`` (Salome/Code_Aster: cell groups, read by meshio as cell sets -> names);
    ``.inp`` (Abaqus: ``*ELSET`` element sets -> names; ``*SURFACE`` is not read, give
    terminal faces as triangle element sets); ``.vtu`` (VTK: numbers only, from the
    integer cell array ``gmsh:physical``, ``medit:ref``, ``CellEntityIds`` or ``region``;
    map them with ``names``). Tetrahedra (4 or 10 nodes) form the volume regions;
    triangles form named surfaces (``terminal_pos``/``terminal_neg`` for the load). Every
    volume region must be described in ``regions``. Of the ``mesh:`` section only ``order``
    applies (1: corner nodes only; 2: 10-node tetrahedra, straight-sided unless the file has
    curved ones); the sizes and ``refine`` do not (setting ``refine`` is an error).
    """

    file: str = Field(description="Mesh file (.msh, .med, .inp, .vtu), relative to the case file.")
    unit: Literal["mm", "m"] = Field("m", description="Length unit of the node coordinates.")
    names: dict[str, str] = Field(
        default_factory=dict, description="Numeric region id -> region name, for files that "
        "carry ids only (.vtu, unnamed .msh groups), e.g. {'3': terminal_pos}.")
    regions: dict[str, RegionSpec] = Field(
        description="Volume region name (after 'names') -> what it is.")
    _path: Path | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> MeshFile:
        self._path = _resolve_file(self.file, info)
        return self

    def path(self) -> Path:
        """The mesh file (resolved against the case folder)."""
        return self._path if self._path is not None else Path(self.file)


class BendLine(StrictModel):
    """A sheet-metal bend of a plate's flat pattern (``geometry.plates[k].bends``).

    ``line`` (two points of the flat pattern [m], taken as an infinite line) is the centre of
    the bend zone; the zone is ``angle * (radius + k_factor * thickness)`` wide (the bend
    allowance, so the developed length along the neutral layer is preserved). The part of the
    plate to the *left* of the line (looking from its first point to its second) is bent
    about an axis parallel to the line, up (+z) for a positive ``angle``, down for a
    negative one; the part to the right stays where it is (unless another bend moves it).
    """

    line: tuple[XY, XY] = Field(description="Two flat-pattern points [m] on the bend's centre line.")
    angle: float = Field(description="Bend angle [deg], 0 < |angle| <= 180; positive bends the left part "
                         "up (+z).")
    radius: float = Field(gt=0, description="Inner bend radius [m].")
    k_factor: float = Field(0.5, ge=0, le=1, description="Neutral-layer position (0 inner face, 1 outer "
                            "face); the bend allowance is angle * (radius + k_factor * thickness).")

    @model_validator(mode="after")
    def _check(self) -> BendLine:
        (x0, y0), (x1, y1) = self.line
        if math.hypot(x1 - x0, y1 - y0) == 0 or not all(map(math.isfinite, (x0, y0, x1, y1))):
            raise ValueError("line needs two different (finite) points")
        if not (0 < abs(self.angle) <= 180):
            raise ValueError(f"angle {self.angle:g} deg: give 0 < |angle| <= 180")
        return self


class Plate(StrictModel):
    """A flat busbar cut to an outline (a DXF drawing or a polygon), extruded along z from ``z0``,
    and optionally bent along sheet-metal bend lines.

    Plates are numbered after ``geometry.busbars``: with two busbars the first plate is
    ``busbar_3`` (bolts and contacts refer to it by that index/name). Faces:
    ``busbar_<i>.top`` / ``.bottom`` and one per entry of ``faces`` (the side wall through
    a flat-pattern point of the outline, e.g. ``start: [0, 0.005]`` -> ``busbar_<i>.start``).
    See :mod:`busbarfem.geometry.dxf` for what the drawing may contain and
    :mod:`busbarfem.geometry.flatbend` for the bends.
    """

    file: str | None = Field(None, description="DXF file, relative to the case file (or give outline).")
    outline: list[XY] | None = Field(None, min_length=3, description="Polygon vertices [m] of the flat "
                                     "pattern (instead of file).")
    unit: Literal["auto", "mm", "cm", "m", "inch"] = Field(
        "auto", description="Drawing unit; 'auto' reads $INSUNITS (unitless drawings: mm).")
    layer: str | None = Field(None, description="Only entities of this layer (default: all).")
    thickness: float = Field(gt=0, description="Plate thickness along z [m].")
    z0: float = Field(0.0, description="Height of the bottom face [m].")
    material: str = Field("copper", description="Material name.")
    bends: list[BendLine] = Field(default_factory=list, description="Sheet-metal bend lines of the flat "
                                  "pattern (applied to the extruded plate).")
    faces: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], XY] = Field(
        default_factory=dict, description="Named side faces: name -> a flat-pattern point [m] on a straight "
        "outline edge; the face is busbar_<i>.<name> (e.g. start, end for terminals).")
    _path: Path | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Plate:
        if (self.file is None) == (self.outline is None):
            raise ValueError("give the flat pattern as file (a DXF drawing) or as outline (polygon), one of them")
        clash = sorted(set(self.faces) & {"top", "bottom"})
        if clash:
            raise ValueError(f"faces {clash} are named already (top/bottom); choose other names")
        if self.file is not None:
            self._path = _resolve_file(self.file, info)
            if self._path.suffix.lower() != ".dxf":
                raise ValueError(f"file {self.file!r} is not a .dxf drawing")
        return self

    def path(self) -> Path | None:
        """The DXF file (resolved against the case folder); None for a polygon outline."""
        if self.file is None:
            return None
        return self._path if self._path is not None else Path(self.file)


class ContactState(StrictModel):
    """Specific contact values in one clamping state (a row of a contact's ``states`` table);
    ``r_c_vs_T`` makes the state's r_c depend on temperature (a table per clamping state)."""

    r_c: float | None = Field(None, gt=0, description="Specific electrical contact resistance [ohm m^2].")
    h_c: float = Field(gt=0, description="Thermal contact conductance [W/m^2/K].")
    r_c_vs_T: list[XY] | None = Field(
        None, min_length=2, description="(T [K], r_c [ohm m^2]) points in this state; instead of r_c.")

    @model_validator(mode="after")
    def _one(self) -> ContactState:
        if (self.r_c is None) == (self.r_c_vs_T is None):
            raise ValueError("give r_c or r_c_vs_T (one of them)")
        return self


class Contact(StrictModel):
    """Contact resistance on the interface between two solids (region ``contact.<a>.<b>``).

    Modelled as a thin conformal layer of ``thickness`` carved out of the second solid along
    the shared planar faces, with properties derived from the specific values so that the
    layer adds exactly ``r_c / A`` of electrical and ``1 / (h_c A)`` of thermal resistance
    whatever its thickness (docs/theory.md, Contact resistance); the Joule heat of the contact
    is deposited in the layer. ``states`` + ``state`` pick the values of a named clamping
    state; ``r_c_vs_T`` (of the contact, or of each state) gives r_c at several temperatures
    (fitted by the solver's linear law ``r_c (1 + alpha (T - T_ref))``; a table that is not
    linear within 2 % is an error).
    """

    between: tuple[str, str] = Field(description="The two region names, e.g. [busbar_1, bolt_1]; the "
                                     "layer is carved out of the second.")
    r_c: float | None = Field(None, gt=0, description="Specific electrical contact resistance [ohm m^2].")
    h_c: float | None = Field(None, gt=0, description="Thermal contact conductance [W/m^2/K].")
    states: dict[str, ContactState] | None = Field(
        None, description="Named clamping states (e.g. torqued, loose) -> {r_c, h_c}.")
    state: str | None = Field(None, description="Which of 'states' applies.")
    r_c_vs_T: list[XY] | None = Field(
        None, min_length=2, description="(T [K], r_c [ohm m^2]) points; overrides r_c with a linear fit.")
    thickness: float = Field(1.0e-4, gt=0, description="Thickness of the modelling layer [m] (results do "
                             "not depend on it; keep it well below the solids' thickness).")

    @model_validator(mode="after")
    def _values(self) -> Contact:
        if self.between[0] == self.between[1]:
            raise ValueError("between needs two different regions")
        if self.states is not None:
            if self.state not in self.states:
                raise ValueError(f"state {self.state!r} is not one of the states {sorted(self.states)}")
            if self.r_c is not None or self.h_c is not None or self.r_c_vs_T is not None:
                raise ValueError("with states, give r_c / h_c / r_c_vs_T inside each state, not beside them")
        elif self.state is not None:
            raise ValueError("state needs a states table")
        elif self.h_c is None or (self.r_c is None and self.r_c_vs_T is None):
            raise ValueError("give r_c (or r_c_vs_T) and h_c, or states + state")
        self.linear_r_c()
        return self

    @property
    def name(self) -> str:
        """Region name of the layer: ``contact.<a>.<b>``."""
        return f"contact.{self.between[0]}.{self.between[1]}"

    def values(self) -> tuple[float, float]:
        """(r_c [ohm m^2], h_c [W/m^2/K]) in the selected state (before any T table)."""
        if self.states is not None:
            st = self.states[self.state]
            return st.r_c if st.r_c is not None else 0.0, st.h_c
        return self.r_c if self.r_c is not None else 0.0, self.h_c

    def linear_r_c(self) -> tuple[float, float, float]:
        """(r_c at T_ref, alpha [1/K], T_ref [K]) of the contact's electrical law (in the selected
        state, from its table if it has one)."""
        table = self.states[self.state].r_c_vs_T if self.states is not None else self.r_c_vs_T
        if table is None:
            return self.values()[0], 0.0, 293.15
        import numpy as np

        T = np.array([p[0] for p in table])
        r = np.array([p[1] for p in table])
        if np.any(T <= 0) or np.any(r <= 0) or len(set(T)) < 2:
            raise ValueError("r_c_vs_T needs >= 2 distinct temperatures > 0 K and r_c > 0")
        slope, r0 = np.polyfit(T - T[0], r, 1)
        dev = np.max(np.abs(r0 + slope * (T - T[0]) - r) / r)
        if dev > 0.02:
            raise ValueError(f"r_c_vs_T departs from a straight line by {dev:.1%} (> 2 %); the solver's "
                             "resistivity law is linear in T: give points over a narrower range")
        if slope < 0:
            raise ValueError("r_c_vs_T falls with temperature; the solver's law needs alpha >= 0")
        return float(r0), float(slope / r0), float(T[0])


class Geometry(StrictModel):
    """The ``geometry:`` section: every solid of the model."""

    busbars: list[Busbar] = Field(default_factory=list, description="Busbars (busbar_<i>).")
    bolts: list[Bolt] = Field(default_factory=list, description="Bolts / posts (bolt_<i>).")
    tabs: list[Tab] = Field(default_factory=list, description="Tabs (tab_<pol>_<s>_<p>).")
    welds: list[Weld] = Field(default_factory=list, description="Weld nugget groups (weld_<k>).")
    vias: list[ViaArray] = Field(default_factory=list, description="Via arrays (via_<k>).")
    module: Module | None = Field(None, description="nSmP cell module builder.")
    step: StepImport | None = Field(None, description="Solids imported from a STEP file.")
    mesh_file: MeshFile | None = Field(
        None, description="A complete external mesh (replaces every other geometry input).")
    terminals: Terminals | None = Field(
        None, description="Terminal faces; required unless a module builder defines them."
    )
    plates: list[Plate] = Field(default_factory=list, description="Flat plates from DXF outlines "
                                "(busbar_<n> numbered after busbars).")
    contacts: list[Contact] = Field(default_factory=list, description="Contact resistances on interfaces "
                                    "between two solids (regions contact.<a>.<b>).")

    @model_validator(mode="after")
    def _check_refs(self) -> Geometry:
        if self.mesh_file is not None:
            others = [k for k in ("busbars", "bolts", "tabs", "welds", "vias", "module", "step",
                                  "terminals") if getattr(self, k)]
            if others:
                raise ValueError(f"mesh_file replaces the whole geometry; remove {others}")
        if self.step is not None and self.step.terminals is not None and self.terminals is not None:
            raise ValueError("give the terminals in geometry.step.terminals or geometry.terminals, "
                             "not both")
        nb, nt = len(self.busbars) + len(self.plates), len(self.tabs)
        for k, b in enumerate(self.bolts):
            for j in b.plates():
                if j > nb:
                    raise ValueError(f"bolts[{k}] passes through busbar {j} but there are only {nb} "
                                     "busbar(s)")
        for k, w in enumerate(self.welds):
            if w.busbar > nb:
                raise ValueError(f"welds[{k}].busbar = {w.busbar} but only {nb} busbar(s)")
            if w.tab > nt:
                raise ValueError(f"welds[{k}].tab = {w.tab} but only {nt} tab(s)")
            if w.depth > self.busbars[w.busbar - 1].thickness:
                raise ValueError(f"welds[{k}].depth exceeds the busbar thickness")
        for k, v in enumerate(self.vias):
            a, b = v.busbars
            if a == b or max(a, b) > nb:
                raise ValueError(f"vias[{k}].busbars = {v.busbars}: two different busbars of {nb}")
        pairs = [frozenset(c.between) for c in self.contacts]
        if len(set(pairs)) < len(pairs):
            raise ValueError("two contacts name the same pair of regions")
        names = [f"tab_{t.polarity}_{t.stage}_{t.parallel}" for t in self.tabs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"tabs share a (polarity, stage, parallel): {sorted(dup)}")
        return self


# --------------------------------------------------------------------------- mesh
class Refinement(StrictModel):
    """Local refinement near geometric features (distance/threshold size fields).

    ``fillets``, ``bolts``, ``welds`` and ``vias`` refine features the builders make;
    ``interfaces``, ``terminals`` and ``regions`` work on any generated geometry, STEP
    included. An external mesh (``geometry.mesh_file``) is used as it is: ``refine`` is an
    error there.
    """

    size_factor: float = Field(
        0.3, gt=0, le=1, description="Size at the feature as a fraction of the local size [-]."
    )
    size: float | None = Field(
        None, gt=0, description="Absolute size at the feature [m]; overrides size_factor."
    )
    distance: float = Field(
        0.004, gt=0, description="Distance from the feature over which the size grows back [m]."
    )
    fillets: bool = Field(True, description="Refine at bends (fillet arcs and sharp inner corners).")
    bolts: bool = Field(True, description="Refine at the circular edges of bolts and holes.")
    welds: bool = Field(True, description="Refine at weld nugget edges.")
    vias: bool = Field(True, description="Refine at via edges.")
    interfaces: bool | None = Field(
        None, description="Refine at the edges of the interfaces between different regions (where a bolt, "
        "insert or nugget leaves its host: the re-entrant edges where current crowds). None: on for "
        "STEP geometry, off for built geometry (whose bolt/weld/via edges the keys above cover).")
    terminals: bool = Field(False, description="Refine at the edges of the terminal faces.")
    regions: list[str] = Field(
        default_factory=list, description="Volume regions meshed at the refined size throughout "
        "(size, or size_factor x the region's size), for example bolt_1.")


class MeshOptions(StrictModel):
    """The ``mesh:`` section: element size, order, refinement, cache."""

    size: float = Field(0.004, gt=0, description="Default (maximum) element size [m].")
    min_size: float | None = Field(None, gt=0, description="Lower bound on element size [m].")
    cell_size: float | None = Field(
        None, gt=0, description="Element size inside cell bodies [m] (their MSMD potentials and "
        "temperature vary smoothly, so it may exceed size); None = size. Cell faces touching "
        "conductors keep the conductors' size.")
    order: Literal[1, 2, "auto"] = Field(
        "auto", description="Element order: 1 (linear P1), 2 (curved P2: 10-node tetrahedra on the CAD "
        "surfaces, P2 potential and temperature) or 'auto': 2 for models without cell bodies "
        "(passive-conductor studies) whose P2 mesh has at most 50,000 nodes, else 1.")
    elements_through_thickness: int = Field(
        2, ge=1, description="Target number of elements across thin sheets (busbars, tabs) [-]."
    )
    thin_aspect: float = Field(
        1.5,
        ge=1.0,
        description="In-plane size of thin sheets relative to thickness/elements_through_thickness [-] "
        "(> 1 allows flatter tets to save elements).",
    )
    curvature_elements: int = Field(
        32, ge=0, description="Elements per 2*pi of curvature on curved edges (0 = off) [-]."
    )
    refine: Refinement = Field(default_factory=Refinement, description="Feature refinement.")
    cache: bool = Field(True, description="Reuse a cached mesh for identical geometry+mesh input.")
    optimize: bool = Field(True, description="Run gmsh's tetrahedral quality optimiser.")
    algorithm: Literal["auto", "delaunay", "hxt"] = Field(
        "auto", description="3D mesher: 'delaunay' (gmsh's default), 'hxt' (gmsh's parallel Delaunay; used "
        "whenever threads > 1), or 'auto': Delaunay, and each volume where Delaunay leaves slivers "
        "(minimum dihedral angle below 1 degree, typical of 0.1-0.3 mm sheets with welds or vias) re-meshed "
        "alone with HXT if that is better.")
    threads: int = Field(1, ge=1, description="Gmsh threads for meshing (OpenMP) [-].")
    max_elements: int = Field(20_000_000, ge=1, description="Refuse meshes estimated above this many "
                              "tetrahedra (a guard against unit mistakes in size) [-].")
    time_limit: float = Field(1800.0, gt=0, description="Stop with an error (exit 2) if building and meshing "
                              "the geometry takes longer than this wall time [s].")

    @model_validator(mode="after")
    def _check_sizes(self) -> MeshOptions:
        if self.min_size is not None and self.min_size > self.size:
            raise ValueError(f"min_size {self.min_size} m is larger than size {self.size} m")
        return self
