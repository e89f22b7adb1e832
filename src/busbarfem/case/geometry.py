"""Case-file models of the geometry (``geometry:``) and meshing (``mesh:``) sections.

All lengths are in metres (SI). A busbar is a constant-width strip swept along a
centre-line polyline in the xy plane and extruded upwards from ``z0`` by its
thickness. Bends are rounded with *concentric* arcs: ``fillet_radius`` is the radius of
the inner edge, the outer edge gets ``fillet_radius + width`` (the classic bent bar,
constant width through the bend). ``fillet_radius = 0`` gives a sharp, mitred corner
on both edges (the re-entrant inner corner is the current-crowding singularity).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from busbarfem.case.base import StrictModel

XY = tuple[float, float]


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


# --------------------------------------------------------------------------- parts
class Hole(StrictModel):
    """A round through-hole in a busbar (e.g. a clearance hole)."""

    center: XY = Field(description="Hole centre (x, y) [m].")
    radius: float = Field(gt=0, description="Hole radius [m].")


class Busbar(StrictModel):
    """A busbar: a strip of constant width and thickness along a centre-line path."""

    path: list[XY] = Field(
        min_length=2,
        description="Centre-line polyline in the xy plane, >= 2 points [m]. The end "
        "faces at the first/last point are the 'busbar_<i>.start'/'.end' references.",
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
    holes: list[Hole] = Field(default_factory=list, description="Through-holes.")

    @field_validator("path")
    @classmethod
    def _check_path(cls, path: list[XY]) -> list[XY]:
        for a, b in zip(path[:-1], path[1:], strict=True):
            if math.dist(a, b) <= 0:
                raise ValueError(f"path has a zero-length segment at {a}")
        for k, t in enumerate(path_turns(path)):
            if abs(t) > math.radians(170):
                raise ValueError(
                    f"path turns by {math.degrees(t):.1f} deg at point {k + 1}; "
                    "at most 170 deg per vertex (split a U-turn into two bends)"
                )
        return path

    @model_validator(mode="after")
    def _check_fillet(self) -> Busbar:
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
        """Length [m] of the centre line including the bend arcs."""
        h = self.width / 2
        length = sum(math.dist(a, b) for a, b in zip(self.path[:-1], self.path[1:], strict=True))
        if self.fillet_radius > 0:
            rc = self.fillet_radius + h
            for t in path_turns(self.path):
                length += rc * abs(t) - 2 * rc * math.tan(abs(t) / 2)
        return length


class Bolt(StrictModel):
    """A bolt or terminal post: a cylinder through a busbar that protrudes above it.

    The part inside the busbar replaces busbar material (conformal interface).
    """

    center: XY = Field(description="Bolt axis position (x, y) [m].")
    radius: float = Field(gt=0, description="Bolt (shank) radius [m].")
    height: float = Field(
        gt=0, description="Protrusion above the busbar top face [m]; its top face is 'bolt_<i>.top'."
    )
    busbar: int = Field(1, ge=1, description="1-based index of the busbar it passes through.")
    material: str = Field("steel", description="Material name (materials library).")


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

    positive: str = Field(
        description="Face reference of terminal_pos: 'busbar_<i>.start', 'busbar_<i>.end', "
        "'bolt_<i>.top', 'tab_<i>.start'/'.end', or 'module' (the module's own posts)."
    )
    negative: str = Field(description="Face reference of terminal_neg (same syntax as positive).")


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


class ModuleWeld(StrictModel):
    """Weld nuggets joining every cell terminal to its busbar plate."""

    count: int = Field(1, ge=1, description="Nuggets per terminal [-].")
    radius: float = Field(0.0008, gt=0, description="Nugget radius [m].")
    pitch: float = Field(0.002, ge=0, description="Nugget spacing (along y) [m].")
    material: str | None = Field(None, description="Nugget material; None = the plate material.")


class Module(StrictModel):
    """An nSmP module of cylindrical cells with busbar plates (the seed's nSmP/PCU topology).

    Stages (series, 1..n_s) are columns along x, parallel cells (1..m_p) rows along y.
    ``parallel_connected_units`` (PCU) divides n_s: inside each PCU the p strings of
    n_s/PCU series cells are separate (one plate per string between stages) and they are
    cross-connected (one plate across all p cells) only at PCU ends; PCU = n_s is the
    usual fully cross-connected nSmP, PCU = 1 joins the strings at the module ends only.
    With ``busbars: both`` the cells alternate orientation (odd stages positive-up) and
    plates sit on both ends; with ``top`` all cells are positive-up and every plate is on
    top. Plates sit ``gap`` above the terminals and touch them only through the nuggets.
    Face reference ``module``: terminal_pos / terminal_neg are the +y end faces of the
    module's terminal plates. Surface ``cold_plate``: the module's bottom-most faces.
    """

    series: int = Field(ge=1, description="Number of series stages n_s [-].")
    parallel: int = Field(ge=1, description="Cells in parallel per stage m_p [-].")
    parallel_connected_units: int | None = Field(
        None, ge=1, description="PCU count; must divide series; None = series (fully connected)."
    )
    cell: CylindricalCell = Field(default_factory=CylindricalCell, description="Cell format.")
    pitch: XY | None = Field(
        None, description="Cell pitch (x between stages, y between parallel cells) [m]; "
        "default: diameter + 2 mm both ways."
    )
    busbars: Literal["both", "top"] = Field("both", description="Plates on both ends or top only.")
    busbar_thickness: float = Field(0.002, gt=0, description="Plate thickness [m].")
    busbar_material: str = Field("copper", description="Plate material.")
    gap: float = Field(0.0003, gt=0, description="Gap between a terminal and its plate [m].")
    terminal_extension: float = Field(
        0.01, gt=0, description="How far the terminal plates extend beyond the cells in +y [m]."
    )
    weld: ModuleWeld = Field(default_factory=ModuleWeld, description="Terminal welds.")

    @model_validator(mode="after")
    def _check_pcu(self) -> Module:
        pcu = self.parallel_connected_units or self.series
        if self.series % pcu:
            raise ValueError(
                f"parallel_connected_units = {pcu} must divide series = {self.series}"
            )
        r, _ = self.cell.dimensions()
        px, py = self.pitch or (2 * r + 0.002, 2 * r + 0.002)
        if px < 2 * r or py < 2 * r:
            raise ValueError(f"pitch {px, py} m is smaller than the cell diameter {2 * r} m")
        return self


class Geometry(StrictModel):
    """The ``geometry:`` section: every solid of the model."""

    busbars: list[Busbar] = Field(default_factory=list, description="Busbars (busbar_<i>).")
    bolts: list[Bolt] = Field(default_factory=list, description="Bolts / posts (bolt_<i>).")
    tabs: list[Tab] = Field(default_factory=list, description="Tabs (tab_<pol>_<s>_<p>).")
    welds: list[Weld] = Field(default_factory=list, description="Weld nugget groups (weld_<k>).")
    vias: list[ViaArray] = Field(default_factory=list, description="Via arrays (via_<k>).")
    module: Module | None = Field(None, description="nSmP cell module builder.")
    terminals: Terminals | None = Field(
        None, description="Terminal faces; required unless a module builder defines them."
    )

    @model_validator(mode="after")
    def _check_refs(self) -> Geometry:
        nb, nt = len(self.busbars), len(self.tabs)
        for k, b in enumerate(self.bolts):
            if b.busbar > nb:
                raise ValueError(f"bolts[{k}].busbar = {b.busbar} but only {nb} busbar(s)")
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
        names = [f"tab_{t.polarity}_{t.stage}_{t.parallel}" for t in self.tabs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"tabs share a (polarity, stage, parallel): {sorted(dup)}")
        return self


# --------------------------------------------------------------------------- mesh
class Refinement(StrictModel):
    """Local refinement near geometric features (distance/threshold size fields)."""

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


class MeshOptions(StrictModel):
    """The ``mesh:`` section: element size, order, refinement, cache."""

    size: float = Field(0.004, gt=0, description="Default (maximum) element size [m].")
    min_size: float | None = Field(None, gt=0, description="Lower bound on element size [m].")
    order: Literal[1, 2] = Field(1, description="Geometric/element order (2 = curved P2).")
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
    threads: int = Field(1, ge=1, description="Gmsh threads for meshing (OpenMP) [-].")

    @model_validator(mode="after")
    def _check_sizes(self) -> MeshOptions:
        if self.min_size is not None and self.min_size > self.size:
            raise ValueError(f"min_size {self.min_size} m is larger than size {self.size} m")
        return self
