"""summary.json: extrema over the run, heat per region from every source, module resistances.

Issue 12: maxima at the last time, per-region heat counting Joule heat only, V/I of a
module reported as a resistance.

References: the run's own time series (an independent record, written row by row), the
lumped Bernardi heat I (OCV - V) - I T dU/dT of each cell computed here from the ECM
parameter functions, Tellegen's theorem for the passive network, the terminal V/I of a
conductor, and the series-parallel combination of the ECM resistances.
"""

from __future__ import annotations

import csv
import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from busbarfem.cli import main
from busbarfem.io.report import write_report

EX = Path(__file__).resolve().parents[2] / "examples"

# 100 A for 4 s, down to zero over the fifth second, then rest; strong cooling so the bar
# cools visibly once the current has stopped
BAR_STEP = ["solver.analysis=transient", "solver.t_end=10", "solver.dt=1", "mesh.size=0.004",
            "load.current_type=piecewise_linear", "load.current_curve_fit_values=[[0,100],[4,100],[5,0],[10,0]]",
            "thermal.boundaries.0.h=2000"]
# the 4s2p example, coarse and two 30 s steps
MODULE = ["mesh.size=0.012", "solver.t_end=60", "solver.dt=30", "solver.adaptive=false"]


def run_cli(out: Path, case: str, overrides, *flags) -> dict:
    args = ["run", str(EX / case), "-o", str(out), "-q", "--no-report", "--no-cache", *flags]
    for o in overrides:
        args += ["--set", o]
    assert main(args) == 0
    return json.loads((out / "summary.json").read_text())


def timeseries(out: Path) -> dict[str, np.ndarray]:
    with open(out / "timeseries.csv", newline="") as f:
        rows = list(csv.reader(f))
    return {h: np.array([float(r[j]) for r in rows[1:]]) for j, h in enumerate(rows[0])}


class NumericCells(HTMLParser):
    """The data-value of every numeric table cell of report.html."""

    def __init__(self):
        super().__init__()
        self.values: list[float] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-value" in a:
            self.values.append(float(a["data-value"]))


def report_values(path: Path) -> list[float]:
    p = NumericCells()
    p.feed(path.read_text())
    return p.values


# ---------------------------------------------------------------- extrema over the run
@pytest.fixture(scope="module")
def bar_step(tmp_path_factory):
    out = tmp_path_factory.mktemp("bar_step") / "out"
    return run_cli(out, "busbar_straight.yaml", BAR_STEP), timeseries(out)


def test_maxima_are_over_the_run_not_at_the_last_time(bar_step):
    s, ts = bar_step
    t = ts["time [s]"]
    assert t[-1] == pytest.approx(10.0) and ts["current [A]"][-1] == 0.0
    for key, col in (("T_max", "T_max [K]"), ("J_max", "J_max [A/m^2]")):
        k = int(np.argmax(ts[col]))
        # the summary's value is the largest row of the time series, at that row's time
        assert s[key]["value"] == pytest.approx(ts[col][k], rel=1e-13), key
        assert s[key]["time_s"] == pytest.approx(t[k], rel=1e-13), key
        # ... and the final value is the last row, a different (smaller) number
        assert s[f"{key}_final"]["value"] == pytest.approx(ts[col][-1], rel=1e-13), key
        assert s[f"{key}_final"]["time_s"] == pytest.approx(t[-1]), key
        assert s[f"{key}_final"]["value"] < s[key]["value"], key
        assert s[key]["region"] == "busbar_1" and len(s[key]["x"]) == 3
    # the current stops during the fifth second: the hottest time is then, not the end
    assert 4.0 <= s["T_max"]["time_s"] <= 6.0
    assert s["J_max"]["time_s"] <= 5.0 and s["J_max_final"]["value"] < 1e-6 * s["J_max"]["value"]
    # T_min over the run: the uniform initial temperature at t = 0
    assert s["T_min"]["time_s"] == 0.0 and s["T_min"]["value"] == pytest.approx(298.15, abs=1e-9)
    assert s["T_min_final"]["value"] == pytest.approx(ts["T_min [K]"][-1], rel=1e-13)


# ---------------------------------------------------------------- heat per region (module)
@pytest.fixture(scope="module")
def module_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("module") / "out"
    s = run_cli(out, "module_4s2p_discharge.yaml", MODULE)
    return out, s


def test_module_heat_per_region_sums_to_the_total(module_run):
    _, s = module_run
    heat = s["heat"]
    gen = heat["generated_W"]
    by_region = heat["by_region"]
    assert set(by_region) == set(s["joule_power_W"]["by_region"])
    assert sum(r["total_W"] for r in by_region.values()) == pytest.approx(gen, rel=1e-6)
    for name, r in by_region.items():
        parts = r["joule_W"] + r["irreversible_W"] + r["reversible_W"]
        assert parts == pytest.approx(r["total_W"], rel=1e-9, abs=1e-12 * gen), name
        assert r["joule_W"] == s["joule_power_W"]["by_region"][name]
    for k in ("joule", "irreversible", "reversible"):
        assert heat["by_source_W"][k] == pytest.approx(sum(r[f"{k}_W"] for r in by_region.values()), rel=1e-12)
    # the symptom: a cell's heat is its Bernardi heat, not its collector Joule heat
    cells = [n for n in by_region if n.startswith("cell_")]
    assert len(cells) == 8
    for n in cells:
        assert by_region[n]["total_W"] > 50 * by_region[n]["joule_W"] > 0
    e = s["energy"]
    assert sum(e["heat_by_region_J"].values()) == pytest.approx(e["heat_generated_J"], rel=1e-6)


def test_module_cell_heat_equals_lumped_bernardi(module_run):
    """Each cell's 3D irreversible + reversible heat against I (OCV - V) - I T dU/dT from
    the ECM functions at the cell's current, voltage, SOC and mean temperature."""
    from busbarfem.case.loader import load_case
    from busbarfem.cells.ecm import CellParameters

    _, s = module_run
    case, _ = load_case(EX / "module_4s2p_discharge.yaml", MODULE)
    prm = CellParameters(case.cell, 1)
    dt = case.solver.dt
    for name, c in s["cells"].items():
        I, V, soc, T = c["current_A"], c["voltage_V"], c["soc"], c["T_mean_K"]
        # the step's heat uses the OCV at its end and dU/dT at its start (as the lumped
        # model does); the SOC at the start follows by coulomb counting
        soc_start = soc + I * dt / (3600.0 * case.cell.capacity)
        q_irr = I * (float(prm.ocv(np.array([soc]), np.array([T]))[0]) - V)
        q_rev = -I * T * float(prm.dUdT(np.array([soc_start]))[0])
        assert c["heat_irreversible_W"] == pytest.approx(q_irr, rel=1e-5), name
        assert c["heat_reversible_W"] == pytest.approx(q_rev, rel=1e-5), name
        bernardi = c["heat_W"] - c["heat_joule_W"]
        assert bernardi == pytest.approx(q_irr + q_rev, rel=1e-5), name
        # collector Joule heat adds a little on top (a fraction of a percent here)
        assert 0 < c["heat_W"] / (q_irr + q_rev) - 1 < 0.01, name
        assert c["heat_W"] == s["heat"]["by_region"][name]["total_W"]


def test_module_interconnect_and_cell_resistance(module_run):
    from busbarfem.case.loader import load_case
    from busbarfem.cells.ecm import CellParameters

    _, s = module_run
    res, term, cells = s["resistance"], s["terminal"], s["cells"]
    I = term["current_A"]
    assert term["resistance_ohm"] is None  # V/I of a module is no resistance
    joule = s["joule_power_W"]["by_region"]
    passive = sum(v for n, v in joule.items() if not n.startswith("cell_"))
    assert res["interconnect_ohm"] == pytest.approx(passive / I**2, rel=1e-12)
    # Tellegen: the power the cells deliver at their terminals minus the module's terminal
    # power is lost in the passive conductors (the cells' collector Joule heat is theirs)
    tellegen = (sum(c["current_A"] * c["voltage_V"] - c["heat_joule_W"] for c in cells.values())
                - term["voltage_V"] * I)
    assert res["interconnect_ohm"] == pytest.approx(tellegen / I**2, rel=1e-3)
    # cells: their irreversible + collector Joule heat / I^2, and the ECM R0 combination
    cell_loss = sum(c["heat_irreversible_W"] + c["heat_joule_W"] for c in cells.values())
    assert res["cells_ohm"] == pytest.approx(cell_loss / I**2, rel=1e-12)
    case, _ = load_case(EX / "module_4s2p_discharge.yaml", MODULE)
    prm = CellParameters(case.cell, 1)
    stages: dict[int, list[float]] = {}
    for n, c in cells.items():
        r0 = float(prm.R0(np.array([c["soc"]]), np.array([c["T_mean_K"]]))[0])
        stages.setdefault(int(n.split("_")[1]), []).append(r0)
    series_parallel = sum(1.0 / sum(1.0 / r for r in rs) for rs in stages.values())
    assert res["cells_R0_ohm"] == pytest.approx(series_parallel, rel=1e-9)
    assert res["cells_ohm"] > res["cells_R0_ohm"]  # polarisation adds to R0 under load
    assert res["total_loss_ohm"] == pytest.approx(res["interconnect_ohm"] + res["cells_ohm"], rel=1e-12)
    assert res["interconnect_ohm"] < 0.01 * res["cells_ohm"]


def test_module_report_shows_cell_heat(module_run):
    out, s = module_run
    paths = write_report(out, renders=False)
    vals = report_values(paths["html"])
    md = paths["md"].read_text()
    assert "irreversible heat [W]" in md and "reversible heat [W]" in md
    for name, r in s["heat"]["by_region"].items():
        for k in ("total_W", "irreversible_W", "reversible_W", "joule_W"):
            assert r[k] in vals, (name, k)
    # the table's total row: the sum of the region totals, which is the heat generated
    assert any(math.isclose(v, s["heat"]["generated_W"], rel_tol=1e-9) and v != s["heat"]["generated_W"]
               or v == s["heat"]["generated_W"] for v in vals)
    for k in ("interconnect_ohm", "cells_ohm", "cells_R0_ohm"):
        assert s["resistance"][k] in vals, k


# ---------------------------------------------------------------- conductor only
def test_passive_interconnect_resistance_is_the_conductor_resistance(tmp_path):
    """No cells: Joule power / I^2 (a volume integral) equals V/I (the terminal reaction)."""
    s = run_cli(tmp_path / "bar", "busbar_straight.yaml", ["mesh.size=0.004"])
    assert s["resistance"]["interconnect_ohm"] == pytest.approx(s["terminal"]["resistance_ohm"], rel=1e-8)
    assert set(s["resistance"]) == {"interconnect_ohm"}
    assert s["heat"]["by_region"]["busbar_1"]["total_W"] == pytest.approx(s["heat"]["generated_W"], rel=1e-12)


# io/checkpoint.py still calls the deprecated FunctionSpace.dofmap (not this test's subject)
@pytest.mark.filterwarnings("ignore:dofmap is deprecated:DeprecationWarning")
def test_restart_keeps_the_run_maxima_and_region_heat(tmp_path):
    """The maxima of the bar's current step lie before the checkpoint (t = 6 s): a run
    restarted there reports the same maxima, places, times and heat per region."""
    from mpi4py import MPI

    from busbarfem.case.loader import load_case
    from busbarfem.coupling import Simulation

    case, src = load_case(EX / "busbar_straight.yaml", BAR_STEP)
    sim = Simulation(case, src, MPI.COMM_WORLD, outdir=tmp_path)
    sim.checkpoint_every = 6
    sim.setup()
    try:
        full = sim.run()
    finally:
        sim.close()
    again = Simulation(case, src, MPI.COMM_WORLD, outdir=tmp_path, restarting=True)
    again.setup()
    again.restore(tmp_path)
    try:
        assert again.restart_state["t"] == pytest.approx(6.0)
        restarted = again.run()
    finally:
        again.close()
    for key in ("T_max", "T_min", "J_max", "T_max_final", "J_max_final"):
        assert restarted[key]["value"] == pytest.approx(full[key]["value"], rel=1e-12), key
        assert restarted[key]["time_s"] == full[key]["time_s"] and restarted[key]["region"] == full[key]["region"]
        assert np.allclose(restarted[key]["x"], full[key]["x"], rtol=0, atol=1e-12), key
    assert full["T_max"]["time_s"] < 6.0
    for name, q in full["energy"]["heat_by_region_J"].items():
        assert restarted["energy"]["heat_by_region_J"][name] == pytest.approx(q, rel=1e-10), name
