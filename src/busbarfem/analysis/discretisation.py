"""Discretisation-error estimate: one extra solve on a finer discretisation (``--error-estimate``).

The run is repeated (no output files) on a discretisation that is more accurate than the
one the user's results come from, and the relative change of the headline numbers is
reported as the estimate of their discretisation error:

* P1 results: the same mesh with P2 elements (``p``: the P1 error at P1's cost x ~6);
* P2 results: P2 at half the element size (``h``: every size halved, twice the elements
  through sheet thicknesses), on a mesh generated from the geometry;
* P2 results on an external mesh (which cannot be refined): P1 on the same mesh; this is
  the P1 error, an upper bound for the P2 one, and is said so in ``method``.

For a P1 -> P2 pair the change is the P1 error to within the (much smaller) P2 error. For
h -> h/2 at P2, energy functionals such as R and P converge at rate q = 4 for smooth
solutions and q ~ 2 near re-entrant edges; the change is then (1 - 2^-q) of the error of
the h result, i.e. 3/4 to 15/16 of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from busbarfem.errors import SolveError


@dataclass(frozen=True)
class Refinement:
    """The finer discretisation of an error estimate: its mesh options and a label."""

    mesh: object  # case.geometry.MeshOptions
    method: str


def finer_discretisation(case, order: int) -> Refinement:
    """The discretisation the estimate compares with, for results at element ``order``."""
    m = case.mesh
    if order == 1:
        return Refinement(m.model_copy(update={"order": 2}), "p: P2 on the same mesh")
    if case.geometry.mesh_file is not None:
        return Refinement(m.model_copy(update={"order": 1}),
                          "P1 on the same (external) mesh: the P1 error, an upper bound of the P2 error")
    half = {"order": 2, "size": m.size / 2, "elements_through_thickness": 2 * m.elements_through_thickness}
    for k in ("min_size", "cell_size"):
        if getattr(m, k) is not None:
            half[k] = getattr(m, k) / 2
    if m.refine.size is not None:
        half["refine"] = m.refine.model_copy(update={"size": m.refine.size / 2})
    return Refinement(m.model_copy(update=half), "h: P2 at half the element size")


def _rel(new, old):
    if new is None or old is None or new == 0:
        return None
    return (old - new) / new


def compare(main: dict, ref: dict) -> dict:
    """Relative change of R and P and change of T_max [K] from ``main`` to ``ref`` summaries.

    ``R_rel_change = (R_main - R_ref) / R_ref`` (likewise P): the estimated relative error of
    the main result, signed (negative: the main result is too low).
    """
    tm, tr = main.get("terminal") or {}, ref.get("terminal") or {}
    Tm = (main.get("T_max") or {}).get("value")
    Tr = (ref.get("T_max") or {}).get("value")
    return {"R_rel_change": _rel(tr.get("resistance_ohm"), tm.get("resistance_ohm")),
            "P_rel_change": _rel(tr.get("power_W"), tm.get("power_W")),
            "Tmax_change_K": (Tm - Tr) if Tm is not None and Tr is not None else None}


def error_estimate(case, source, comm, main_summary: dict, order: int, cache_dir=None) -> dict:
    """Solve ``case`` once more on the finer discretisation and compare (collective).

    Args:
        case: the validated Case of the main run.
        source: its CaseSource.
        comm: communicator.
        main_summary: summary of the main run.
        order: element order of the main run.
        cache_dir: mesh cache folder.

    Returns:
        ``{"method", "reference": {...}, "R_rel_change", "P_rel_change", "Tmax_change_K"}``;
        ``reference.stop_reason`` says if the reference run did not reach the main run's end.

    Raises:
        SolveError: the reference solve failed (its reason in the message).
    """
    from busbarfem.coupling import Simulation

    fine = finer_discretisation(case, order)
    ref_case = case.model_copy(update={"mesh": fine.mesh})
    sim = Simulation(ref_case, source, comm, outdir=None, cache_dir=cache_dir)
    try:
        sim.setup()
        try:
            ref = sim.run()
        except SolveError as exc:
            raise SolveError(f"error estimate ({fine.method}): {exc}", step=exc.step,
                             reason=f"error estimate: {exc.reason}") from None
    finally:
        sim.close()
    out = {"method": fine.method,
           "reference": {"element_order": sim.bundle.element_order, "mesh_size_m": fine.mesh.size,
                         "mesh_cells": ref.get("mesh_cells"), "dofs": ref.get("dofs"),
                         "stop_reason": ref.get("stop_reason"),
                         "resistance_ohm": (ref.get("terminal") or {}).get("resistance_ohm"),
                         "power_W": (ref.get("terminal") or {}).get("power_W"),
                         "T_max_K": (ref.get("T_max") or {}).get("value")},
           **compare(main_summary, ref)}
    if ref.get("stop_reason") != main_summary.get("stop_reason"):
        out["note"] = (f"the reference run stopped differently ({ref.get('stop_reason')!r} vs "
                       f"{main_summary.get('stop_reason')!r}): the changes compare different end states")
    return out
