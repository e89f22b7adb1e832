"""fields.xdmf opened by a real ParaView (pvpython, Xdmf3ReaderT): names and T_max.

Skipped when ``pvpython`` is not on PATH (install it with scripts/install_paraview.sh).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PVPYTHON = shutil.which("pvpython")
pytestmark = pytest.mark.skipif(PVPYTHON is None, reason="pvpython not installed (scripts/install_paraview.sh)")
FIELDS = {"T", "J_magnitude", "J", "q", "region_id"}


def run_cli(outdir: Path, case: str, *extra: str, nproc: int = 1) -> dict:
    cmd = [sys.executable, "-m", "busbarfem", "run", str(EXAMPLES / case), "-o", str(outdir), "--overwrite", "-q",
           *extra]
    if nproc > 1:
        cmd = [str(Path(sys.executable).parent / "mpirun"), "-n", str(nproc), *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((outdir / "summary.json").read_text())


def pv_check(outdir: Path) -> dict:
    res = subprocess.run([PVPYTHON, str(ROOT / "scripts" / "pv_check.py"), str(outdir)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("{")][-1]
    return json.loads(line)


def check(outdir: Path, summary: dict, times: list[float] | None = None) -> dict:
    pv = pv_check(outdir)
    assert pv["reader"] == "Xdmf3ReaderT"
    assert FIELDS <= set(pv["fields"]) and ("phi" in pv["fields"] or {"phi1", "phi2"} <= set(pv["fields"]))
    assert "T" in pv["point_fields"] and "J_magnitude" in pv["cell_fields"]
    assert pv["n_datasets"] == 1  # one grid carries every field (not one block per field)
    # doubles reach ParaView (the writer declares Precision="8"), so this is exact
    # pv_check reads the last time: the summary's value at the last time
    assert pv["T_max"] == pytest.approx(summary["T_max_final"]["value"], rel=1e-12)
    if times is not None:
        assert pv["times"] == times
    return pv


def test_paraview_reads_steady_fields(tmp_path):
    summary = run_cli(tmp_path / "out", "busbar_l_bolted.yaml")
    check(tmp_path / "out", summary)


def test_paraview_reads_transient_series(tmp_path):
    summary = run_cli(tmp_path / "out", "busbar_straight.yaml", "--set", "solver.analysis=transient",
                      "--set", "solver.t_end=5", "--set", "solver.dt=1")
    check(tmp_path / "out", summary, times=[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])


def test_paraview_reads_p2_fields(tmp_path):
    """mesh.order 2: 10-node tetrahedra with T and phi at every node, read as quadratic cells."""
    summary = run_cli(tmp_path / "out", "busbar_straight.yaml", "--set", "mesh.order=2", "--no-report")
    assert summary["element_order"] == 2
    pv = check(tmp_path / "out", summary)
    assert pv["cell_types"] == [24]  # VTK_QUADRATIC_TETRA


@pytest.mark.slow
@pytest.mark.mpi
def test_paraview_reads_two_rank_fields(tmp_path):
    summary = run_cli(tmp_path / "out", "busbar_l_bolted.yaml", nproc=2)
    check(tmp_path / "out", summary)
