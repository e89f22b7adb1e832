"""The one place that decides region names (Gmsh physical names) and region metadata.

Volumes:  ``busbar_<i>``, ``bolt_<i>``, ``via_<i>``, ``weld_<i>``, ``tab_pos_<s>_<p>``,
``tab_neg_<s>_<p>``, ``cell_<s>_<p>`` (stage ``s`` and parallel index ``p`` are 1-based),
``post_pos`` / ``post_neg`` (module terminal posts), ``part_<i>`` (imported solids).
Surfaces: ``terminal_pos`` and ``terminal_neg`` (module/busbar terminals where the
electrical load applies), plus any builder-named surface such as ``cold_plate``.
Reserved: ``exterior`` means every exterior boundary facet; a *volume* name used where a
surface is expected means that volume's exterior boundary facets.

Every region carries a :class:`RegionInfo`: its material, whether it is a plain
conductor or a cell, and which global potential it carries (``field`` 1 or 2, see the
MSMD stage parity of docs/theory.md: odd stages phi+ = phi1, even stages phi+ = phi2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

TERMINAL_POS = "terminal_pos"
TERMINAL_NEG = "terminal_neg"
EXTERIOR = "exterior"


def busbar(i: int) -> str:
    """Name of the i-th busbar volume (1-based)."""
    return f"busbar_{i}"


def bolt(i: int) -> str:
    """Name of the i-th bolt/terminal-post volume (1-based)."""
    return f"bolt_{i}"


def via(i: int) -> str:
    """Name of the i-th via volume (1-based)."""
    return f"via_{i}"


def weld(i: int) -> str:
    """Name of the i-th weld nugget volume (1-based)."""
    return f"weld_{i}"


def cell(stage: int, parallel: int) -> str:
    """Name of the cell body in series stage ``stage`` and parallel slot ``parallel``."""
    return f"cell_{stage}_{parallel}"


def tab(polarity: str, stage: int, parallel: int) -> str:
    """Name of a cell tab; ``polarity`` is ``"pos"`` or ``"neg"``."""
    if polarity not in ("pos", "neg"):
        raise ValueError(f"polarity must be 'pos' or 'neg', got {polarity!r}")
    return f"tab_{polarity}_{stage}_{parallel}"


def positive_field(stage: int) -> int:
    """Global field (1 or 2) that carries phi+ in series stage ``stage`` (1-based)."""
    return 1 if stage % 2 == 1 else 2


def negative_field(stage: int) -> int:
    """Global field (1 or 2) that carries phi- in series stage ``stage`` (1-based)."""
    return 2 if stage % 2 == 1 else 1


@dataclass
class RegionInfo:
    """Metadata of one named region (a Gmsh physical group).

    Attributes:
        name: the physical name.
        dim: 3 for volumes, 2 for surfaces.
        material: material name (volumes only).
        kind: ``"conductor"``, ``"cell"`` or ``"surface"``.
        field: global potential carried by a conductor (1 or 2); for a cell None
            (it carries both, with phi+ on ``positive_field(stage)``).
        stage: series stage (1-based) for cells/tabs, else None.
        parallel: parallel index (1-based) for cells/tabs, else None.
        polarity: ``"pos"``/``"neg"`` for tabs and terminals, else None.
    """

    name: str
    dim: int
    material: str | None = None
    kind: str = "conductor"
    field: int | None = 1
    stage: int | None = None
    parallel: int | None = None
    polarity: str | None = None

    def to_dict(self) -> dict:
        """Plain-dict form (for JSON and for broadcasting to MPI ranks)."""
        return asdict(self)


@dataclass
class GeometryInfo:
    """What a geometry builder produced: the regions, in build order.

    Attributes:
        regions: region name -> :class:`RegionInfo` (volumes and surfaces).
        parameters: the builder's resolved parameters (for the mesh cache key, reports).
        volumes: analytic volume of each volume region where known [m^3] (for tests).
    """

    regions: dict[str, RegionInfo] = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    volumes: dict[str, float] = field(default_factory=dict)

    def add(self, info: RegionInfo) -> RegionInfo:
        """Register a region; a duplicate name is a programming error."""
        if info.name in self.regions:
            raise ValueError(f"region name {info.name!r} used twice")
        self.regions[info.name] = info
        return info

    def volume_names(self) -> list[str]:
        """Names of the volume regions."""
        return [n for n, r in self.regions.items() if r.dim == 3]

    def surface_names(self) -> list[str]:
        """Names of the surface regions."""
        return [n for n, r in self.regions.items() if r.dim == 2]
