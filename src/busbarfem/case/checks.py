"""Cross-section checks a single pydantic model cannot make (names that must exist)."""

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
    check_refinement(case, src)


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
