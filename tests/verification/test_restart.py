"""Checkpoint/restart: a run killed with SIGKILL and restarted ends with the same results
as an uninterrupted run, and its time series has no gap or duplicate (issue 9)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
CASE = ROOT / "examples" / "busbar_runaway.yaml"
# Restart against an uninterrupted run is compared, not the discretisation: one element
# through the 2 mm bar with flatter tets (758 P2 dofs instead of 7856; the bar is isothermal,
# Biot ~5e-5, and the adaptive runs below take the same 134 steps on both meshes) keeps each
# run to seconds. The three runs of a kill test share one mesh through the session's mesh
# cache (the conftest's BUSBARFEM_MESH_CACHE; a fresh mesh goes through the same file).
COARSE = ["--set", "mesh.elements_through_thickness=1", "--set", "mesh.thin_aspect=4"]
N_STEPS = 100
OV = ["--set", "load.current=200", "--set", f"solver.t_end={10 * N_STEPS}", "--set", "solver.adaptive=false",
      "--set", "solver.dt=10", "--set", "mesh.size=0.005", *COARSE, "-q"]


def launcher(nproc: int) -> list[str]:
    if nproc == 1:
        return [PY]
    return [str(Path(PY).parent / "mpirun"), "-n", str(nproc), PY]


def read_ts(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path) as f:
        rows = list(csv.reader(f))
    return rows[0], np.array([[float(x) for x in r] for r in rows[1:]])


def kill_and_restart(tmp_path: Path, nproc: int):
    ref, run = tmp_path / "ref", tmp_path / "run"
    # the reference writes no report (the restarted run does: a report of a continued run)
    subprocess.run([*launcher(nproc), "-m", "busbarfem", "run", str(CASE), "-o", str(ref), *OV, "--no-report"],
                   check=True, timeout=600)
    proc = subprocess.Popen([*launcher(nproc), "-m", "busbarfem", "run", str(CASE), "-o", str(run), *OV,
                             "--checkpoint-every", "7"], start_new_session=True)
    ts = run / "timeseries.csv"
    deadline = time.time() + 300
    while time.time() < deadline:
        if ts.exists():
            with open(ts) as f:
                if sum(1 for _ in f) > 40:
                    break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _, partial = read_ts(ts)
    assert 40 <= len(partial) < N_STEPS, "the run must be killed mid-way"
    subprocess.run([*launcher(nproc), "-m", "busbarfem", "run", str(CASE), "--restart", str(run), *OV,
                    "--checkpoint-every", "7"], check=True, timeout=600)
    h1, a = read_ts(ref / "timeseries.csv")
    h2, b = read_ts(run / "timeseries.csv")
    assert h1 == h2
    t = b[:, 0]
    assert np.all(np.diff(t) > 0), "duplicate or unordered times"
    assert np.allclose(np.diff(t), 10.0), "gap in the time series"
    assert a.shape == b.shape
    np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


def test_kill_and_restart_serial(tmp_path):
    kill_and_restart(tmp_path, 1)


@pytest.mark.slow
def test_kill_and_restart_mpi(tmp_path):
    kill_and_restart(tmp_path, 2)


# --------------------------------------------------------------------------------------
# adaptive steps and verification of what a checkpoint belongs to (issue 13)

AOV = ["--set", "load.current=200", "--set", "mesh.size=0.005", "--set", "solver.max_temperature_change=3",
       "--set", "output.every=1000", *COARSE, "-q", "--no-cache", "--no-report"]
T_FULL, T_SHORT = "solver.t_end=4000", "solver.t_end=1400"


def cli(*args, nproc: int = 1) -> subprocess.CompletedProcess:
    return subprocess.run([*launcher(nproc), "-m", "busbarfem", "run", str(CASE), *args], capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def adaptive_runs(tmp_path_factory):
    """An uninterrupted adaptive run to 4000 s, and one stopped at 1400 s with checkpoints."""
    d = tmp_path_factory.mktemp("adaptive")
    ref, short = d / "ref", d / "short"
    for out, t_end, extra in ((ref, T_FULL, []), (short, T_SHORT, ["--checkpoint-every", "7"])):
        r = cli("-o", str(out), *AOV, "--set", t_end, *extra)
        assert r.returncode == 0, r.stderr
    return ref, short


def copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, symlinks=True)
    return dst


def compare_to_reference(ref: Path, run: Path, rtol: float, differences: tuple[str, ...] = ("residual",)) -> None:
    """Every column of the two time series within ``rtol``; columns whose name contains one of
    ``differences`` (differences of large numbers) within ``rtol`` times the largest heat
    generated."""
    h1, a = read_ts(ref / "timeseries.csv")
    h2, b = read_ts(run / "timeseries.csv")
    assert h1 == h2 and a.shape == b.shape
    assert np.all(np.diff(b[:, 0]) > 0)
    for j, name in enumerate(h1):
        if any(d in name for d in differences):  # differences of large numbers: against the heat generated
            scale = np.abs(a[:, h1.index("heat_generated [W]")]).max()
            np.testing.assert_allclose(b[:, j], a[:, j], rtol=0, atol=rtol * scale, err_msg=name)
        else:
            np.testing.assert_allclose(b[:, j], a[:, j], rtol=rtol, atol=1e-300, err_msg=name)


def restart_premise(run: Path) -> dict:
    import json

    st = json.loads((run / "checkpoint" / "state.json").read_text())
    # the checkpoint sits mid-way in the step-size growth: dt is neither the initial, the
    # first cut nor the largest step, so a restart that lost the controller's state would differ
    assert st["dt"] not in (20.0, 10.0, 400.0) and 50 < st["step"] < 130, st
    return st


def test_adaptive_restart_matches_uninterrupted_run(adaptive_runs, tmp_path):
    """Restart (with a later t_end, which a restart may change) from a checkpoint taken while
    the adaptive controller was growing dt: the same steps and values as one run."""
    ref, short = adaptive_runs
    run = copy_run(short, tmp_path / "run")
    st = restart_premise(run)
    r = cli("--restart", str(run), *AOV, "--set", T_FULL)
    assert r.returncode == 0, r.stderr
    compare_to_reference(ref, run, rtol=1e-9)
    import yaml

    resolved = yaml.safe_load((run / "case.resolved.yaml").read_text())
    assert resolved["solver"]["t_end"] == 4000 and "restart_of" in resolved["_provenance"]
    assert st["rows"] < len(read_ts(run / "timeseries.csv")[1])


@pytest.mark.slow
def test_adaptive_restart_on_two_ranks_from_serial_checkpoint(adaptive_runs, tmp_path):
    """The mesh fingerprint and the temperature layout are partition independent.

    The reference is a serial run, so the 2-rank steps differ from it by the rounding of a
    2-rank MUMPS solve and assembly (both problems are direct solves here): T by ~2.5e-12
    relative at the end. The same ~1.2e-9 difference in the last step's stored heat appears
    between two *uninterrupted* runs on 1 and 2 ranks, and a 2-rank restart from a 2-rank
    checkpoint reproduces the 2-rank run bit for bit (measured, pack5): it is not the restart.
    The stored heat is rho cp (T - T_n)/dt, near steady state a difference of two numbers ~1000x
    larger than itself (T ~ 613 K, T - T_n ~ 0.6 K), so it is compared like the energy residual:
    to rtol times the largest heat generated (7.7e-9 W; the difference is 2.5e-11 W). The
    T_max tolerance alone (rtol T_max, with rho cp V/dt = 0.033 W/K) already allows 2.0e-8 W."""
    ref, short = adaptive_runs
    run = copy_run(short, tmp_path / "run")
    r = cli("--restart", str(run), *AOV, "--set", T_FULL, nproc=2)
    assert r.returncode == 0, r.stderr
    compare_to_reference(ref, run, rtol=1e-9, differences=("residual", "heat_stored"))


def refused(run: Path, *args, must: tuple[str, ...]) -> str:
    """Restart must exit 2 with a message containing ``must`` and leave the folder untouched."""
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    r = cli("--restart", str(run), *AOV, "--set", T_FULL, *args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    for m in must:
        assert m in r.stderr, (m, r.stderr)
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before, "a refused restart changed the output folder"
    return r.stderr


def test_restart_with_other_current_is_refused(adaptive_runs, tmp_path):
    run = copy_run(adaptive_runs[1], tmp_path / "run")
    refused(run, "--set", "load.current=2000", must=("different case", "load.current", "200.0", "2000.0"))


def test_restart_with_other_mesh_is_refused(adaptive_runs, tmp_path):
    run = copy_run(adaptive_runs[1], tmp_path / "run")
    refused(run, "--set", "mesh.size=0.004", must=("different case", "mesh.size", "0.005", "0.004"))


def test_restart_on_other_mesh_with_same_case_values_is_refused(adaptive_runs, tmp_path):
    """A mesh change the case values do not show (here: the checkpoint's case fingerprint
    is replaced by that of the changed case, as a changed geometry file would do) is caught
    by the mesh fingerprint, after meshing (here the mesh without gmsh's optimiser)."""
    import json

    from busbarfem.case.loader import load_case
    from busbarfem.io.checkpoint import case_fingerprint

    run = copy_run(adaptive_runs[1], tmp_path / "run")
    sets = [AOV[i + 1] for i in range(len(AOV)) if AOV[i] == "--set"] + [T_FULL, "mesh.optimize=false"]
    case, src = load_case(CASE, sets)
    p = run / "checkpoint" / "state.json"
    st = json.loads(p.read_text())
    st["fingerprint"]["case"] = case_fingerprint(case, src.directory)
    p.write_text(json.dumps(st))
    refused(run, "--set", "mesh.optimize=false", must=("different mesh", "cells: 317 in the checkpoint"))


def test_missing_or_corrupt_checkpoints_exit_2(adaptive_runs, tmp_path):
    short = adaptive_runs[1]
    r = cli("--restart", "", *AOV)
    assert r.returncode == 2 and "--restart" in r.stderr and "empty" in r.stderr and "Traceback" not in r.stderr
    r = cli("--restart", str(tmp_path / "nowhere"), *AOV)
    assert r.returncode == 2 and "no such folder" in r.stderr and "Traceback" not in r.stderr
    r = cli("--restart", str(short), "-o", str(tmp_path / "elsewhere"), *AOV)
    assert r.returncode == 2 and "drop -o" in r.stderr and not (tmp_path / "elsewhere").exists()
    # truncated temperature file
    run = copy_run(short, tmp_path / "trunc")
    npz = run / "checkpoint" / "temperature.npz"
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    refused(run, must=("temperature.npz", "corrupt or truncated"))
    # truncated state file
    run = copy_run(short, tmp_path / "state")
    sj = run / "checkpoint" / "state.json"
    sj.write_text(sj.read_text()[:200])
    refused(run, must=("state.json", "corrupt or truncated"))
    # a temperature file from another mesh (right format, wrong number of values)
    run = copy_run(short, tmp_path / "short_T")
    with np.load(short / "checkpoint" / "temperature.npz") as z:
        idx, T = z["index"][:-5], z["T"][:-5]
    with open(run / "checkpoint" / "temperature.npz", "wb") as f:
        np.savez(f, index=idx, T=T)
    refused(run, must=("temperature.npz", "dofs"))
    # no checkpoint at all
    run = copy_run(short, tmp_path / "none")
    import shutil

    shutil.rmtree(run / "checkpoint")
    refused(run, must=("no checkpoint",))
