"""Cross-section checks a single pydantic model cannot make (names that must exist).

:func:`check_case` runs inside :func:`~busbarfem.case.loader.load_case` (materials,
solver settings, load). :func:`check_references` checks every name the case refers to
against the names its geometry description will produce
(:func:`busbarfem.case.references.geometry_names`), without meshing; the CLI runs it for
every command on a case. It is separate because a Python caller may pair a case with a
mesh built elsewhere (``Simulation.setup(bundle=...)``), whose names the case's geometry
section does not describe.
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


def check_case(case, src: CaseSource) -> None:
    """Check material references and solver consistency; raise a located CaseError."""
    from busbarfem.materials import resolve_materials

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


def check_references(case, src: CaseSource) -> None:
    """Terminal face references and boundary-condition regions must name what the
    geometry will have; raise a located CaseError listing the valid names."""
    from busbarfem import naming
    from busbarfem.case.references import MODULE_TERMINAL, geometry_names

    geometry = case.geometry
    names = geometry_names(geometry)
    has_module = geometry.module is not None
    if geometry.terminals is not None:
        choices = names.terminal_choices(has_module)
        for side in ("positive", "negative"):
            ref = getattr(geometry.terminals, side)
            if not (ref == MODULE_TERMINAL and has_module) and ref not in names.faces:
                raise src.error(f"unknown face reference '{ref}'", f"geometry.terminals.{side}",
                                choices=choices, bad=ref)
    elif names.surfaces_known and naming.TERMINAL_POS not in names.surfaces:
        raise src.error("the geometry has no terminal faces for the load; give "
                        "geometry.terminals.positive and .negative (face references)",
                        "geometry.terminals", choices=names.terminal_choices(has_module))
    valid = names.boundary_names()
    for i, bc in enumerate(case.thermal.boundaries):
        for j, name in enumerate(bc.regions):
            if name in valid or (not names.surfaces_known and name not in names.volumes):
                continue  # a mesh file's own surface names are only known once it is read
            raise src.error(f"unknown region '{name}'", f"thermal.boundaries.{i}.regions.{j}",
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
