"""Thermal boundary selection ``regions`` minus ``exclude`` (issue 16: all faces but the terminals).

A copper bar 100 x 10 x 2 mm carrying I = 100 A, with k = 1e4 W/m/K so that it is (within 1e-4 K)
isothermal, convects from the faces its condition selects. In steady state
``T - T_amb = P / (h A)`` with P = I^2 L / (sigma W T) and A the selected area: the whole
exterior, or the exterior minus the two terminal end faces (2 W T, 1.6 % of it). Both within
0.1 % of the rise. An unknown name in ``exclude`` is a located error (exit 2).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIGMA, L, W, TH, I, H, T0 = 5.8e7, 0.1, 0.01, 0.002, 100.0, 10.0, 300.0


def case(exclude: str) -> str:
    return f"""name: selection
geometry:
  busbars:
    - {{path: [[0.0, 0.0], [{L}, 0.0]], width: {W}, thickness: {TH}, material: cu_iso}}
  terminals:
    positive: busbar_1.start
    negative: busbar_1.end
materials:
  cu_iso: {{sigma_ref: {SIGMA}, alpha: 0.0, k: 1.0e4, rho: 8933.0, cp: 385.0}}
mesh:
  size: 0.005
load:
  electrical_input_type: current
  current: {I}
thermal:
  initial_temperature: {T0}
  ambient_temperature: {T0}
  boundaries:
    - {{type: convection, regions: [exterior], h: {H}{exclude}}}
solver:
  analysis: steady
"""


def run(tmp_path, text: str) -> subprocess.CompletedProcess:
    d = tmp_path / f"c{len(list(tmp_path.iterdir()))}"
    d.mkdir()
    (d / "case.yaml").write_text(text)
    return subprocess.run([sys.executable, "-m", "busbarfem", "run", str(d / "case.yaml"), "-o", str(d / "out"),
                           "-q", "--no-report", "--no-cache"], capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_exterior_minus_terminals(tmp_path):
    P = I**2 * L / (SIGMA * W * TH)
    area = 2 * (L * W + L * TH + W * TH)
    for exclude, a in (("", area), (", exclude: [terminal_pos, terminal_neg]", area - 2 * W * TH)):
        res = run(tmp_path, case(exclude))
        assert res.returncode == 0, res.stderr[-3000:]
        s = json.loads((tmp_path / f"c{len(list(tmp_path.iterdir())) - 1}" / "out" / "summary.json").read_text())
        rise = P / (H * a)
        print(f"{'exterior minus terminals' if exclude else 'exterior'}: T_max - T_amb = {s['T_max']['value'] - T0:.5f} K, "
              f"P / (h A) = {rise:.5f} K")
        assert s["T_max"]["value"] - T0 == pytest.approx(rise, rel=1e-3)
        assert s["T_min"]["value"] - T0 == pytest.approx(rise, rel=1e-3)


def test_unknown_excluded_region_is_located(tmp_path):
    res = run(tmp_path, case(", exclude: [terminal_middle]"))
    assert res.returncode == 2
    assert "thermal.boundaries.0.exclude.0" in res.stderr and "terminal_middle" in res.stderr
    assert "Traceback" not in res.stderr
