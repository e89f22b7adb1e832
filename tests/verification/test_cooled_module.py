"""The cold-plate example (issue 15): a 4s2p module on a serpentine cold plate with a gap pad
at 2C, run through the CLI on a coarse mesh.

Checked against independent numbers: the heat the coolant takes up equals its enthalpy rise
``m int_{T_in}^{T_out} cp(T) dT`` (scipy quadrature over the coolant table) to 1e-6, equals the
heat the solid gives through the channel walls (timeseries ``heat_coolant``) to 1e-9, and the
module's energy balance closes (thermal residual over the run < 1e-6 of the heat generated);
the pumping power is dp times the volume flow; the cells' spread is the spread of the mean cell
temperatures reported. A 2-rank run of a smaller module on the same plate equals the serial run
to 1e-6 (outlet temperature, heat removed, pressure drop, T_max, cell spread).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import quad

from busbarfem.cli import main
from helpers import run_serial_and_two_ranks
from busbarfem.physics.coolant import coolant

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "examples" / "module_4s2p_cold_plate.yaml"
COARSE = ["--set", "mesh.size=0.012", "--set", "solver.t_end=60"]


def _rows(path: Path) -> list[dict]:
    with path.open() as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def cooled(tmp_path_factory):
    out = tmp_path_factory.mktemp("cooled") / "run"
    assert main(["run", str(CASE), "-o", str(out), "-q", "--no-report", "--no-cache", *COARSE]) == 0
    return json.loads((out / "summary.json").read_text()), _rows(out / "timeseries.csv"), out


def test_cold_plate_example_energy_and_outputs(cooled):
    s, rows, out = cooled
    c = s["cooling"]
    loop = c["circuits"]["loop"]
    glycol = coolant("ethylene_glycol_50")
    m, T_in, T_out = loop["mass_flow"], 298.15, loop["outlet_temperature"]
    assert m == pytest.approx(8.333e-6 * glycol.rho(T_in), rel=1e-12)
    assert T_out > T_in + 0.05  # the coolant warms up measurably in 60 s at 2C
    enthalpy = m * quad(glycol.cp, T_in, T_out, epsabs=0, epsrel=1e-12)[0]
    assert loop["heat_removed"] == pytest.approx(enthalpy, rel=1e-6)
    # the solid's wall heat (3D Robin integral) is the coolant's heat, at every recorded time
    for r in rows[1:]:
        assert r["heat_coolant [W]"] == pytest.approx(r["coolant_loop_heat [W]"], rel=1e-9)
        assert abs(r["energy_residual_rel [-]"]) < 1e-6
    assert s["heat"]["coolant_W"] == pytest.approx(loop["heat_removed"], rel=1e-9)
    assert s["energy"]["thermal_residual_rel"] < 1e-6
    assert s["energy"]["heat_removed_J"] > 0
    # pumping power = dp x volume flow at the inlet
    assert loop["pumping_power"] == pytest.approx(loop["pressure_drop"] * 8.333e-6, rel=1e-9)
    assert loop["channels"]["serpentine"]["heat_removed"] == pytest.approx(loop["heat_removed"], rel=1e-12)
    # the cells' spread: max - min of their mean temperatures, all within the field's range
    Tc = np.array(c["cell_temperature_mean_K"])
    assert len(Tc) == 8 and c["cell_temperature_spread_K"] == pytest.approx(np.ptp(Tc), rel=1e-12)
    assert s["T_min"]["value"] < Tc.min() and Tc.max() < s["T_max"]["value"]
    assert rows[-1]["T_cell_spread [K]"] == pytest.approx(c["cell_temperature_spread_K"], rel=1e-9)
    # the plate and the pad carry no current
    assert s["joule_power_W"]["by_region"]["plate_1"] == 0.0 and s["joule_power_W"]["by_region"]["gap_pad"] == 0.0
    # coolant temperature along the channel: inlet to outlet, rising
    with (out / "cooling_channels.csv").open() as f:
        prof = list(csv.DictReader(f))
    T = np.array([float(p["coolant_temperature [K]"]) for p in prof])
    # (the CSV carries 12 significant digits: 298.203778544 is within 5e-10 K of the value)
    assert T[0] == pytest.approx(T_in, abs=6e-10) and T[-1] == pytest.approx(T_out, abs=6e-10)
    assert np.all(np.diff(T) > 0)


SMALL = ["--set", "geometry.module.series=2", "--set", "geometry.module.parallel=1", *COARSE]
KEYS = ("outlet_temperature", "heat_removed", "pressure_drop")


@pytest.mark.mpi
@pytest.mark.skipif(os.environ.get("OMPI_COMM_WORLD_SIZE") or os.environ.get("PMI_SIZE"),
                    reason="starts its own mpirun; run it serially")
def test_cooled_module_two_ranks_equal_serial(tmp_path):
    """A 2s1p module on the same plate: serial and ``mpirun -n 2`` agree to 1e-6."""
    env = dict(os.environ, OMP_NUM_THREADS="1", BUSBARFEM_MESH_CACHE=str(tmp_path / "cache"))
    ser, par = run_serial_and_two_ranks(CASE, tmp_path, SMALL, env=env)
    for key in KEYS:
        assert par["cooling"]["circuits"]["loop"][key] == pytest.approx(ser["cooling"]["circuits"]["loop"][key],
                                                                        rel=1e-6), key
    assert par["T_max"]["value"] == pytest.approx(ser["T_max"]["value"], rel=1e-6)
    assert par["cooling"]["cell_temperature_spread_K"] == pytest.approx(ser["cooling"]["cell_temperature_spread_K"],
                                                                        rel=1e-6, abs=1e-9)
    np.testing.assert_allclose(par["cooling"]["circuits"]["loop"]["channels"]["serpentine"]["temperature"],
                               ser["cooling"]["circuits"]["loop"]["channels"]["serpentine"]["temperature"], rtol=1e-9)


def _electrical_columns(rows: list[dict]) -> dict[str, np.ndarray]:
    cols = [k for k in rows[0] if k.startswith(("voltage", "I_cell", "V_cell", "T_max"))]
    return {k: np.array([r[k] for r in rows]) for k in cols}


@pytest.mark.parametrize("solver", ["lu", "gamg"])
def test_reduced_electrical_solve_equals_the_full_one(tmp_path, monkeypatch, solver, record_property):
    """The electrical system without the plate/pad nodes (pinned to 0 anyway) has the same
    solution: terminal voltage, every cell's current and voltage and T_max of a 2s1p module on
    the plate agree with the solve that keeps them to 1e-9 with LU. With CG+GAMG (effective
    rtol 1e-13) the cell currents carry the iteration error (each run's cell currents miss the
    10 A terminal current by ~1e-8), so GAMG is held to 1e-8; the reduced matrix keeps block
    size 2 (GAMG aggregates nodes)."""
    from busbarfem.physics import electrical, solvers

    dofs = {}
    built = []
    real_init = electrical.ElectricalProblem.__init__

    real_destroy = electrical.ElectricalProblem.destroy
    block = []

    def spy(self, *a, **k):
        real_init(self, *a, **k)
        built.append(self)

    def spy_destroy(self):
        block.append(self._red.sub.getBlockSize() if self._red else None)
        real_destroy(self)

    monkeypatch.setattr(electrical.ElectricalProblem, "__init__", spy)
    monkeypatch.setattr(electrical.ElectricalProblem, "destroy", spy_destroy)
    res = {}
    for drop in (True, False):
        monkeypatch.setattr(solvers, "DROP_INACTIVE_NODES", drop)
        out = tmp_path / f"drop_{drop}"
        args = ["run", str(CASE), "-o", str(out), "-q", "--no-report", *SMALL, "--set", "solver.t_end=30",
                "--set", f"solver.electrical_solver={solver}", "--set", "solver.rtol=1e-11"]
        assert main(args) == 0
        res[drop] = _electrical_columns(_rows(out / "timeseries.csv"))
        dofs[drop] = (built[-1].ndofs_solved, built[-1].ndofs, built[-1].stats.method)
        assert block[-1] == (2 if drop else None)
    # the reduction is active and drops whole nodes (both potentials): fewer unknowns, same method
    assert dofs[True][1] == dofs[False][1] == dofs[False][0]
    assert dofs[True][0] < dofs[True][1] and dofs[True][0] % 2 == 0 and dofs[True][2] == dofs[False][2]
    assert len(res[True]) == 6 and res[True].keys() == res[False].keys()
    tol = 1e-9 if solver == "lu" else 1e-8
    record_property("max rel difference", max(float(np.max(np.abs(v - res[False][k]) / np.abs(res[False][k]).max()))
                                              for k, v in res[True].items()))
    record_property("dofs solved / all", dofs[True][:2])
    for k, v in res[True].items():
        np.testing.assert_allclose(v, res[False][k], rtol=tol, atol=tol * max(1.0, np.abs(v).max()), err_msg=k)


def test_plate_temperature_map_is_rendered_on_the_plate_range(cooled):
    """The report draws the cold plate alone from above; its colour range is the plate's own
    nodal min/max temperature, which the run computed from its solution (DOLFINx dofs of the
    plate cells) and which the render finds again in the written field file."""
    from busbarfem.io import readback, render
    from busbarfem.io.report import _plate_renders, load_run

    ok, why = render.render_available()
    if not ok:
        pytest.skip(why)
    s, _, out = cooled
    rng = s["cooling"]["plate_temperature_K"]["plate_1"]
    assert s["T_min"]["value"] <= rng["min"] < rng["max"] < s["T_max"]["value"]
    hs = json.loads((out / "hotspots.json").read_text())
    tag = next(int(t) for t, n in hs["region_tags"].items() if n == "plate_1")
    info = render.render_field(out, "T", out / "plate.png", regions=[tag], top_view=True)
    assert info.value_range == pytest.approx((rng["min"], rng["max"]), rel=1e-12)
    assert info.clim == pytest.approx((rng["min"], rng["max"]), rel=1e-12)
    # seen from above: the image shows the plate's x-y footprint, wider than tall like the plate
    u0, v0, u1, v1 = info.bbox_px
    assert u1 - u0 > v1 - v0 > 0
    # the report's figure (the full report renders every field: its plate part alone here)
    figs = _plate_renders(load_run(out), out, readback.field_names(out))
    assert [f.name for f in figs] == ["render_T_plate_plate_1"] and len(figs[0].png) > 10_000
    assert (out / "render_T_plate_plate_1.png").read_bytes() == figs[0].png
    assert f"{rng['min']:.6g}-{rng['max']:.6g} K" in figs[0].caption


def test_restart_with_coolant_continues_the_run(tmp_path, record_property):
    """A 2s1p module on the plate stopped after 3 steps of 30 s (checkpoint every step) and
    restarted to 150 s gives the uninterrupted run's time series: coolant outlet T, heat, dp,
    heat removed, T_max and the cells to 1e-9 (the coolant's frozen h, extrapolation start and
    Anderson differences go through the checkpoint, so the restarted steps take the same
    Picard iterations)."""
    base = ["run", str(CASE), "-q", "--no-report", *SMALL,
            "--set", "solver.adaptive=false", "--set", "solver.dt=30", "--set", "solver.dt_max=30"]
    full, part = tmp_path / "full", tmp_path / "part"
    for cmd in ([*base, "-o", str(full), "--set", "solver.t_end=150"],
                [*base, "-o", str(part), "--set", "solver.t_end=90", "--checkpoint-every", "1"],
                [*base, "--restart", str(part), "--set", "solver.t_end=150", "--checkpoint-every", "1"]):
        assert main(cmd) == 0
    a, b = _rows(full / "timeseries.csv"), _rows(part / "timeseries.csv")
    assert len(a) == len(b) == 6 and list(a[0]) == list(b[0])
    record_property("max rel difference", max(abs(rb[k] - ra[k]) / max(abs(x[k]) for x in a) for ra, rb in zip(a, b)
                                              for k in a[0] if "residual" not in k and max(abs(x[k]) for x in a) > 0))
    for k in a[0]:
        if "residual" in k:
            continue
        va, vb = np.array([r[k] for r in a]), np.array([r[k] for r in b])
        np.testing.assert_allclose(vb, va, rtol=1e-9, atol=1e-9 * max(np.abs(va).max(), 1e-12), err_msg=k)
    sa = json.loads((full / "summary.json").read_text())["cooling"]
    sb = json.loads((part / "summary.json").read_text())["cooling"]
    assert sb["heat_removed_W"] == pytest.approx(sa["heat_removed_W"], rel=1e-9)
    assert sb["coupling_iterations_mean"] == sa["coupling_iterations_mean"]
    assert sb["h_refreshes"] == sa["h_refreshes"]


def test_abuse_oven_leaves_the_channel_walls_to_the_coolant(tmp_path):
    """An abuse oven with a cold plate: the oven's Robin term covers every exterior facet except
    the coolant channel walls (which keep the coolant's h* (T - T_f) alone); a short run keeps
    the coolant's 1D heat equal to the solid's wall heat and the energy balance closed."""
    import yaml
    from mpi4py import MPI

    from busbarfem.case.loader import load_case
    from busbarfem.coupling import Simulation
    from busbarfem.physics.cooling import coolant_wall_facets

    data = yaml.safe_load(CASE.read_text())
    data["abuse"] = {"kinetics": "Kim2007", "evaluation": "cell",
                     "triggers": [{"type": "oven", "temperature": 353.15, "h": 10.0}]}
    case_file = tmp_path / "oven_cold_plate.yaml"
    case_file.write_text(yaml.safe_dump(data))
    ov = [a for a in SMALL if a != "--set"]
    case, src = load_case(case_file, [*ov, "solver.t_end=60"])
    sim = Simulation(case, src, MPI.COMM_SELF, outdir=None, cache_dir=tmp_path / "cache")
    sim.setup()
    try:
        model = sim.model
        oven = model.contribution("abuse").robin_terms()
        walls = coolant_wall_facets(case, model.bundle)
        ext = model.bundle.facets_of("exterior")
        assert len(oven) == 1 and len(walls) > 100
        assert np.intersect1d(oven[0].facets, walls).size == 0
        assert np.array_equal(np.union1d(oven[0].facets, walls), np.unique(ext))
        assert np.array_equal(np.sort(walls), np.unique(model.contribution("coolant").wall_facets))
        sim.run()
        s = sim.summary()
    finally:
        sim.close()
    rows = sim.rows
    assert rows[-1]["heat_coolant [W]"] == pytest.approx(rows[-1]["coolant_loop_heat [W]"], rel=1e-9)
    assert s["energy"]["thermal_residual_rel"] < 1e-6
    assert s["heat"]["convection_W"] < 0  # the 80 C oven heats the module


def test_reduced_one_field_solve_equals_the_full_one(tmp_path, monkeypatch, record_property):
    """A busbar (one potential) on a cold plate with a pad: the reduced and the full electrical
    solve give the same terminal voltage and T_max (two 1 s steps, LU) to 1e-10, and the plate
    and pad carry no Joule heat either way."""
    import importlib.util

    from busbarfem.physics import solvers

    spec = importlib.util.spec_from_file_location("cooling_case", ROOT / "tests" / "unit" / "test_cooling_case.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # the serpentine alone (its last pass and the straight channel c2 are too close for a coarse mesh)
    c2 = "        - name: c2\n          diameter: 0.004\n          path: [[0.0, 0.045, -0.006], [0.1, 0.045, -0.006]]\n"
    assert c2 in mod.COOLING
    BASE, COOLING = mod.BASE, mod.COOLING.replace(c2, "").replace("channels: [s1, c2]", "channels: [s1]")

    case = tmp_path / "case.yaml"
    case.write_text(BASE + COOLING, encoding="utf-8")
    res = {}
    for drop in (True, False):
        monkeypatch.setattr(solvers, "DROP_INACTIVE_NODES", drop)
        out = tmp_path / f"drop_{drop}"
        assert main(["run", str(case), "-o", str(out), "-q", "--no-report", "--no-cache",
                     "--set", "mesh.size=0.006", "--set", "mesh.order=1", "--set", "solver.analysis=transient",
                     "--set", "solver.t_end=2", "--set", "solver.dt=1"]) == 0
        res[drop] = json.loads((out / "summary.json").read_text())
    a, b = res[True], res[False]
    record_property("voltage rel difference", abs(a["terminal"]["voltage_V"] / b["terminal"]["voltage_V"] - 1))
    assert a["terminal"]["voltage_V"] == pytest.approx(b["terminal"]["voltage_V"], rel=1e-10)
    assert a["T_max"]["value"] == pytest.approx(b["T_max"]["value"], rel=1e-10)
    for s in (a, b):
        assert s["joule_power_W"]["by_region"]["plate"] == s["joule_power_W"]["by_region"]["pad"] == 0.0
