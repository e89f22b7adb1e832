"""What an engineer reads from a module run (the 4s2p example, coarse, one 30 s step).

* ParaView (pvpython): Threshold on region_id keeps every field, its T maximum equals
  summary.json's, and the output's paraview/open_result.py renders log |J|, the hottest region
  and a slice through the hot spot without a display. Skipped when ``pvpython`` is not on PATH
  (install it with scripts/install_paraview.sh, which ``make test`` runs where apt is available).
* The report's cell balance: the plotted current shares and spreads equal numpy on
  timeseries.csv to 1e-12; the per-cell table's internal delta-T equals an h5py read of T.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from busbarfem.io import paraview, readback

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
pytestmark = pytest.mark.slow  # one coarse 4s2p solve (~1.5 min on a free core) shared by every test
needs_pvpython = pytest.mark.skipif(paraview.pvpython() is None,
                                    reason="pvpython not installed (run scripts/install_paraview.sh)")
# the 4s2p example, coarse, one 30 s step, fields at every step
MODULE = ["mesh.size=0.012", "solver.t_end=30", "solver.dt=30", "solver.adaptive=false", "output.every=1"]


@pytest.fixture(scope="module")
def module_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pv") / "out"
    cmd = [sys.executable, "-m", "busbarfem", "run", str(EXAMPLES / "module_4s2p_discharge.yaml"), "-o", str(out),
           "--overwrite", "-q", "--no-report", "--no-cache"]
    for o in MODULE:
        cmd += ["--set", o]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def pv_result(module_out) -> dict:
    return paraview.open_result(module_out, module_out / "pv_images")


def png_stats(path: Path) -> tuple[float, int]:
    from PIL import Image

    img = np.asarray(Image.open(path).convert("RGB"), dtype=float)
    return float(img.std()), len(np.unique(img.reshape(-1, 3), axis=0))


@needs_pvpython
def test_threshold_on_region_id_keeps_T_and_J(module_out, pv_result):
    """Acceptance: Threshold on region_id (the hottest region) in ParaView; max T equals the
    summary's T max at the last time; |J| and the cell count equal an h5py read of the region."""
    summary = json.loads((module_out / "summary.json").read_text())
    th = pv_result["threshold"]
    assert set(readback.field_names(module_out)) <= set(th["fields"])  # every field survives the filter
    assert th["T_max"] == pytest.approx(summary["T_max_final"]["value"], rel=1e-12)
    assert pv_result["time"] == summary["T_max_final"]["time_s"]
    _, rid, _ = readback.read_last(module_out, "region_id")
    _, J, _ = readback.read_last(module_out, "J_magnitude")
    mine = np.rint(rid).astype(int) == pv_result["hot_region_tag"]
    assert th["n_cells"] == int(mine.sum())
    assert th["J_magnitude_max"] == pytest.approx(float(J[mine].max()), rel=1e-12)
    assert th["J_magnitude_min"] == pytest.approx(float(J[mine].min()), rel=1e-12)
    tags = json.loads((module_out / "hotspots.json").read_text())["region_tags"]
    assert pv_result["hot_region"] == tags[str(pv_result["hot_region_tag"])]


@needs_pvpython
def test_paraview_script_renders_headless(module_out, pv_result):
    """paraview/open_result.py saved three non-trivial images; |J| is coloured on a log scale
    spanning at least two decades (the data span five)."""
    assert (module_out / "paraview" / "open_result.py").exists()
    assert len(pv_result["images"]) == 3
    for img in pv_result["images"]:
        std, ncolours = png_stats(Path(img))
        assert std > 10 and ncolours > 50, img
    lo, hi = pv_result["J_log_range"]
    plo, phi = pv_result["J_positive_range"]
    assert hi == pytest.approx(phi) and phi / plo > 100 and hi / lo >= 100
    # the slice goes through the hottest node
    assert pv_result["slice"]["origin"] == pv_result["hot_point"]


def _timeseries(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return {h: np.array([float(r[j]) for r in rows[1:]]) for j, h in enumerate(rows[0])}


@pytest.fixture(scope="module")
def report(module_out) -> dict:
    from busbarfem.io.report import write_report

    return write_report(module_out, renders=False)


def test_report_cell_share_and_spread_equal_the_time_series(module_out, report):
    """Acceptance: the 4s2p report shows the cell current share and temperature spread plots;
    their data equal numpy on timeseries.csv to 1e-12."""
    md = report["md"].read_text()
    for fig in ("cell_currents", "cell_temperatures", "module_map_T", "module_map_share"):
        assert f"report_files/{fig}.png" in md
    ts = _timeseries(module_out / "timeseries.csv")
    plotted = _timeseries(module_out / "report_files" / "cell_balance.csv")  # the plotted arrays
    cells = [f"cell_{s}_{p}" for s in range(1, 5) for p in range(1, 3)]
    assert np.array_equal(plotted["time [s]"], ts["time [s]"])
    I = np.array([ts[f"I_{c} [A]"] for c in cells])  # (8, n)
    group = I.reshape(4, 2, -1).sum(axis=1)  # parallel pairs: cell_<s>_1 + cell_<s>_2
    share = I / np.repeat(group, 2, axis=0)
    for k, c in enumerate(cells):
        assert np.allclose(plotted[f"share_{c} [-]"], share[k], rtol=0, atol=1e-12)
        assert np.allclose(plotted[f"I_{c} [A]"], I[k], rtol=0, atol=1e-12)
    assert np.allclose(plotted["share_spread [-]"], share.max(0) - share.min(0), rtol=0, atol=1e-12)
    assert np.allclose(plotted["I_spread [A]"], I.max(0) - I.min(0), rtol=0, atol=1e-12)
    T = np.array([ts[f"T_mean_{c} [K]"] for c in cells])
    assert np.allclose(plotted["T_spread [K]"], T.max(0) - T.min(0), rtol=0, atol=1e-12)
    # the two strings really differ (the check is not comparing zeros)
    assert np.max(share.max(0) - share.min(0)) > 1e-6
    # the per-cell table: share min/mean/max and T_mean max of every cell are in report.html
    vals = _html_values(report["html"])
    for k, c in enumerate(cells):
        for v in (share[k].min(), share[k].mean(), share[k].max(), T[k].max()):
            assert any(abs(v - x) <= 1e-12 for x in vals), (c, v)


def test_report_internal_delta_T_equals_the_fields(module_out, report):
    """The table's internal delta-T of each cell: max over stored times of (max - min) of T on
    the cell's nodes, recomputed with h5py from fields.h5."""
    import h5py

    tags = json.loads((module_out / "hotspots.json").read_text())["region_tags"]
    mesh = readback.read_mesh(module_out)
    _, rid, _ = readback.read_last(module_out, "region_id")
    with h5py.File(module_out / "fields.h5", "r") as f:
        Ts = [f["Function/T"][k][...].ravel() for k in f["Function/T"]]
    vals = _html_values(report["html"])
    n = 0
    for tag, name in tags.items():
        if not name.startswith("cell_"):
            continue
        nodes = np.unique(mesh.cells[np.rint(rid) == int(tag)][:, :4])
        dT = max(float(T[nodes].max() - T[nodes].min()) for T in Ts)
        assert dT > 0 and dT in vals, name
        n += 1
    assert n == 8


def _html_values(path: Path) -> list[float]:
    import re

    return [float(v) for v in re.findall(r'data-value="([^"]+)"', path.read_text())]
