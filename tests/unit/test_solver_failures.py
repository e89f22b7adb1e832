"""Solver failures are reported, not crashed on: exit code 3, the reason and the step, results kept.

Failures are provoked inside a real run (the CLI in-process) at a chosen step:

- a divergent Krylov solve: from step 3 on, the electrical KSP is limited to one
  iteration, so PETSc itself reports DIVERGED_MAX_IT (DIVERGED_ITS before PETSc 3.24);
- a NaN: a material with a NaN conductivity (from the first step), and a NaN appearing in
  the temperature at step 3;
- a Picard iteration that does not converge (steady, ``picard.max_iterations: 1`` with
  sigma(T) at a high current; and the per-step Picard of a transient).

Each must exit with code 3, name the reason (PETSc reason name, "NaN", "did not converge")
and the step on stderr, and keep ``summary.json`` (stop reason = the failure) and
``timeseries.csv`` with exactly the steps completed before the failure.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from busbarfem.cli import main
from busbarfem.physics import solvers

# (not 'from helpers import ...': tests/unit/conftest.py shadows tests/conftest.py)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

TRANSIENT = ["mesh.size=0.005", "solver.analysis=transient", "solver.t_end=5.0", "solver.dt=1.0",
             "solver.adaptive=false"]


def run(tmp_path: Path, capsys, overrides, case="busbar_straight.yaml") -> tuple[int, str, Path]:
    out = tmp_path / "out"
    argv = ["run", str(EXAMPLES / case), "-o", str(out), "-q", "--no-cache"]
    for o in overrides:
        argv += ["--set", o]
    code = main(argv)
    return code, capsys.readouterr().err, out


def summary_of(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def rows_of(out: Path) -> list[dict]:
    with open(out / "timeseries.csv", newline="") as f:
        return list(csv.DictReader(f))


def fail_from_step(monkeypatch, what: str, first_failing_step: int, action) -> None:
    """Wrap ``solvers.solve_checked``: ``what`` solves of step >= n call ``action(ksp)`` first."""
    real = solvers.solve_checked

    def wrapped(ksp, b, x, kind, step=None, stats=None):
        if kind == what and step is not None and step >= first_failing_step:
            action(ksp)
        return real(ksp, b, x, kind, step, stats)

    monkeypatch.setattr(solvers, "solve_checked", wrapped)


def assert_failure_kept(code, err, out, *, reason_words, step, current=100.0):
    """Exit 3 naming the reason and the step; the steps before it (dt = 1 s) are kept.

    A failure in the very first solve may be reported as step 0 (the initial electrical
    solve at t = 0) or step 1; either way nothing after t = 0 was completed.
    """
    assert code == 3, err
    assert "Traceback" not in err
    assert "error:" in err and any(w in err for w in reason_words), err
    steps = (0, 1) if step == 1 else (step,)
    assert any(f"step {k})" in err or f"step {k} " in err for k in steps), err
    s = summary_of(out)
    assert any(w in s["stop_reason"] for w in reason_words), s["stop_reason"]
    assert not s["stop_reason"].startswith(("steady state reached", "end time reached")), s["stop_reason"]
    data = rows_of(out) if (out / "timeseries.csv").exists() else []
    times = [float(r["time [s]"]) for r in data]
    # an initial t = 0 row may precede the steps; after it, exactly steps 1 .. step-1
    completed = [t for t in times if t > 0]
    assert completed == pytest.approx([float(k) for k in range(1, step)]), times
    if data:
        # the summary describes the last completed step, not the failed one
        assert s["terminal"]["current_A"] == pytest.approx(current, rel=1e-6)
    return s


def test_divergent_ksp_reports_petsc_reason_and_step(tmp_path, capsys, monkeypatch):
    def one_iteration(ksp):
        ksp.setTolerances(rtol=1e-14, atol=1e-50, max_it=1)

    fail_from_step(monkeypatch, "electrical", 3, one_iteration)
    code, err, out = run(tmp_path, capsys, [*TRANSIENT, "solver.electrical_solver=gamg"])
    assert_failure_kept(code, err, out, reason_words=("DIVERGED_MAX_IT", "DIVERGED_ITS"), step=3)
    assert (out / "fields.xdmf").exists()


def test_divergent_thermal_ksp_reports_petsc_reason(tmp_path, capsys, monkeypatch):
    def one_iteration(ksp):
        ksp.setTolerances(rtol=1e-14, atol=1e-50, max_it=1)

    fail_from_step(monkeypatch, "thermal", 4, one_iteration)
    code, err, out = run(tmp_path, capsys, [*TRANSIENT, "solver.thermal_solver=gamg"])
    s = assert_failure_kept(code, err, out, reason_words=("DIVERGED_MAX_IT", "DIVERGED_ITS"), step=4)
    assert "thermal" in s["stop_reason"]


def test_lu_breakdown_reports_petsc_reason(tmp_path, capsys):
    """An all-insulator conductor makes the electrical matrix singular: a PETSc reason, exit 3."""
    ov = [*TRANSIENT, "materials.insul.sigma_ref=0", "materials.insul.k=1", "materials.insul.rho=1000",
          "materials.insul.cp=1000", "geometry.busbars.0.material=insul"]
    code, err, out = run(tmp_path, capsys, ov)
    assert_failure_kept(code, err, out, reason_words=("DIVERGED_",), step=1)


def test_nan_material_reports_nan(tmp_path, capsys):
    """A NaN that slips into a material (here: the thermal conductivity) is caught at step 1."""
    ov = [*TRANSIENT, "materials.cu_nan.sigma_ref=5.8e7", "materials.cu_nan.alpha=0.004", "materials.cu_nan.k=398",
          "materials.cu_nan.rho=8933", "materials.cu_nan.cp=385", "geometry.busbars.0.material=cu_nan"]
    import busbarfem.coupling.model as coupling

    real = coupling.resolve_materials

    def poisoned(user):
        mats = real(user)
        mats["cu_nan"] = mats["cu_nan"].model_copy(update={"k": float("nan")})
        return mats

    mp = pytest.MonkeyPatch()
    mp.setattr(coupling, "resolve_materials", poisoned)
    try:
        code, err, out = run(tmp_path, capsys, ov)
    finally:
        mp.undo()
    assert_failure_kept(code, err, out, reason_words=("NaN", "DIVERGED_"), step=1)


def test_nan_in_temperature_mid_run_keeps_earlier_steps(tmp_path, capsys, monkeypatch):
    from busbarfem.physics.thermal import ThermalProblem

    real = ThermalProblem.solve

    def solve(self, dt, step=None):
        its = real(self, dt, step)
        if step == 3:
            self.T.x.array[len(self.T.x.array) // 2] = float("nan")
        return its

    monkeypatch.setattr(ThermalProblem, "solve", solve)
    code, err, out = run(tmp_path, capsys, TRANSIENT)
    assert_failure_kept(code, err, out, reason_words=("NaN",), step=3)


def test_steady_picard_not_converged(tmp_path, capsys):
    # copper's alpha = 0.00393/K at 300 A: sigma(T) changes T by kelvins, one iteration is not enough
    ov = ["mesh.size=0.005", "load.current=300", "solver.picard.max_iterations=1", "solver.picard.anderson_depth=0"]
    code, err, out = run(tmp_path, capsys, ov)
    s = assert_failure_kept(code, err, out, reason_words=("did not converge",), step=1)
    assert "Picard" in s["stop_reason"]
    assert "last change" in err


def test_transient_picard_not_converged(tmp_path, capsys):
    ov = [*TRANSIENT, "load.current=300", "solver.coupled_iterations=true", "solver.picard.max_iterations=1",
          "solver.picard.tolerance=1e-12"]
    code, err, out = run(tmp_path, capsys, ov)
    assert_failure_kept(code, err, out, reason_words=("did not converge",), step=1, current=300.0)


def test_divergent_ksp_at_p2(tmp_path, capsys, monkeypatch):
    """The curved P2 path fails the same way: exit 3, PETSc reason, earlier steps kept."""
    def one_iteration(ksp):
        ksp.setTolerances(rtol=1e-14, atol=1e-50, max_it=1)

    fail_from_step(monkeypatch, "electrical", 2, one_iteration)
    code, err, out = run(tmp_path, capsys, [*TRANSIENT, "mesh.order=2", "solver.electrical_solver=gamg"])
    assert_failure_kept(code, err, out, reason_words=("DIVERGED_MAX_IT", "DIVERGED_ITS"), step=2)
    assert summary_of(out)["element_order"] == 2


def test_petsc_error_inside_a_solve_exits_3(tmp_path, capsys, monkeypatch):
    """An error PETSc raises (here: a factorisation package that does not exist) instead of
    returning a converged reason is a solver failure too (exit 3), not a traceback."""
    def missing_package(ksp):
        ksp.setType("preonly")
        pc = ksp.getPC()
        pc.setType("lu")  # a new PC (it was GAMG): its package may still be chosen
        pc.setFactorSolverType("no_such_package")

    fail_from_step(monkeypatch, "thermal", 3, missing_package)
    code, err, out = run(tmp_path, capsys, [*TRANSIENT, "solver.thermal_solver=gamg"])
    s = assert_failure_kept(code, err, out, reason_words=("PETSc error",), step=3)
    assert "thermal" in s["stop_reason"]
