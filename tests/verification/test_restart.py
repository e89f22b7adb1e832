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
OV = ["--set", "load.current=200", "--set", "solver.t_end=2000", "--set", "solver.adaptive=false",
      "--set", "solver.dt=10", "-q", "--no-cache"]


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
    subprocess.run([*launcher(nproc), "-m", "busbarfem", "run", str(CASE), "-o", str(ref), *OV], check=True,
                   timeout=600)
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
    assert 40 <= len(partial) < 200, "the run must be killed mid-way"
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
