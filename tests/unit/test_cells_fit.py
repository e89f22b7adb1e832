"""ECM identification (busbarfem.cells.fit) on a synthetic pulse test of a known 2-RC ECM.

The data are generated with busbarfem's own ECM (the lumped runner) and checked against an
independent integration of the ECM equations (scipy solve_ivp); the fit must recover the
R0 / RC tables, time constants and activation energies within 1 % and the voltage within
0.5 mV RMS.
"""

import subprocess
import sys

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from busbarfem.case.cells import CellModel
from busbarfem.case.loads import Load
from busbarfem.cells.fit import CellTest, FitOptions, fit_ecm, read_test_csv
from busbarfem.cells.lumped import LumpedThermal, run_lumped

NODES = [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]
S41 = np.round(np.linspace(0, 1, 41), 4)
OCV = 3.0 + 1.1 * S41 + 0.15 * np.tanh((S41 - 0.5) * 4) - 0.25 * np.exp(-S41 / 0.04)
TRUTH = dict(
    capacity=2.0, T_ref=298.15, ocv=[[float(a), float(b)] for a, b in zip(S41, OCV, strict=True)],
    R0=[[n, 0.02 + 0.015 * np.exp(-n / 0.1) + 0.004 * n] for n in NODES], R0_activation_energy=30000.0,
    rc_pairs=[dict(R=[[n, 0.01 + 0.01 * (1 - n) ** 3] for n in NODES], tau=8.0, activation_energy=20000.0),
              dict(R=[[n, 0.015 + 0.02 * np.exp(-n / 0.15)] for n in NODES], tau=300.0,
                   activation_energy=40000.0)],
    volume=1e-5, surface_area=1e-2, initial_soc=1.0)
STEPS = []
for _ in range(10):
    STEPS += ["Discharge at 1C for 10 seconds", "Rest for 40 seconds", "Charge at 0.75C for 10 seconds",
              "Rest for 40 seconds", "Discharge at 2C for 3 minutes or until 2.6 V", "Rest for 10 minutes"]
LIMITS = dict(minimum_cell_voltage=2.0, maximum_cell_voltage=5.0, minimum_cell_state_of_charge=0.0,
              maximum_cell_state_of_charge=1.0)


def _record(res, name):
    return CellTest(name, res.time, res.cell_current[:, 0, 0], res.cell_voltage[:, 0, 0],
                    res.cell_temperature[:, 0, 0])


@pytest.fixture(scope="module")
def synthetic():
    cell = CellModel.model_validate(TRUTH)
    tests = []
    for T in (278.15, 298.15, 318.15):
        th = None if T == 298.15 else LumpedThermal(h=1e9, T_ambient=T)  # isothermal at T
        tests.append(_record(run_lumped(cell, Load(steps=STEPS, **LIMITS), 1, 1, dt=2.0, thermal=th),
                             f"hppc_{T:.0f}K"))
    tests.append(_record(run_lumped(cell, Load(steps=["Discharge at C/5 until 2.5 V"], **LIMITS), 1, 1,
                                    dt=10.0), "c5"))
    return cell, tests


def _independent(test):
    """solve_ivp of dSOC/dt = -I/(3600 Q), dV_k/dt = (R_k(SOC, T) I - V_k)/tau_k."""
    tab = lambda t: (np.array(t)[:, 0], np.array(t)[:, 1])  # noqa: E731
    arr = lambda T, ea: np.exp(ea / 8.314462618 * (1 / T - 1 / 298.15))  # noqa: E731
    T = test.mean_temperature
    r0, rcs = tab(TRUTH["R0"]), [(tab(rc["R"]), rc["tau"], rc["activation_energy"]) for rc in TRUTH["rc_pairs"]]
    # current held over (t_{n-1}, t_n]: look it up on the right of each interval
    def current(t):
        return test.current[min(np.searchsorted(test.time, t, side="left"), test.time.size - 1)]

    def rhs(t, y):
        i = current(t)
        return [-i / 7200.0] + [(np.interp(y[0], *R) * arr(T, ea) * i - y[k + 1]) / tau
                                for k, (R, tau, ea) in enumerate(rcs)]

    v = np.empty_like(test.time)
    y = np.array([1.0, 0.0, 0.0])
    v[0] = np.interp(1.0, S41, OCV) - np.interp(1.0, *r0) * arr(T, 30000.0) * test.current[0]
    for n in range(1, test.time.size):
        if test.time[n] > test.time[n - 1]:
            y = solve_ivp(rhs, (test.time[n - 1], test.time[n]), y, rtol=1e-10, atol=1e-12,
                          first_step=1e-3).y[:, -1]
        i = test.current[n]
        v[n] = (np.interp(y[0], S41, OCV) - np.interp(y[0], *r0) * arr(T, 30000.0) * i - y[1:].sum())
    return v


def test_generated_data_match_an_independent_integration(synthetic):
    _, tests = synthetic
    hppc = tests[1]  # 298.15 K, exact isothermal path
    sel = hppc.time <= 3000.0  # two SOC levels: pulses, a 2C step, rests
    t = CellTest("part", hppc.time[sel], hppc.current[sel], hppc.voltage[sel], hppc.temperature[sel])
    v = _independent(t)
    assert np.max(np.abs(v - t.voltage)) < 1e-4  # R frozen per 2 s step, OCV linearised per step


def test_fit_recovers_known_2rc_ecm(synthetic):
    _, tests = synthetic
    res = fit_ecm(tests, FitOptions(capacity=2.0, soc_nodes=NODES))
    for name, rms in res.rms.items():
        assert rms < 0.5e-3, f"{name}: RMS {1e3 * rms:.3f} mV"
    assert res.nonlinear["tau"] == pytest.approx([8.0, 300.0], rel=0.01)
    assert res.nonlinear["activation_energy_R0"] == pytest.approx(30000.0, rel=0.01)
    assert res.nonlinear["activation_energy_rc"] == pytest.approx([20000.0, 40000.0], rel=0.01)
    fitted = [res.cell["R0"]] + [rc["R"] for rc in res.cell["rc_pairs"]]
    truth = [TRUTH["R0"]] + [rc["R"] for rc in TRUTH["rc_pairs"]]
    for f, t in zip(fitted, truth, strict=True):
        f, t = np.array(f)[:, 1], np.array(t)[:, 1]
        # SOC 0 and 1 are touched only by the ends of the data (the C/5 tail, the first pulse)
        np.testing.assert_allclose(f[1:-1], t[1:-1], rtol=0.01)
        np.testing.assert_allclose(f[[0, -1]], t[[0, -1]], rtol=0.05)
    ocv = np.array(res.cell["ocv"])[:, 1]
    assert np.max(np.abs(ocv - OCV)) < 1e-3


def test_csv_round_trip_and_bad_input(tmp_path, synthetic):
    _, tests = synthetic
    path = tmp_path / "c5.csv"
    tests[3].write_csv(path)
    back = read_test_csv(path)
    np.testing.assert_allclose(back.voltage, tests[3].voltage, atol=1e-8)
    bad = tmp_path / "bad.csv"
    bad.write_text("time [s],current [A],voltage [V],temperature [K]\n0,1,3.7,298\n1,x,3.6,298\n")
    with pytest.raises(ValueError, match=r"bad.csv:3: column 'current \[A\]': expected a number"):
        read_test_csv(bad)
    out = subprocess.run([sys.executable, "-m", "busbarfem", "fit-ecm", str(bad), "-o", str(tmp_path / "c.yaml")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "bad.csv:3" in out.stderr and "Traceback" not in out.stderr


def test_fit_ecm_never_replaces_a_user_file(tmp_path, capsys):
    """An existing -o file is refused without --overwrite (exit 2), and left byte-identical;
    a non-empty report folder busbarfem did not create is refused even with --overwrite."""
    from busbarfem.cli import main

    mine = tmp_path / "my_cell.yaml"
    mine.write_text("my own notes\n")
    assert main(["fit-ecm", "x.csv", "-o", str(mine)]) == 2
    assert "exists" in capsys.readouterr().err and mine.read_text() == "my own notes\n"
    user_dir = tmp_path / "docs"
    user_dir.mkdir()
    (user_dir / "keep.txt").write_text("keep")
    assert main(["fit-ecm", "x.csv", "-o", str(tmp_path / "new.yaml"), "--report", str(user_dir),
                 "--overwrite"]) == 2
    assert (user_dir / "keep.txt").read_text() == "keep" and not (tmp_path / "new.yaml").exists()
