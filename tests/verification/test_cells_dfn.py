"""The bundled LG_M50_DFN ECM (and the older LG_M50) against PyBaMM's DFN with the Chen2020 parameters.

The reference (isothermal 298.15 K, constant current to 2.5 V from the parameter set's
initial state) is cached in tests/data/LG_M50_DFN_Chen2020_cc.csv by
scripts/gen_dfn_reference.py; with pybamm installed, 1C is also re-run live. The ECM
starts at the SOC whose OCV equals the DFN's initial OCV (4.1809 V) and runs in the
lumped runner at PyBaMM's 1C = 5 A.

The two other shipped chemistries are checked the same way against their own cached DFN
discharges: Ecker2015_DFN (NMC, tests/data/Ecker2015_DFN_cc.csv) and NCA_Kim2011_DFN (NCA,
tests/data/NCA_Kim2011_DFN_cc.csv, scripts/gen_nca_kim2011_reference.py), the latter also
in a lumped case through the CLI.
"""

from pathlib import Path

import numpy as np
import pytest

from busbarfem.case.cells import CellModel
from busbarfem.case.loads import Load
from busbarfem.cells.ecm import CellParameters
from busbarfem.cells.lumped import run_lumped

DATA = Path(__file__).resolve().parents[1] / "data" / "LG_M50_DFN_Chen2020_cc.csv"
DFN_OCV0 = 4.180941425  # V, PyBaMM Chen2020 initial state
# issue 17's limits: <= 15 mV RMS and the charge within 1 % at 0.5C, 1C and 2C
# (measured, docs/cells.md: 7.5 / 9.8 / 12.8 mV; -0.02 / -0.02 / +0.40 %)
LIMITS = {0.5: (15e-3, 0.01), 1.0: (15e-3, 0.01), 2.0: (15e-3, 0.01)}
CCCV = Path(__file__).resolve().parents[1] / "data" / "LG_M50_DFN_Chen2020_cccv.csv"


def _reference():
    arr = np.loadtxt(DATA, delimiter=",", comments="#", skiprows=2)
    return {c: arr[arr[:, 0] == c, 1:] for c in LIMITS}


def ecm_vs(t, current, voltage, c_rate, preset="LG_M50_DFN"):
    """(RMS [V] over the common span, ECM/DFN charge ratio - 1) for one discharge."""
    cell = CellModel(preset=preset)
    p = CellParameters(cell, 1)
    s = np.linspace(0.0, 1.0, 200001)
    soc0 = float(np.interp(DFN_OCV0, p.ocv_ref(s), s))
    amps = 5.0 * c_rate
    res = run_lumped(cell.model_copy(update={"initial_soc": soc0}),
                     Load(current=amps, minimum_cell_voltage=2.5, minimum_cell_state_of_charge=0.0),
                     1, 1, dt=10.0)
    assert "minimum cell voltage 2.5 V" in res.stop_reason
    span = t <= min(t[-1], res.time[-1])
    err = np.interp(t[span], res.time, res.cell_voltage[:, 0, 0]) - voltage[span]
    q_dfn = float(np.sum(np.diff(t) * current[1:]) / 3600.0)
    return float(np.sqrt(np.mean(err**2))), res.discharged_Ah / q_dfn - 1.0


@pytest.mark.parametrize("c_rate", sorted(LIMITS))
def test_lg_m50_matches_cached_dfn(c_rate):
    """LG_M50_DFN ECM vs cached Chen2020 DFN at 0.5C / 1C / 2C: V RMS 7.5 / 9.8 / 12.8 mV
    (limit 15 mV, issue 17), charge -0.02 / -0.02 / +0.40 % (limit 1 %)."""
    t, current, voltage = _reference()[c_rate].T
    np.testing.assert_allclose(current, 5.0 * c_rate, rtol=1e-6)
    rms, dq = ecm_vs(t, current, voltage, c_rate)
    lim_v, lim_q = LIMITS[c_rate]
    assert rms <= lim_v, f"{c_rate}C: RMS {1e3 * rms:.1f} mV"
    assert abs(dq) <= lim_q, f"{c_rate}C: capacity off by {100 * dq:.2f} %"


def test_older_lg_m50_set_is_the_one_the_issue_measured():
    """The older LG_M50 set (still the default preset) against the same DFN at 1C: the 53.9 mV
    RMS the user measured (issue 17); LG_M50_DFN is 5.5x closer (9.8 mV)."""
    t, current, voltage = _reference()[1.0].T
    rms_old, _ = ecm_vs(t, current, voltage, 1.0, preset="LG_M50")
    rms_new, _ = ecm_vs(t, current, voltage, 1.0)
    assert rms_old == pytest.approx(0.0539, abs=0.002)
    assert rms_new < rms_old / 4


def test_live_dfn_reproduces_cache_and_ecm():
    """1C DFN re-run live (pybamm installed) equals the cache to 1 mV; ECM within 15 mV RMS."""
    pytest.importorskip("pybamm")
    from busbarfem.cells.pybamm_tests import cc_discharge

    live = cc_discharge("Chen2020", "DFN", 1.0)
    t, current, voltage = _reference()[1.0].T
    n = min(live.time.size, t.size) - 1
    assert abs(live.time[-1] - t[-1]) < 10.0  # same end of discharge within one sample
    np.testing.assert_allclose(live.voltage[:n], voltage[:n], atol=1e-3)
    rms, dq = ecm_vs(live.time, live.current, live.voltage, 1.0)
    assert rms <= LIMITS[1.0][0] and abs(dq) <= LIMITS[1.0][1]


def test_pybamm_driven_fit_reproduces_its_own_virtual_tests():
    """fit-ecm driven by PyBaMM (SPM Chen2020, short HPPC at 298.15 K): fit RMS < 5 mV per
    test, capacity = PyBaMM's C/20 charge 4.2 -> 2.5 V (5.14 Ah, as in the shipped set)."""
    pytest.importorskip("pybamm")
    from busbarfem.cells.fit import FitOptions, fit_ecm
    from busbarfem.cells.pybamm_tests import pybamm_tests

    tests = pybamm_tests("Chen2020", "SPM", temperatures=(298.15,), soc_step=0.2, rest_minutes=20.0)
    res = fit_ecm(tests, FitOptions(n_rc=2))
    assert res.capacity == pytest.approx(CellModel(preset="LG_M50_DFN").capacity, rel=0.005)
    for name, rms in res.rms.items():
        assert rms < 5e-3, f"{name}: {1e3 * rms:.2f} mV"  # measured 2.9 (C/20), 2.6 (HPPC)
    assert not res.nonlinear["activation_fitted"]  # one temperature: Ea not identifiable


@pytest.mark.parametrize("dt", [10.0, 300.0])
def test_cv_charge_current_decays_monotonically_like_the_dfn(dt):
    """CC-CV charge (1C to 4.2 V, hold to C/100) from SOC 0.7 in the lumped runner vs the
    cached DFN (scripts/gen_dfn_cccv_reference.py), whose CV current decays monotonically:
    the ECM's CV current never rises more than 0.5 % above its running minimum (measured:
    no rise at 10 s or 300 s steps; an earlier set, with a fitted OCV table flat at SOC
    0.875-0.9, rose 18.4 % / 10.2 %: the CV anomaly of issue 17), and the charge taken
    equals the DFN's within 1 % at 10 s steps (measured -0.56 %; the set fitted to pulses
    only took +0.12 %, the fit with the CC discharges trades that for the 2C voltage)."""
    t, current, voltage = np.loadtxt(CCCV, delimiter=",", comments="#", skiprows=2).T
    cell = CellModel(preset="LG_M50_DFN", initial_soc=0.7)
    load = Load(electrical_input_type="standard_charge_profile", charging_profile_type="cccv",
                c_rate=1.0, maximum_cell_state_of_charge=1.0)
    res = run_lumped(cell, load, 1, 1, dt=dt, event_tolerance=1.0)
    assert "cut-off current" in res.stop_reason
    k = res.step_index
    cv = np.abs(res.module_current[np.nonzero(k == k[-1])[0][1:]])
    assert np.max(cv[1:] / np.minimum.accumulate(cv)[:-1]) - 1.0 < 0.005
    dfn_cv = np.abs(current[voltage > 4.1999])
    assert np.max(dfn_cv[1:] / np.minimum.accumulate(dfn_cv)[:-1]) - 1.0 < 1e-3  # the reference
    if dt == 10.0:
        q_ecm = -np.sum(np.diff(res.time) * res.module_current[1:]) / 3600.0
        q_dfn = -np.sum(np.diff(t) * current[1:]) / 3600.0
        assert abs(q_ecm / q_dfn - 1.0) < 0.01


ECKER = Path(__file__).resolve().parents[1] / "data" / "Ecker2015_DFN_cc.csv"


def test_ecker2015_second_chemistry_matches_its_dfn():
    """Ecker2015_DFN (Kokam NMC/graphite as PyBaMM codes it) vs its cached DFN, CC from SOC 1
    to 2.5 V, lumped runner at the DFN's current: V RMS 4.0 / 11.1 / 17.4 mV at 0.5C / 1C /
    2C (limits 6 / 13 / 20 mV), charge +0.01 / +0.06 / +0.18 % (limit 1 %)."""
    arr = np.loadtxt(ECKER, delimiter=",", comments="#", skiprows=2)
    cell = CellModel(preset="Ecker2015_DFN")
    limits = {0.5: 6e-3, 1.0: 13e-3, 2.0: 20e-3}
    for c, lim in limits.items():
        t, current, voltage = arr[arr[:, 0] == c, 1:].T
        res = run_lumped(cell, Load(current=float(current[1]), minimum_cell_voltage=2.5,
                                    minimum_cell_state_of_charge=0.0), 1, 1, dt=10.0)
        span = t <= min(t[-1], res.time[-1])
        err = np.interp(t[span], res.time, res.cell_voltage[:, 0, 0]) - voltage[span]
        rms = float(np.sqrt(np.mean(err**2)))
        dq = res.discharged_Ah / float(np.sum(np.diff(t) * current[1:]) / 3600.0) - 1.0
        assert rms <= lim, f"{c}C: RMS {1e3 * rms:.1f} mV"
        assert abs(dq) <= 0.01, f"{c}C: charge off by {100 * dq:.2f} %"


def test_fit_ecm_cli_fits_pybamm_cc_discharges_next_to_the_pulses(tmp_path):
    """`fit-ecm --pybamm Chen2020 --pybamm-model SPM --cc-rates 1` (298.15 K only, 2 RC):
    the 1C CC discharge from SOC 1 to 2.5 V is a test of the fit (in the cell file's fit
    block, fitted to < 5 mV RMS; measured 2.0 mV) beside the C/20 and HPPC tests (< 6 mV;
    measured 4.1 / 3.3 mV), and the written file loads as a preset."""
    pytest.importorskip("pybamm")
    import yaml

    from busbarfem.cli import main

    out = tmp_path / "spm.yaml"
    assert main(["fit-ecm", "--pybamm", "Chen2020", "--pybamm-model", "SPM", "--temperatures",
                 "298.15", "--n-rc", "2", "--cc-rates", "1", "-o", str(out), "-q"]) == 0
    fit = yaml.safe_load(out.read_text())["fit"]["tests"]
    assert set(fit) == {"lowrate_0.05C_298.15K", "hppc_298.15K", "cc_1C_298.15K"}
    assert fit["cc_1C_298.15K"]["rms_mV"] < 5.0
    assert fit["cc_1C_298.15K"]["samples"] > 300  # 10 s samples over the ~1 h discharge
    assert all(v["rms_mV"] < 6.0 for v in fit.values())
    assert CellModel(preset=str(out)).capacity == pytest.approx(5.144, rel=0.005)


def test_fit_ecm_cli_takes_the_pybamm_sets_cut_off_by_default(tmp_path):
    """`fit-ecm --pybamm NCA_Kim2011` without --v-min: the capacity is the C/20 charge down to
    the set's own 2.7 V cut-off (with a fixed 2.5 V default the C/20 test, which stops at
    2.7 V, never reaches it and the capacity cannot be estimated); it equals the shipped
    NCA_Kim2011_DFN's 0.4828 Ah (same C/20 to 2.7 V, DFN) within 1 % (SPM here)."""
    pytest.importorskip("pybamm")
    import yaml

    from busbarfem.cli import main

    out = tmp_path / "nca.yaml"
    assert main(["fit-ecm", "--pybamm", "NCA_Kim2011", "--pybamm-model", "SPM", "--temperatures",
                 "298.15", "--n-rc", "1", "-o", str(out), "-q"]) == 0
    cell = yaml.safe_load(out.read_text())["cell"]
    assert "2.7 V" in yaml.safe_load(out.read_text())["fit"]["capacity_source"]
    assert cell["capacity"] == pytest.approx(CellModel(preset="NCA_Kim2011_DFN").capacity, rel=0.01)


NCA = Path(__file__).resolve().parents[1] / "data" / "NCA_Kim2011_DFN_cc.csv"
# issue 17's limits for the second shipped chemistry: <= 15 mV RMS, charge within 1 %
# (measured, docs/cells.md: 6.0 / 6.8 / 12.9 mV; +0.03 / +0.02 / +0.30 %)
NCA_LIMITS = {0.5: (15e-3, 0.01), 1.0: (15e-3, 0.01), 2.0: (15e-3, 0.01)}


@pytest.mark.parametrize("c_rate", sorted(NCA_LIMITS))
def test_nca_kim2011_second_chemistry_matches_its_dfn(c_rate):
    """NCA_Kim2011_DFN (NCA/graphite pouch layer of Kim 2011 as PyBaMM codes it) vs its cached
    DFN (scripts/gen_nca_kim2011_reference.py: isothermal 298.15 K, CC from the set's initial
    state to 2.7 V, 1C = 0.43 A; not the SOC-1 records the fit saw), lumped runner at the
    DFN's current from the SOC of the DFN's initial OCV: V RMS 6.0 / 6.8 / 12.9 mV at 0.5C / 1C / 2C
    (limit 15 mV, issue 17), charge +0.03 / +0.02 / +0.30 % (limit 1 %)."""
    text = NCA.read_text(encoding="utf-8")
    ocv0 = float(text.split("initial OCV: ")[1].split(" V")[0])
    arr = np.loadtxt(NCA, delimiter=",", comments="#", skiprows=2)
    t, current, voltage = arr[arr[:, 0] == c_rate, 1:].T
    np.testing.assert_allclose(current, 0.43 * c_rate, rtol=1e-6)  # PyBaMM's nominal 1C
    cell = CellModel(preset="NCA_Kim2011_DFN")
    s = np.linspace(0.0, 1.0, 200001)
    soc0 = float(np.interp(ocv0, CellParameters(cell, 1).ocv_ref(s), s))
    assert 0.85 < soc0 < 0.95  # the set starts part-charged (OCV 4.074 V)
    res = run_lumped(cell.model_copy(update={"initial_soc": soc0}),
                     Load(current=float(current[1]), minimum_cell_voltage=2.7,
                          minimum_cell_state_of_charge=0.0), 1, 1, dt=10.0)
    assert "minimum cell voltage 2.7 V" in res.stop_reason
    span = t <= min(t[-1], res.time[-1])
    err = np.interp(t[span], res.time, res.cell_voltage[:, 0, 0]) - voltage[span]
    rms = float(np.sqrt(np.mean(err**2)))
    dq = res.discharged_Ah / float(np.sum(np.diff(t) * current[1:]) / 3600.0) - 1.0
    lim_v, lim_q = NCA_LIMITS[c_rate]
    assert rms <= lim_v, f"{c_rate}C: RMS {1e3 * rms:.1f} mV"
    assert abs(dq) <= lim_q, f"{c_rate}C: charge off by {100 * dq:.2f} %"


def test_nca_kim2011_live_dfn_reproduces_cache():
    """The NCA_Kim2011 1C DFN discharge re-run live (pybamm installed) equals the cache to 1 mV."""
    pytest.importorskip("pybamm")
    from busbarfem.cells.pybamm_tests import cc_discharge

    live = cc_discharge("NCA_Kim2011", "DFN", 1.0)
    arr = np.loadtxt(NCA, delimiter=",", comments="#", skiprows=2)
    t, _, voltage = arr[arr[:, 0] == 1.0, 1:].T
    n = min(live.time.size, t.size) - 1
    assert abs(live.time[-1] - t[-1]) < 10.0
    np.testing.assert_allclose(live.voltage[:n], voltage[:n], atol=1e-3)


NCA_CASE = """name: nca_cell
geometry:
  module:
    series: 2
    parallel: 1
    cell: {{type: pouch, width: 0.14, height: 0.2, thickness: 0.000165, tab_thickness: 0.0001}}
cell:
  preset: {preset}
  initial_soc: 0.9
load: {{electrical_input_type: c_rate, c_rate: 1.0}}
thermal:
  initial_temperature: 298.15
  boundaries: [{{type: convection, regions: [exterior], h: 1.0, T_amb: 298.15}}]
solver: {{analysis: transient, t_end: 600, dt: 10}}
"""


def test_nca_kim2011_preset_runs_in_a_lumped_case(tmp_path, capsys):
    """`cell: {preset: NCA_Kim2011_DFN}` in a 2s1p case, `run --lumped`, 1C for 600 s: 1C is the
    preset's capacity, the charge is I t, the terminal voltage twice the cell's, and the cell
    temperature equals an independent solve_ivp integration of m cp dT/dt = Q(t) - h A (T - T_amb)
    with the preset's rho and cp, the volume and outer area of the case's pouch box (`--lumped`
    sizes each cell from the module geometry; the box is the preset's single electrode layer,
    0.14 x 0.2 m x 165 um) and the run's heat (to 1e-6 K); a misspelt preset is a located
    exit-2 error listing NCA_Kim2011_DFN."""
    import json

    import yaml
    from scipy.integrate import solve_ivp

    from busbarfem.case.cells import available_presets
    from busbarfem.cli import main

    assert "NCA_Kim2011_DFN" in available_presets()
    preset = yaml.safe_load((Path(__file__).resolve().parents[2] / "src" / "busbarfem" / "data" / "cells"
                             / "NCA_Kim2011_DFN.yaml").read_text(encoding="utf-8"))["cell"]
    case = tmp_path / "case.yaml"
    case.write_text(NCA_CASE.format(preset="NCA_Kim2011_DFN"))
    out = tmp_path / "out"
    assert main(["run", str(case), "-o", str(out), "-q", "--no-report", "--lumped"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["terminal"]["current_A"] == pytest.approx(preset["capacity"], rel=1e-9)
    assert summary["energy"]["charge_out_Ah"] == pytest.approx(preset["capacity"] * 600 / 3600, rel=1e-6)
    ts = np.genfromtxt(out / "timeseries.csv", delimiter=",", names=True)
    t, T = ts["time_s"], ts["T_mean_cell_1_1_K"]
    q = ts["q_irr_cell_1_1_W"] + ts["q_rev_cell_1_1_W"]
    np.testing.assert_allclose(ts["voltage_V"], 2.0 * ts["V_cell_1_1_V"], rtol=1e-12)
    w, hgt, d = 0.14, 0.2, 0.000165  # the case's pouch box
    mcp = preset["rho"] * preset["cp"] * (w * hgt * d)
    hA = 1.0 * 2.0 * (w * hgt + w * d + hgt * d)
    assert w * hgt * d == pytest.approx(preset["volume"], rel=1e-3)  # the preset's layer

    def rhs(tt, y):  # the heat of row n is that of the step ending at t_n
        n = min(int(np.searchsorted(t, tt, side="left")), t.size - 1)
        return [(q[n] - hA * (y[0] - 298.15)) / mcp]

    sol = solve_ivp(rhs, (0.0, t[-1]), [298.15], t_eval=t, rtol=1e-10, atol=1e-12, max_step=1.0)
    assert T[-1] - 298.15 > 0.1  # a rise the values shape (tau = m cp / h A ~ 170 s)
    np.testing.assert_allclose(T, sol.y[0], atol=1e-6)
    case.write_text(NCA_CASE.format(preset="NCA_Kim2011"))
    assert main(["validate", str(case), "-q"]) == 2
    err = capsys.readouterr().err
    # located at the cell section (line 7), naming the bad value and the valid presets
    assert "case.yaml:7: cell: unknown cell preset 'NCA_Kim2011'" in err, err
    assert "NCA_Kim2011_DFN" in err.split("valid presets:")[1]
