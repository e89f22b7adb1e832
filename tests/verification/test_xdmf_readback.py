"""fields.xdmf/.h5 read back without DOLFINx (h5py + XML, meshio for the mesh).

Checks: the stored T maximum equals summary.json's T_max to 1e-9 relative, serially and
with 2 MPI ranks; a run killed with SIGKILL mid-way leaves a readable file whose steps
are a prefix of the run's output times.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import meshio
import numpy as np
import pytest

from busbarfem.io import readback

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MPIRUN = Path(sys.executable).parent / "mpirun"
EXPECTED = {"T", "J_magnitude", "J", "q", "region_id"}


def run_cli(outdir: Path, case: str, *extra: str, nproc: int = 1, timeout: float = 300) -> None:
    cmd = [sys.executable, "-m", "busbarfem", "run", str(EXAMPLES / case), "-o", str(outdir), "--overwrite",
           "-q", *extra]
    if nproc > 1:
        cmd = [str(MPIRUN), "-n", str(nproc), *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]


def check_readback(outdir: Path) -> None:
    summary = json.loads((outdir / "summary.json").read_text())
    names = readback.field_names(outdir)
    assert EXPECTED <= set(names) and ({"phi"} <= set(names) or {"phi1", "phi2"} <= set(names))
    mesh, T, t = readback.read_last(outdir, "T")
    assert T.shape == (len(mesh.points),)
    # the last field time: compare with the summary's values at the last time (*_final)
    assert np.max(T) == pytest.approx(summary["T_max_final"]["value"], rel=1e-9)
    assert np.min(T) == pytest.approx(summary["T_min_final"]["value"], rel=1e-9)
    # the place of the maximum is a mesh node at the summary's coordinates
    assert np.allclose(mesh.points[np.argmax(T)], summary["T_max_final"]["x"], atol=1e-12) or \
        np.isclose(np.max(T), T[np.argmin(np.linalg.norm(mesh.points - summary["T_max_final"]["x"], axis=1))], rtol=1e-12)
    _, J, _ = readback.read_last(outdir, "J_magnitude")
    assert J.shape == (len(mesh.cells),)
    assert np.max(J) == pytest.approx(summary["J_max_final"]["value"], rel=1e-9)
    _, Jv, _ = readback.read_last(outdir, "J")
    assert Jv.shape == (len(mesh.cells), 3)
    assert np.allclose(np.linalg.norm(Jv, axis=1), J, rtol=1e-9, atol=1e-9 * np.max(J))
    # meshio reads the same mesh independently
    with meshio.xdmf.TimeSeriesReader(str(outdir / "fields.xdmf")) as r:
        pts, cells = r.read_points_cells()
    assert np.array_equal(pts, mesh.points)
    assert np.array_equal(cells[0].data, mesh.cells)


def test_xdmf_readback_serial(tmp_path):
    run_cli(tmp_path / "out", "busbar_l_bolted.yaml")
    check_readback(tmp_path / "out")
    assert readback.times(tmp_path / "out") == [0.0]
    assert not any(p.name.startswith(".fields") for p in (tmp_path / "out").iterdir())


@pytest.mark.slow
@pytest.mark.mpi
def test_xdmf_readback_two_ranks(tmp_path):
    run_cli(tmp_path / "out", "busbar_l_bolted.yaml", nproc=2)
    check_readback(tmp_path / "out")


TRANSIENT = ["--set", "solver.analysis=transient", "--set", "solver.t_end=200", "--set", "solver.dt=1"]


def _kill_after_rows(outdir: Path, rows: int, nproc: int = 1, extra_delay: float = 0.0) -> int:
    """Start a transient run, SIGKILL it once ``rows`` steps are in timeseries.csv."""
    cmd = [sys.executable, "-m", "busbarfem", "run", str(EXAMPLES / "busbar_straight.yaml"), "-o", str(outdir),
           "--overwrite", "-q", *TRANSIENT]
    if nproc > 1:
        cmd = [str(MPIRUN), "-n", str(nproc), *cmd]
    log = outdir.parent / "run.log"
    with open(log, "w") as logf:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    ts = outdir / "timeseries.csv"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if ts.exists() and len(ts.read_text().splitlines()) >= rows + 1:
                break
            if proc.poll() is not None:
                pytest.fail(f"run ended before it was killed: {log.read_text()[-2000:]}")
            time.sleep(0.005)
        else:
            pytest.fail("no time steps appeared in timeseries.csv")
        time.sleep(extra_delay)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: mpirun and its ranks
        proc.wait()
    return proc.returncode


def check_killed(outdir: Path) -> None:
    assert not (outdir / "summary.json").exists()  # it really died mid-run
    names = readback.field_names(outdir)
    assert EXPECTED <= set(names)
    stored = readback.times(outdir, "T")
    assert len(stored) >= 2 and stored[0] == 0.0
    # the stored times are a prefix of the run's output times (dt = 1 s)
    assert stored == [float(i) for i in range(len(stored))]
    for name in names:  # every field has every stored step, all readable
        assert readback.times(outdir, name) == stored
        for k in (0, -1):
            mesh, v, _ = readback.read_field(outdir, name, k)
            assert np.all(np.isfinite(v)) and len(v) in (len(mesh.points), len(mesh.cells))
    # T at the last stored time equals the time series' T_max of that step
    import csv
    with open(outdir / "timeseries.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    last_t = stored[-1]
    row = next(r for r in rows if float(r["time [s]"]) == last_t)
    _, T, t = readback.read_last(outdir, "T")
    assert t == last_t
    assert np.max(T) == pytest.approx(float(row["T_max [K]"]), rel=1e-9)
    with meshio.xdmf.TimeSeriesReader(str(outdir / "fields.xdmf")) as r:
        r.read_points_cells()
        assert r.num_steps == len(stored)


@pytest.mark.parametrize("delay", [0.0, 0.013])
def test_xdmf_survives_sigkill(tmp_path, delay):
    _kill_after_rows(tmp_path / "out", rows=4, extra_delay=delay)
    check_killed(tmp_path / "out")


@pytest.mark.slow
@pytest.mark.mpi
def test_xdmf_survives_sigkill_two_ranks(tmp_path):
    _kill_after_rows(tmp_path / "out", rows=4, nproc=2, extra_delay=0.007)
    check_killed(tmp_path / "out")
