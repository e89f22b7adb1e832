"""Curved P2 end to end and the discretisation-error estimate, against an analytic rod (issue 12).

A copper rod (radius 5 mm, 40 mm long) imported from STEP, current in at one end face and
out at the other, both ends held at T_a, the mantle insulated. Exactly:

    R = L / (sigma pi r^2),   T_max - T_a = q L^2 / (8 k),   q = (I / (pi r^2))^2 / sigma

The temperature is quadratic along the axis, so P2 on the curved (10-node) mesh is exact
up to the geometric error of the curved mantle, while P1 on the same mesh sees the
inscribed polygonal section (~2 % too small at 16 elements per circle). Checked through
the CLI: the default order ('auto' -> P2 for this conductor-only model), P1 on the same mesh,
``--error-estimate`` of the P1 run against the analytic P1 error, the 10-node XDMF output,
and the P2 run on two ranks against the serial one.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import gmsh
import pytest

from busbarfem.io import readback

ROOT = Path(__file__).resolve().parents[2]
SIGMA, K, RADIUS, LENGTH, CURRENT, T_A = 5.8e7, 398.0, 0.005, 0.04, 1000.0, 298.15
AREA = math.pi * RADIUS**2
R_EXACT = LENGTH / (SIGMA * AREA)
RISE_EXACT = (CURRENT / AREA) ** 2 / SIGMA * LENGTH**2 / (8 * K)

CASE = f"""name: rod
geometry:
  step:
    file: rod.step
    unit: m
    rules:
      - match: {{name: "."}}
        region: rod
        material: cu0
    terminals:
      positive: {{bbox: [-0.01, -0.01, -1.0e-6, 0.01, 0.01, 1.0e-6]}}
      negative: {{bbox: [-0.01, -0.01, {LENGTH - 1e-6}, 0.01, 0.01, {LENGTH + 1e-6}]}}
materials:
  cu0: {{sigma_ref: {SIGMA}, alpha: 0.0, k: {K}, rho: 8933.0, cp: 385.0}}
mesh:
  size: 0.003
  curvature_elements: 16
load:
  electrical_input_type: current
  current_type: constant
  current: {CURRENT}
thermal:
  initial_temperature: {T_A}
  ambient_temperature: {T_A}
  boundaries:
    - type: temperature
      regions: [terminal_pos, terminal_neg]
      T: {T_A}
solver:
  analysis: steady
"""


@pytest.fixture(scope="module")
def rod_case(tmp_path_factory) -> Path:
    """The rod's STEP file (written by gmsh's OCC kernel) and case file."""
    d = tmp_path_factory.mktemp("rod")
    init = not gmsh.isInitialized()
    if init:
        gmsh.initialize(interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    current = gmsh.model.getCurrent() if gmsh.model.list() else None
    gmsh.model.add("rod_cad")
    gmsh.model.occ.addCylinder(0, 0, 0, 0, 0, LENGTH, RADIUS)
    gmsh.model.occ.synchronize()
    gmsh.write(str(d / "rod.step"))
    gmsh.model.remove()
    if current:
        gmsh.model.setCurrent(current)
    if init:
        gmsh.finalize()
    (d / "rod.yaml").write_text(CASE)
    return d / "rod.yaml"


def run_cli(case: Path, out: Path, *extra: str, nproc: int = 1) -> dict:
    cmd = [sys.executable, "-m", "busbarfem", "run", str(case), "-o", str(out), "--overwrite", "-q", "--no-cache",
           *extra]
    if nproc > 1:
        cmd = [str(Path(sys.executable).parent / "mpirun"), "-n", str(nproc), *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


def rel_errors(s: dict) -> tuple[float, float]:
    return (s["terminal"]["resistance_ohm"] / R_EXACT - 1,
            (s["T_max"]["value"] - T_A) / RISE_EXACT - 1)


@pytest.fixture(scope="module")
def p2_run(rod_case, tmp_path_factory):
    out = tmp_path_factory.mktemp("p2") / "out"
    return out, run_cli(rod_case, out, "--no-report")


def test_default_order_is_curved_p2_and_matches_the_analytic_rod(p2_run):
    out, s = p2_run
    assert s["element_order"] == 2  # mesh.order 'auto': conductor-only and small
    dR, dT = rel_errors(s)
    assert abs(dR) < 1e-4, dR  # the curved mantle: P2 sees the true section area
    assert abs(dT) < 2e-4, dT  # quadratic T: exact in P2 up to the geometry
    # fields at their own degree: 10-node tetrahedra, T at every geometry node
    grid, T, _ = readback.read_last(out, "T")
    assert grid.cells.shape[1] == 10 and len(T) == len(grid.points)
    assert max(T) == pytest.approx(s["T_max"]["value"], rel=1e-14)
    hot = json.loads((out / "hotspots.json").read_text())
    assert hot["T"][0]["value"] == pytest.approx(s["T_max"]["value"], rel=1e-14)


def test_p1_error_and_its_estimate(rod_case, p2_run, tmp_path):
    """P1 on the same mesh is ~2 % off (polygonal section); --error-estimate finds that error."""
    s = run_cli(rod_case, tmp_path / "p1", "--set", "mesh.order=1", "--error-estimate", "--no-report")
    assert s["element_order"] == 1
    dR, dT = rel_errors(s)
    assert dR > 0.01 and dT > 0.02, (dR, dT)  # the discriminating gap between P1 and P2
    est = s["error_estimate"]
    assert est["method"].startswith("p: P2 on the same mesh")
    # the reference is the P2 solve on the same mesh (the default run above)
    assert est["reference"]["resistance_ohm"] == pytest.approx(p2_run[1]["terminal"]["resistance_ohm"], rel=1e-9)
    # the estimate recovers the true (analytic) P1 error to within the P2 error
    assert est["R_rel_change"] == pytest.approx((1 + dR) / (1 + rel_errors(p2_run[1])[0]) - 1, rel=1e-9)
    assert est["R_rel_change"] == pytest.approx(dR, rel=0.01)
    assert est["P_rel_change"] == pytest.approx(dR, rel=0.01)  # fixed current: P = I^2 R
    assert est["Tmax_change_K"] == pytest.approx(dT * RISE_EXACT, rel=0.01)
    from busbarfem.cli import main

    assert main(["report", str(tmp_path / "p1"), "--no-renders", "-q"]) == 0
    report = (tmp_path / "p1" / "report.md").read_text()
    assert "Discretisation error estimate" in report and "p: P2 on the same mesh" in report


@pytest.mark.mpi
def test_p2_two_ranks_equal_serial(rod_case, p2_run, tmp_path):
    par = run_cli(rod_case, tmp_path / "np2", "--no-report", nproc=2)
    ser = p2_run[1]
    assert par["mpi_size"] == 2 and par["element_order"] == 2
    for key in ("resistance_ohm", "power_W", "voltage_V"):
        assert par["terminal"][key] == pytest.approx(ser["terminal"][key], rel=1e-6)
    assert par["T_max"]["value"] == pytest.approx(ser["T_max"]["value"], rel=1e-6)
    assert par["J_max"]["value"] == pytest.approx(ser["J_max"]["value"], rel=1e-6)
