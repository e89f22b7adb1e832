"""PyBaMM cells inside the 3D module (``cell.model: pybamm``, issue 17 acceptance).

* One SPMe Chen2020 cell in a 3D 1s1p module (copper plates, nickel tabs: interconnect
  resistance ~0.17 mOhm) over a 1C discharge reproduces PyBaMM's own standalone SPMe solve.
  The cell is kept isothermal at 298.15 K as the standalone model is (cp 1e5 J/kg/K and
  h = 1000 W/m^2/K on the outside: the cell mean rises by 0.2 K over the discharge).
* The same case on ``mpirun -n 2`` (the cells distributed over the ranks) equals the
  serial run.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pybamm = pytest.importorskip("pybamm")

PY = sys.executable

CASE = """
name: pybamm_{name}
geometry:
  module:
    series: {ns}
    parallel: {np}
    cell: {{preset: "21700"}}
mesh: {{size: 0.02}}
cell:
  model: pybamm
  pybamm: {{model: SPMe, parameter_set: Chen2020}}
  preset: LG_M50
  initial_soc: {soc}
  cp: 1.0e5
load:
  electrical_input_type: current
  current: {current}
  minimum_cell_voltage: 2.5
  minimum_cell_state_of_charge: 0.0
thermal:
  initial_temperature: 298.15
  boundaries: [{{type: convection, regions: [exterior], h: 1000.0, T_amb: 298.15}}]
solver:
  analysis: transient
  t_end: {t_end}
  dt: {dt}
  event_tolerance: 1.0
"""


def write_case(tmp_path: Path, name="1s1p", ns=1, np_=1, soc=1.0, current=5.0, t_end=4000.0, dt=60.0) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(CASE.format(name=name, ns=ns, np=np_, soc=soc, current=current, t_end=t_end, dt=dt))
    return path


def run_cli(case: Path, out: Path, nproc: int = 1, extra=()) -> None:
    cmd = [PY] if nproc == 1 else [str(Path(PY).parent / "mpirun"), "-n", str(nproc), PY]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([*cmd, "-m", "busbarfem", "run", str(case), "-o", str(out), "-q", "--no-cache", *extra],
                   check=True, timeout=900, env=env)


def read_ts(path: Path) -> dict[str, np.ndarray]:
    with open(path) as f:
        rows = list(csv.reader(f))
    data = np.array([[float(x) for x in r] for r in rows[1:]])
    return {k: data[:, i] for i, k in enumerate(rows[0])}


def standalone_spme(current: float, soc: float, t_end: float):
    """PyBaMM's own SPMe Chen2020 at constant current, isothermal 298.15 K, to its 2.5 V
    cut-off: (voltage as a function of t, the cut-off time)."""
    pv = pybamm.ParameterValues("Chen2020")
    pv.set_initial_state(soc)
    pv.update({"Current function [A]": current})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = pybamm.Simulation(pybamm.lithium_ion.SPMe(), parameter_values=pv).solve([0.0, t_end])
    return sol["Voltage [V]"], float(sol.t[-1])


@pytest.mark.slow
def test_single_spme_cell_in_3d_reproduces_standalone_pybamm(tmp_path):
    """1C (5 A) from SOC 1 to the 2.5 V cut-off (the full discharge, 60 s steps): the 3D
    cell voltage within 2 mV of standalone PyBaMM at every step (measured 0.47 mV max), the
    terminal voltage (cell minus the ~0.8 mV interconnect drop) within 2 mV, the cut-off
    (located by the 3D run's event location) within 5 s of PyBaMM's own (the discharged
    capacity within 0.15 %)."""
    out = tmp_path / "out"
    run_cli(write_case(tmp_path), out)
    ts = read_ts(out / "timeseries.csv")
    t, V, Vc = ts["time [s]"], ts["voltage [V]"], ts["V_cell_1_1 [V]"]
    voltage, t_cut = standalone_spme(5.0, 1.0, 4000.0)
    assert t_cut > 3000.0 and t[-1] > 3000.0, "the discharge must reach the cut-off"
    assert abs(t[-1] - t_cut) < 5.0, (t[-1], t_cut)
    k = t <= t_cut
    ref = voltage(t[k])
    assert np.max(np.abs(Vc[k] - ref)) < 2e-3
    assert np.max(np.abs(V[k] - ref)) < 2e-3
    assert 0.0 < np.mean(ref - V[k]) < 1.5e-3  # the interconnect drop is there and small
    T = ts["T_mean_cell_1_1 [K]"]
    assert T.max() - 298.15 < 0.5
    import json

    s = json.loads((out / "summary.json").read_text())
    assert s["timings_s"]["cell_model"] > 0.0


def test_pybamm_module_serial_equals_mpirun_2(tmp_path):
    """A 2s1p module of SPMe cells (one cell per rank with 2 ranks) for 10 x 30 s at 1C:
    every time-series column of ``mpirun -n 2`` equals the serial run to 1e-6 (relative)."""
    case = write_case(tmp_path, name="2s1p", ns=2, soc=0.8, t_end=300.0, dt=30.0)
    ov = ["--set", "solver.electrical_solver=lu", "--set", "solver.thermal_solver=lu"]
    run_cli(case, tmp_path / "ser", 1, ov)
    run_cli(case, tmp_path / "par", 2, ov)
    a, b = read_ts(tmp_path / "ser" / "timeseries.csv"), read_ts(tmp_path / "par" / "timeseries.csv")
    assert list(a) == list(b)
    assert len(a["time [s]"]) == 11
    for k in a:
        scale = max(np.max(np.abs(a[k])), 1e-12)
        assert np.max(np.abs(a[k] - b[k])) <= 1e-6 * scale, k
    assert np.ptp(a["V_cell_1_1 [V]"]) > 0.01  # the cells did discharge
