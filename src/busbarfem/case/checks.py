"""Cross-section checks a single pydantic model cannot make (names that must exist).

:func:`check_case` runs inside :func:`~busbarfem.case.loader.load_case` (materials,
solver settings, load). :func:`check_references` checks every name the case refers to
against the names its geometry description will produce
(:func:`busbarfem.case.references.geometry_names`), without meshing; the CLI runs it for
every command on a case. It is separate because a Python caller may pair a case with a
mesh built elsewhere (``Simulation.setup(bundle=...)``), whose names the case's geometry
section does not describe.

Physical bounds: a value outside :data:`PHYSICAL_BOUNDS` is an input error, not a result
(``thermal runaway`` from ``k = 1e300`` or an initial temperature of 1e-300 K is no answer).
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from busbarfem.case.loader import CaseSource


def _walk(obj, key: str) -> Iterator[tuple[str, str, object]]:
    """Yield (dotted key, field name, value) for every field in a model tree."""
    if isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            val = getattr(obj, name)
            k = f"{key}.{name}" if key else name
            yield k, name, val
            yield from _walk(val, k)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{key}.{i}")
    elif isinstance(obj, dict):
        for n, v in obj.items():
            yield from _walk(v, f"{key}.{n}")


#: (lower, upper, unit, what) of each physical kind of input; both bounds inclusive.
#: Wide enough for every real conductor, coolant and battery (77 K liquid nitrogen to a
#: 3000 K arc; silver 6.3e7 S/m, 1e10 S/m for an "ideal" conductor in verification
#: cases; diamond 2200 W/m/K; boiling 1e5 W/m^2/K), narrow enough
#: that an mm/m or a sign slip, or a made-up 1e300, is caught before it is solved.
PHYSICAL_BOUNDS: dict[str, tuple[float, float, str, str]] = {
    "temperature": (20.0, 3000.0, "K", "a temperature"),
    "temperature_threshold": (20.0, 1.0e6, "K", "a temperature threshold"),
    "thermal_conductivity": (1.0e-3, 1.0e4, "W/m/K", "a thermal conductivity"),
    "electrical_conductivity": (0.0, 1.0e12, "S/m", "an electrical conductivity"),
    "tcr": (0.0, 0.1, "1/K", "a temperature coefficient of resistivity"),
    "density": (1.0, 1.0e5, "kg/m^3", "a density"),
    "heat_capacity": (1.0, 1.0e5, "J/kg/K", "a specific heat capacity"),
    "htc": (0.0, 1.0e6, "W/m^2/K", "a heat transfer coefficient"),
    "heat_flux": (-1.0e8, 1.0e8, "W/m^2", "a heat flux"),
}

#: (model class name, field) -> kind in :data:`PHYSICAL_BOUNDS`.
BOUNDED_FIELDS: dict[tuple[str, str], str] = {
    ("Material", "T_ref"): "temperature",
    ("Material", "k"): "thermal_conductivity",
    ("Material", "sigma_ref"): "electrical_conductivity",
    ("Material", "alpha"): "tcr",
    ("Material", "rho"): "density",
    ("Material", "cp"): "heat_capacity",
    ("CellModel", "T_ref"): "temperature",
    ("CellModel", "k"): "thermal_conductivity",
    ("CellModel", "sigma_pos"): "electrical_conductivity",
    ("CellModel", "sigma_neg"): "electrical_conductivity",
    ("CellModel", "rho"): "density",
    ("CellModel", "cp"): "heat_capacity",
    ("ConvectionBC", "h"): "htc",
    ("ConvectionBC", "T_amb"): "temperature",
    ("TemperatureBC", "T"): "temperature",
    ("RadiationBC", "T_amb"): "temperature",
    ("HeatFluxBC", "flux"): "heat_flux",
    ("Thermal", "initial_temperature"): "temperature",
    ("Thermal", "ambient_temperature"): "temperature",
    ("SolverSettings", "temperature_limit"): "temperature_threshold",
    ("Step", "until_temperature"): "temperature_threshold",
    ("Load", "maximum_cell_temperature"): "temperature_threshold",
    ("CoolantChannel", "h"): "htc",
    ("InterfaceLayer", "conductivity"): "thermal_conductivity",
    ("InterfaceLayer", "conductance"): "htc",
    ("CoolantInlet", "temperature"): "temperature",
}


def _walk_parents(obj, key: str) -> Iterator[tuple[str, str, BaseModel, object]]:
    """Yield (dotted key, field name, owning model, value) for every field in a model tree."""
    if isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            val = getattr(obj, name)
            k = f"{key}.{name}" if key else name
            yield k, name, obj, val
            yield from _walk_parents(val, k)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _walk_parents(v, f"{key}.{i}" if key else str(i))
    elif isinstance(obj, dict):
        for n, v in obj.items():
            yield from _walk_parents(v, f"{key}.{n}" if key else str(n))


def check_physical_bounds(case, src: CaseSource) -> None:
    """CaseError (with the bound) for a value outside :data:`PHYSICAL_BOUNDS`."""
    for key, name, owner, val in _walk_parents(case, ""):
        kind = BOUNDED_FIELDS.get((type(owner).__name__, name))
        if kind is None or val is None:
            continue
        lo, hi, unit, what = PHYSICAL_BOUNDS[kind]
        for x in (val if isinstance(val, (tuple, list)) else (val,)):
            if isinstance(x, (int, float)) and not lo <= x <= hi:
                raise src.error(f"{x:g} {unit} is not a physical value for {what}: expected "
                                f"{lo:g} .. {hi:g} {unit} (is the unit or the sign right?)", key)


def check_terminals(case, src: CaseSource) -> None:
    """The positive and the negative terminal must be different faces."""
    t = case.geometry.terminals
    if t is not None:
        pos = {r.strip() for r in t.refs("positive")}
        same = sorted(pos & {r.strip() for r in t.refs("negative")} - {"module"})
        if same:
            raise src.error(f"terminals.positive and terminals.negative are the same face ({same[0]!r}); "
                            "the current needs two different faces to flow between", "geometry.terminals.negative")
    step = case.geometry.step
    if step is not None and step.terminals is not None and step.terminals.positive.bbox == step.terminals.negative.bbox:
        raise src.error("terminals.positive and terminals.negative select the same box; the current needs "
                        "two different faces", "geometry.step.terminals.negative")


def check_case(case, src: CaseSource) -> None:
    """Check material references, physical bounds and solver consistency; raise a located CaseError."""
    from busbarfem.case.materials import resolve_materials

    check_physical_bounds(case, src)
    check_terminals(case, src)
    from busbarfem.case.plausible import check_geometry_plausible

    check_geometry_plausible(case, src)
    check_cooling(case, src)

    materials = resolve_materials(case.materials)
    for key, name, val in _walk(case.geometry, "geometry"):
        # a cell body's "material" is a label: its properties come from the cell model
        if key.endswith(".cell.material") or ((".rules." in key or ".regions." in key) and val == "cell"):
            continue
        if name.endswith("material") and isinstance(val, str) and val not in materials:
            raise src.error(f"unknown material '{val}'", key, choices=materials, bad=val)
    s = case.solver
    if s.analysis == "transient" and s.t_end is None:
        if not getattr(case.load, "steps", None):
            raise src.error("a transient analysis needs solver.t_end (or a load with steps)", "solver.analysis")
    if s.dt_max is not None and s.dt_max < s.dt_min:
        raise src.error(f"dt_max ({s.dt_max}) is below dt_min ({s.dt_min})", "solver.dt_max")
    try:
        case.load.compiled_steps()
    except ValueError as exc:
        raise src.error(str(exc), "load") from None
    check_refinement(case, src)


def check_cooling(case, src: CaseSource) -> None:
    """The ``cooling:`` section: plate materials exist; inlet temperatures inside the coolant's range."""
    if case.cooling is None:
        return
    from busbarfem.errors import CaseError
    from busbarfem.materials import resolve_materials
    from busbarfem.physics.coolant import coolant

    for key, message in case.cooling.reference_errors():
        raise src.error(message, f"cooling.{key}")
    if case.geometry.mesh_file is not None:
        raise src.error("cold plates are built into the model's geometry; with geometry.mesh_file they "
                        "cannot be (mesh the plate with the rest of the model, or use geometry builders)",
                        "cooling.plates")
    materials = resolve_materials(case.materials)
    for i, p in enumerate(case.cooling.plates):
        if p.material not in materials:
            raise src.error(f"unknown material '{p.material}'", f"cooling.plates.{i}.material",
                            choices=materials, bad=p.material)
    for i, c in enumerate(case.cooling.circuits):
        T = c.inlet.temperature
        key = f"cooling.circuits.{i}.inlet.temperature"
        try:
            coolant(c.coolant).check([T] if isinstance(T, (int, float)) else [r[1] for r in T], key)
        except CaseError as exc:
            raise src.error(exc.message, key) from None


def check_references(case, src: CaseSource) -> None:
    """Terminal face references and boundary-condition regions must name what the
    geometry will have; raise a located CaseError listing the valid names."""
    from busbarfem import naming
    from busbarfem.case.references import MODULE_TERMINAL, geometry_names

    geometry = case.geometry
    names = geometry_names(geometry)
    if case.cooling is not None:  # the cold plates and interface layers are part of the model
        names.volumes += [p.name for p in case.cooling.plates] + [i.name for i in case.cooling.interfaces]
        names.surfaces += [n for p in case.cooling.plates
                           for n in (f"{p.name}_top", f"{p.name}_bottom",
                                     *(f"{p.name}_{c.name}_wall" for c in p.channels))]
        names.surfaces += [f"{i.name}_top" for i in case.cooling.interfaces]
    has_module = geometry.module is not None
    if geometry.terminals is not None:
        choices = names.terminal_choices(has_module)
        for side in ("positive", "negative"):
            listed = not isinstance(getattr(geometry.terminals, side), str)
            for k, ref in enumerate(geometry.terminals.refs(side)):
                if not (ref == MODULE_TERMINAL and has_module) and ref not in names.faces:
                    raise src.error(f"unknown face reference '{ref}'",
                                    f"geometry.terminals.{side}" + (f".{k}" if listed else ""),
                                    choices=choices, bad=ref)
    elif names.surfaces_known and naming.TERMINAL_POS not in names.surfaces:
        raise src.error("the geometry has no terminal faces for the load; give "
                        "geometry.terminals.positive and .negative (face references)",
                        "geometry.terminals", choices=names.terminal_choices(has_module))
    valid = names.boundary_names()
    for i, bc in enumerate(case.thermal.boundaries):
        for what, listed in (("regions", bc.regions), ("exclude", bc.exclude)):
            for j, name in enumerate(listed):
                if name in valid or (not names.surfaces_known and name not in names.volumes):
                    continue  # a mesh file's own surface names are only known once it is read
                raise src.error(f"unknown region '{name}'", f"thermal.boundaries.{i}.{what}.{j}",
                                choices=valid, bad=name)
    n_cells = len(names.cells)
    if n_cells and case.cell is None:
        raise src.error(f"the geometry has {n_cells} cell bodies but the case has no 'cell:' section "
                        "(e.g. cell: {preset: LG_M50})", "cell")
    variation = case.cell.variation if case.cell is not None else None
    for key in ("capacity_factors", "R0_factors"):
        given = getattr(variation, key, None)
        if given is not None and len(given) != n_cells:
            raise src.error(f"needs {n_cells} values (one per cell, in (stage, parallel) order: "
                            f"{', '.join(names.cells[:3])}, ...), got {len(given)}",
                            f"cell.variation.{key}")




#: refinement keys that act on solids the geometry builders make (not on STEP or meshes)
BUILDER_REFINEMENT = ("fillets", "bolts", "welds", "vias")


def check_refinement(case, src: CaseSource) -> None:
    """``mesh.refine`` keys that would do nothing on this geometry are errors (not ignored)."""
    g, ref = case.geometry, case.mesh.refine
    given = sorted(ref.model_fields_set) if "refine" in case.mesh.model_fields_set else []
    if g.mesh_file is not None and given:
        raise src.error("mesh.refine does not apply to an external mesh (geometry.mesh_file is used as it "
                        "is); remove it, or refine the mesh where it was made", f"mesh.refine.{given[0]}")
    built = any(getattr(g, k) for k in ("busbars", "bolts", "tabs", "welds", "vias", "module"))
    if g.step is not None and not built:
        for k in given:
            if k in BUILDER_REFINEMENT:
                raise src.error(f"mesh.refine.{k} refines solids the geometry builders make; this geometry "
                                "is imported from STEP, use interfaces, terminals or regions",
                                f"mesh.refine.{k}", choices=[f for f in type(ref).model_fields
                                                             if f not in BUILDER_REFINEMENT], bad=k)
        names = set(g.step.regions())
        for i, name in enumerate(ref.regions):
            if name not in names:
                raise src.error(f"unknown region '{name}'", f"mesh.refine.regions.{i}", choices=names, bad=name)
