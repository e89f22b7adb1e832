"""Design studies (issue 18): sweeps, optimisation and fault signatures against independent answers.

* thickness sweep of the straight bar (alpha = 0 in effect: fixed temperature): R = L/(sigma w t)
  and every point equals the same case run alone;
* a failing point is recorded and the sweep goes on; a resumed sweep skips finished points;
* ``optimize`` finds the thickness whose steady T_max meets a target (lumped analytic answer);
* ``faults`` on the 1s4p weld module: dR of an open nugget = the difference of two separate
  runs; the cell current share moves as a parallel resistor network predicts.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from helpers import EXAMPLES
from mpi4py import MPI
from scipy.optimize import brentq

import busbarfem
from busbarfem import studies
from busbarfem.cli import main
from busbarfem.errors import CaseError

COMM = MPI.COMM_SELF
STRAIGHT = EXAMPLES / "busbar_straight.yaml"
MODULE = EXAMPLES / "module_1s4p_welds.yaml"
# fixed temperature everywhere: sigma is uniform whatever alpha, so R = L / (sigma(T) w t) exactly
ISOTHERMAL = ["thermal.boundaries=[{type: temperature, regions: [exterior], T: 298.15}]", "mesh.size=0.004",
              "mesh.elements_through_thickness=1", "mesh.thin_aspect=4"]
SIGMA_298 = 5.80e7 / (1 + 0.00393 * (298.15 - 293.15))
# no temperature feedback on the cells (R0 activation 0, no entropic term),
# so the cells are identical resistors behind one EMF; R0 = 0.1 ohm, well above the plates'
# ~0.5 milli-ohm, where independent parallel branches describe the module (with the preset's
# 17 milli-ohm the current shared along the plates makes that model 30 % off)
MODULE_OV = ["cell.R0_activation_energy=0",
             "cell.entropic_coefficient=[[0.0, 0.0], [1.0, 0.0]]", "cell.R0=0.1"]


def test_parse_vary_forms():
    """--vary forms (values, start:stop:n, lo:hi, YAML lists) and the grid, zip and Latin hypercube designs."""
    p = studies.parse_vary("geometry.busbars.0.thickness=0.001:0.003:5")
    assert p.values == pytest.approx([0.001, 0.0015, 0.002, 0.0025, 0.003], rel=1e-15)
    assert studies.parse_vary("load.current=100,200").values == [100, 200]
    assert studies.parse_vary("geometry.busbars.0.path=[[0, 0], [0.1, 0]],[[0, 0], [0.2, 0]]").values == [
        [[0, 0], [0.1, 0]], [[0, 0], [0.2, 0]]]
    assert studies.parse_vary("a.b=0.5:2").bounds == (0.5, 2.0)
    pts = studies.design([studies.Parameter("a", [1, 2]), studies.Parameter("b", [3, 4, 5])], "grid")
    assert len(pts) == 6 and pts[-1] == {"a": 2, "b": 5}
    assert studies.design([studies.Parameter("a", [1, 2]), studies.Parameter("b", [3, 4])], "zip") == [
        {"a": 1, "b": 3}, {"a": 2, "b": 4}]
    lhs = studies.design([studies.Parameter("a", None, (0.0, 1.0)), studies.Parameter("b", None, (10.0, 20.0))],
                         "lhs", n=8, seed=3)
    # Latin hypercube: exactly one sample in each of the 8 strata of every parameter
    for key, (lo, hi) in (("a", (0.0, 1.0)), ("b", (10.0, 20.0))):
        strata = sorted(int((pt[key] - lo) / (hi - lo) * 8) for pt in lhs)
        assert strata == list(range(8))


def test_bad_vary_key_exits_2_before_running(tmp_path, capsys):
    """A misspelt --vary key, or a bad value in any point, exits 2 naming the key and the choices; nothing runs."""
    out = tmp_path / "sw"
    rc = main(["sweep", str(STRAIGHT), "--vary", "geometry.busbars.0.thicknes=0.001,0.002", "-o", str(out), "-q"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "geometry.busbars.0.thicknes" in err and "thickness" in err and "valid choices" in err
    assert not out.exists()
    # a bad value in the second point only: still nothing runs
    rc = main(["sweep", str(STRAIGHT), "--vary", "geometry.busbars.0.thickness=0.002,-1", "-o", str(out), "-q"])
    assert rc == 2 and not out.exists()
    with pytest.raises(CaseError, match="unknown name 'Tmax'"):
        studies.compile_expression("Tmax", [], "--minimize")


def test_thickness_sweep_R_inverse_t_and_points_equal_single_runs(tmp_path, record_property):
    """Thickness sweep of the straight bar at a fixed temperature: R = L/(sigma w t); each point = a run alone."""
    out = tmp_path / "sweep"
    rc = main(["sweep", str(STRAIGHT), *sum((["--set", s] for s in ISOTHERMAL), []),
               "--vary", "geometry.busbars.0.thickness=0.001:0.003:3", "-o", str(out), "-q", "--no-cache"])
    assert rc == 0
    rows = list(csv.DictReader((out / "sweep.csv").read_text().splitlines()))
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    assert (out / studies.MARKER).exists() and (out / "point_000" / studies.MARKER).exists()
    assert (out / "report.html").exists() and (out / "sweep_geometry_busbars_0_thickness.png").exists()
    t = np.array([float(r["geometry.busbars.0.thickness"]) for r in rows])
    R = np.array([float(r["R_ohm"]) for r in rows])
    R_exact = 0.1 / (SIGMA_298 * 0.010 * t)
    assert np.max(np.abs(R / R_exact - 1)) < 5e-3
    Rt = R * t  # R proportional to 1/t
    assert np.max(np.abs(Rt / Rt.mean() - 1)) < 5e-3
    record_property("max |R/R_exact - 1|", f"{np.max(np.abs(R / R_exact - 1)):.2e}")
    worst = 0.0
    # every point equals the same case run alone (through the API, no sweep machinery)
    for r in rows:
        t_pt = r["geometry.busbars.0.thickness"]
        case = busbarfem.load_case(STRAIGHT, [*ISOTHERMAL, f"geometry.busbars.0.thickness={t_pt}"])
        alone = busbarfem.run(case, comm=COMM).summary
        assert float(r["R_ohm"]) == pytest.approx(alone["terminal"]["resistance_ohm"], rel=1e-9)
        worst = max(worst, abs(float(r["R_ohm"]) / alone["terminal"]["resistance_ohm"] - 1))
        assert float(r["T_max_K"]) == pytest.approx(alone["T_max"]["value"], rel=1e-9)
        assert float(r["J_max_A_m2"]) == pytest.approx(alone["J_max"]["value"], rel=1e-9)
    record_property("max |R_sweep/R_alone - 1|", f"{worst:.1e}")
    print(f"R/R_exact - 1 = {R / R_exact - 1}, sweep vs alone {worst:.2e}")
    data = json.loads((out / "sweep.json").read_text())
    assert data["spec"]["keys"] == ["geometry.busbars.0.thickness"] and len(data["rows"]) == 3


def test_failing_point_recorded_and_resume_skips_done(tmp_path):
    """A point whose solve fails is recorded and the sweep goes on; --resume skips finished points."""
    out = tmp_path / "sweep"
    # one Picard iteration cannot converge sigma(T) under convection: that point fails (SolveError)
    params = [studies.parse_vary("solver.picard.max_iterations=1,40")]
    ov = ["mesh.size=0.004", "mesh.elements_through_thickness=1", "mesh.thin_aspect=4"]
    res = studies.sweep(STRAIGHT, params, out, overrides=ov, comm=COMM)
    assert [r["status"] for r in res.rows] == ["failed", "ok"]
    assert "did not converge" in res.rows[0]["error"]
    assert res.rows[1]["T_max_K"] > 300.0
    stamp = (out / "point_001" / "summary.json").stat().st_mtime_ns
    with pytest.raises(CaseError, match="resume"):
        studies.sweep(STRAIGHT, params, out, overrides=ov, comm=COMM)
    again = studies.sweep(STRAIGHT, params, out, overrides=ov, comm=COMM, resume=True)
    assert (out / "point_001" / "summary.json").stat().st_mtime_ns == stamp  # done point skipped
    assert again.rows[1] == res.rows[1]
    assert again.rows[0]["status"] == "failed"  # retried, fails again
    with pytest.raises(CaseError, match="different sweep"):
        studies.sweep(STRAIGHT, [studies.parse_vary("solver.picard.max_iterations=2,40")], out, overrides=ov,
                      comm=COMM, resume=True)


def test_optimize_thickness_for_target_tmax(tmp_path, record_property):
    """Minimise the bar's mass subject to T_max <= target: the optimum is where T_max = target.
    Lumped answer (uniform T, alpha = 0): I^2 L/(sigma w t) = h (2 (w + t) L + 2 w t) (T - T_amb)."""
    I, L, w, h, Tamb, target = 100.0, 0.1, 0.010, 10.0, 298.15, 330.0
    ov = ["materials.copper={sigma_ref: 5.8e7, alpha: 0.0, k: 398.0, rho: 8933.0, cp: 385.0}",
          "mesh.size=0.005", "mesh.elements_through_thickness=1", "mesh.thin_aspect=5"]

    def excess(t):
        return I**2 * L / (5.8e7 * w * t) / (h * (2 * (w + t) * L + 2 * w * t)) - (target - Tamb)

    t_exact = brentq(excess, 1e-4, 1e-2, xtol=1e-12)
    res = studies.optimize(STRAIGHT, [studies.parse_vary("geometry.busbars.0.thickness=0.001:0.004")],
                           tmp_path / "opt", minimize="mass", subject_to=[f"T_max <= {target}"], overrides=ov,
                           comm=COMM, max_evals=30, tol=2e-3)
    t_opt = res.extra["best_point"]["geometry.busbars.0.thickness"]
    record_property("t_opt / t_lumped - 1", f"{t_opt / t_exact - 1:.2e}")
    record_property("evaluations", res.extra["evaluations"])
    print(f"t_opt {t_opt:.6e} t_lumped {t_exact:.6e} rel {t_opt / t_exact - 1:.3e}, {res.extra['evaluations']} evals")
    assert abs(t_opt / t_exact - 1) < 0.02, (t_opt, t_exact)
    best = res.rows[res.extra["best_eval"]]
    assert best["T_max_K"] <= target + 1e-6 and best["T_max_K"] > target - 1.0
    assert res.extra["best_objective"] == pytest.approx(L * w * t_opt * 8933.0, rel=1e-12)
    rows = list(csv.DictReader((tmp_path / "opt" / "optimize.csv").read_text().splitlines()))
    assert len(rows) == res.extra["evaluations"] == len(list((tmp_path / "opt").glob("eval_*")))


@pytest.fixture(scope="module")
def mesh_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("mesh_cache")


def test_faults_open_weld_resistance_and_current_share(tmp_path, mesh_cache, record_property):
    """Open weld nugget in the 1s4p module: dR = difference of two separate runs; the cell's share as a network predicts.

    weld_1 is one of the two nuggets on the negative terminal of cell_1_1 (the cell farthest from
    the module terminals, so no other cell's current flows past it in the plate). Network model:
    identical cells E - R0 I_k in parallel branches R_k = R0 + r_k, r_k from the healthy run; the
    open nugget adds delta to r_1, fixed by the measured module dR; predicted: cell_1_1's new share."""
    res = studies.faults(MODULE, tmp_path / "faults", targets=["weld_1"], overrides=MODULE_OV, comm=COMM,
                         cache_dir=mesh_cache, resolution=0.1e-6)
    (row,) = res.rows
    assert row["status"] == "ok" and row["fault"] == "weld_1"
    # the same two cases run separately through the API
    base = busbarfem.run(busbarfem.load_case(MODULE, MODULE_OV), comm=COMM, cache_dir=mesh_cache).summary
    bad = busbarfem.run(busbarfem.load_case(MODULE, [*MODULE_OV, "conductivity_factors.weld_1=1e-6"]),
                        comm=COMM, cache_dir=mesh_cache).summary
    I = base["terminal"]["current_A"]
    dR = (base["terminal"]["voltage_V"] - bad["terminal"]["voltage_V"]) / I
    assert row["dR_uohm"] == pytest.approx(dR * 1e6, rel=1e-9, abs=1e-9)
    assert dR > 0 and row["detectable"] == (abs(dR) >= 0.1e-6)
    # resistor network from the healthy run
    names = sorted(base["cells"])
    Ik = np.array([base["cells"][n]["current_A"] for n in names])
    Vc = np.array([base["cells"][n]["voltage_V"] for n in names])
    slope, E = np.polyfit(Ik, Vc, 1)  # V_cell = E - R0 I (identical cells)
    R0 = -slope
    assert np.max(np.abs(E - R0 * Ik - Vc)) < 1e-9
    Vt = base["terminal"]["voltage_V"]
    Rk = R0 + (Vc - Vt) / Ik  # branch resistances
    assert sum(Ik) == pytest.approx(I, rel=1e-9)
    assert 1 / np.sum(1 / Rk) == pytest.approx((E - Vt) / I, rel=1e-9)
    k = names.index("cell_1_1")

    def module_R(delta):
        R = Rk.copy()
        R[k] += delta
        return 1 / np.sum(1 / R)

    delta = brentq(lambda d: module_R(d) - module_R(0.0) - dR, 0.0, 1.0, xtol=1e-18)
    Rf = Rk.copy()
    Rf[k] += delta
    share_pred = (1 / Rf[k]) / np.sum(1 / Rf) - (1 / Rk[k]) / np.sum(1 / Rk)
    share_fem = row["share_change"]["cell_1_1"]
    assert row["most_affected_cell"] == "cell_1_1"
    record_property("dR [micro-ohm]", f"{dR * 1e6:.4g}")
    record_property("share change FEM / network - 1", f"{share_fem / share_pred - 1:.2e}")
    print(f"dR {dR * 1e6:.6g} uOhm (study {row['dR_uohm']:.6g}); share FEM {share_fem:.5e} network {share_pred:.5e}"
          f" rel {share_fem / share_pred - 1:.3e}")
    assert share_fem < 0 and abs(share_fem / share_pred - 1) < 0.05, (share_fem, share_pred)
    assert (tmp_path / "faults" / "faults.csv").exists() and (tmp_path / "faults" / "faults.png").exists()
    assert math.isfinite(row["T_max_K"]) and row["T_max_region"]
