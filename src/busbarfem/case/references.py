"""Region and face names a case's geometry will have, derived from the case alone.

``busbarfem validate`` uses these to check every name a case refers to (terminal face
references, thermal boundary regions) without building or meshing anything. The names
follow :mod:`busbarfem.naming` and the numbering of the builders in
:mod:`busbarfem.geometry` (``tests/unit/test_references.py`` compares the two on real
gmsh models, so they cannot drift apart).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from busbarfem import naming
from busbarfem.case.geometry import Geometry

#: face reference that means "the module's own terminal plates" (module cases).
MODULE_TERMINAL = "module"
_SHEET_FACES = ("start", "end", "top", "bottom")


@dataclass
class GeometryNames:
    """Names a geometry produces.

    Attributes:
        volumes: volume regions (``busbar_1``, ``cell_1_1``, ...).
        surfaces: named surfaces (``terminal_pos``, ``cold_plate``, ...).
        faces: face references valid in ``geometry.terminals`` (``busbar_1.start``, ...).
        cells: the volumes that are cell bodies (MSMD regions).
        surfaces_known: False when a mesh file brings surface names only it knows.
    """

    volumes: list[str] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)
    surfaces: list[str] = field(default_factory=list)
    faces: list[str] = field(default_factory=list)
    surfaces_known: bool = True

    def boundary_names(self) -> list[str]:
        """Every name valid where a boundary region is expected (thermal BCs)."""
        return [naming.EXTERIOR, *self.volumes, *self.surfaces]

    def terminal_choices(self, has_module: bool) -> list[str]:
        """Face references valid in ``geometry.terminals``."""
        return ([MODULE_TERMINAL] if has_module else []) + self.faces


def _sheet(out: GeometryNames, name: str, faces=_SHEET_FACES, aliases: tuple[str, ...] = ()) -> None:
    out.volumes.append(name)
    for prefix in (name, *aliases):
        out.faces += [f"{prefix}.{f}" for f in faces]


def _module(out: GeometryNames, geometry: Geometry, first_weld: int) -> None:
    mod = geometry.module
    n, m = mod.series, mod.parallel
    for s in range(1, n + 1):
        for p in range(1, m + 1):
            out.volumes += [naming.cell(s, p), naming.tab("pos", s, p), naming.tab("neg", s, p)]
            out.cells.append(naming.cell(s, p))
    if mod.cell.type == "cylindrical":
        per_pcu = n // (mod.parallel_connected_units or n)
        # one plate per string between stages, one across all strings at PCU ends
        n_plates = sum(1 if s % per_pcu == 0 else m for s in range(1, n)) + 2
        faces = _SHEET_FACES
        welded = True
    else:  # one stack: one plate per stage joint plus the two terminal plates
        n_plates = (n - 1) + 2
        faces = ("start", "end", "top")
        welded = mod.cell.type == "prismatic"  # pouch tabs pass through slots
    first_busbar = len(geometry.busbars) + len(geometry.plates) + 1
    for k in range(first_busbar, first_busbar + n_plates):
        _sheet(out, naming.busbar(k), faces)
    if welded:  # every cell terminal is welded to exactly one plate
        n_welds = 2 * n * m * mod.weld.count
        out.volumes += [naming.weld(k) for k in range(first_weld, first_weld + n_welds)]
    if mod.holder is not None:  # a block around the cylindrical cells
        out.volumes.append("holder")
    out.faces += ["module.positive", "module.negative", "module.bottom"]
    out.surfaces.append("cold_plate")


def geometry_names(geometry: Geometry) -> GeometryNames:
    """The volume, surface and face-reference names ``geometry`` will produce."""
    out = GeometryNames()
    if geometry.mesh_file is not None:
        out.volumes = list(geometry.mesh_file.regions)
        out.cells = [n for n, r in geometry.mesh_file.regions.items() if r.kind == "cell"]
        out.surfaces = [naming.TERMINAL_POS, naming.TERMINAL_NEG]
        out.surfaces_known = False
        return out
    for i, _ in enumerate(geometry.busbars, start=1):
        _sheet(out, naming.busbar(i))
    for k, plate in enumerate(geometry.plates, start=len(geometry.busbars) + 1):
        _sheet(out, naming.busbar(k), ("top", "bottom", *plate.faces))
    for i, tab in enumerate(geometry.tabs, start=1):
        _sheet(out, naming.tab(tab.polarity, tab.stage, tab.parallel), aliases=(f"tab_{i}",))
    for i, bolt in enumerate(geometry.bolts, start=1):
        out.volumes.append(naming.bolt(i))
        out.faces += [f"{naming.bolt(i)}.top", f"{naming.bolt(i)}.bottom"]
        out.volumes += [f"{what}_{i}" for what in ("washer", "nut") if getattr(bolt, what) is not None]
    k = 1
    for weld in geometry.welds:
        for _ in weld.pattern.positions():
            out.volumes.append(naming.weld(k))
            k += 1
    first_module_weld = k
    k = 1
    for vias in geometry.vias:
        for _ in vias.pattern.positions():
            out.volumes.append(naming.via(k))
            k += 1
    out.volumes += [c.name for c in geometry.contacts]
    if geometry.step is not None:
        regions = geometry.step.regions()
        out.volumes += list(regions)
        out.cells += [n for n, r in regions.items() if r.kind == "cell"]
        if geometry.step.terminals is not None:
            out.surfaces += [naming.TERMINAL_POS, naming.TERMINAL_NEG]
    if geometry.module is not None:
        _module(out, geometry, first_module_weld)
    if geometry.terminals is not None or geometry.module is not None:
        out.surfaces += [naming.TERMINAL_POS, naming.TERMINAL_NEG]
    out.surfaces = list(dict.fromkeys(out.surfaces))
    return out
