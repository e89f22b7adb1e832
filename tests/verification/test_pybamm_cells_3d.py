"""PyBaMM cells inside the 3D module (``cell.model: pybamm``, issue 17 acceptance).

* One SPMe Chen2020 cell in a 3D 1s1p module (copper plates, nickel tabs: interconnect
  resistance ~0.17 mOhm) over a 1C discharge reproduces PyBaMM's own standalone SPMe solve.
  The cell is kept isothermal at 298.15 K as the standalone model is (cp 1e5 J/kg/K and
  h = 1000 W/m^2/K on the outside: the cell mean rises by 0.2 K over the discharge).
* The same 1s1p module with a DFN cell (300 s at 1C) against PyBaMM's standalone DFN.
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
DATA = Path(__file__).resolve().parents[1] / "data"

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
  pybamm: {{model: {model}, parameter_set: Chen2020}}
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


def write_case(tmp_path: Path, name="1s1p", ns=1, np_=1, soc=1.0, current=5.0, t_end=4000.0, dt=60.0,
               model="SPMe") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(CASE.format(name=name, ns=ns, np=np_, soc=soc, current=current, t_end=t_end, dt=dt,
                                model=model))
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


@pytest.mark.slow
def test_single_dfn_cell_in_3d_reproduces_standalone_pybamm_dfn(tmp_path):
    """``model: DFN`` in the same 1s1p module, 300 s at 1C (5 A) from SOC 1 in 30 s steps,
    against PyBaMM's standalone DFN of the same set (cached at <= 0.5 s spacing:
    scripts/gen_dfn_3d_reference.py): the 3D cell voltage and the terminal voltage within
    2 mV at every step (measured: cell 0.06 mV max, terminal 0.83 mV, the interconnect drop;
    about 2.5 min on a loaded 2-core machine, most of it the DFN build and the mesh)."""
    t_ref, i_ref, v_ref = np.loadtxt(DATA / "LG_M50_DFN_Chen2020_1C_300s.csv", delimiter=",",
                                     comments="#", skiprows=2).T
    np.testing.assert_allclose(i_ref, 5.0, rtol=1e-9)
    out = tmp_path / "out"
    run_cli(write_case(tmp_path, name="dfn", t_end=300.0, dt=30.0, model="DFN"), out)
    ts = read_ts(out / "timeseries.csv")
    t, V, Vc = ts["time [s]"], ts["voltage [V]"], ts["V_cell_1_1 [V]"]
    assert t[-1] == pytest.approx(300.0) and t.size == 11
    ref = np.interp(t, t_ref, v_ref)
    assert np.max(np.abs(Vc - ref)) < 2e-3, np.abs(Vc - ref)
    assert np.max(np.abs(V - ref)) < 2e-3, np.abs(V - ref)
    assert np.ptp(ref) > 0.1  # the DFN voltage does move over the run (4.05 -> 3.91 V)


@pytest.mark.slow
def test_pybamm_module_serial_equals_mpirun_2(tmp_path):
    """A 2s1p module of SPMe cells (one cell per rank with 2 ranks) for 5 x 30 s at 1C:
    every time-series column of ``mpirun -n 2`` equals the serial run to 1e-6 (relative to
    the column's largest value; the energy-balance residuals, round-off of 1e-11 W, are
    left out)."""
    case = write_case(tmp_path, name="2s1p", ns=2, soc=0.8, t_end=150.0, dt=30.0)
    ov = ["--set", "solver.electrical_solver=lu", "--set", "solver.thermal_solver=lu"]
    run_cli(case, tmp_path / "ser", 1, ov)
    run_cli(case, tmp_path / "par", 2, ov)
    a, b = read_ts(tmp_path / "ser" / "timeseries.csv"), read_ts(tmp_path / "par" / "timeseries.csv")
    assert list(a) == list(b)
    assert len(a["time [s]"]) == 6
    for k in (k for k in a if "residual" not in k):
        scale = max(np.max(np.abs(a[k])), 1e-12)
        assert np.max(np.abs(a[k] - b[k])) <= 1e-6 * scale, k
    assert np.ptp(a["V_cell_1_1 [V]"]) > 0.01  # the cells did discharge


def liionpack_circuit() -> dict:
    """Rb, Rc, Rt of the liionpack reference, read back from its netlist CSV."""
    rows = [ln.split(",") for ln in (DATA / "liionpack_4s2p_netlist.csv").read_text().splitlines()[1:]]
    vals = {}
    for desc, *_, value in ((r[0], r[3]) for r in rows):
        key = desc.rstrip("0123456789")
        vals.setdefault(key, set()).add(float(value))
    out = {}
    for name, keys in (("Rb", ("Rbn", "Rbp")), ("Rc", ("Rc",)), ("Rt", ("Rtn", "Rtp"))):
        values = set().union(*(vals[k] for k in keys))
        assert len(values) == 1, (name, values)
        out[name] = values.pop()
    return out


@pytest.mark.slow
def test_4s2p_spme_module_in_3d_matches_liionpack_cell_currents(tmp_path):
    """liionpack's 4s2p SPMe module (tests/data/liionpack_4s2p_spme.csv: Rb 1 mOhm, Rc 5 mOhm,
    Rt 0.1 mOhm, 10 A for 30 min then 10 min rest, SOC 0.9, isothermal 298.15 K) as a 3D
    module whose interconnects are those resistors (tests/lumped_network_mesh.py: straight
    bars of sigma = L / (R A) between superconducting node blocks, cells held at 298.15 K).

    10 s steps as liionpack's; from t = 20 s (liionpack's explicit coupling lags one step
    at the start): every cell current within 1 % of liionpack's (measured 0.06 %), the
    parallel imbalance (I minus the 5 A mean, up to 89 mA at 20 s, 46 mA later) within
    4 mA of liionpack's (measured 2.7 mA), the cell voltages within 1 mV (measured 0.5 mV);
    in the rest, the circulating currents (up to 46 mA) within 10 mA (measured 6.3 mA).
    (At 30 s steps: 0.09 %, 4.4 mA, 0.3 mV, 10.5 mA.)
    """
    import yaml
    from lumped_network_mesh import write_module_mesh

    circuit = liionpack_circuit()
    regions, materials = write_module_mesh(tmp_path / "module.msh", 4, 2, **circuit)
    case = {"name": "liionpack_4s2p_3d",
            "geometry": {"mesh_file": {"file": "module.msh", "regions": regions}},
            "materials": materials,
            "cell": {"model": "pybamm", "pybamm": {"model": "SPMe", "parameter_set": "Chen2020"},
                     "initial_soc": 0.9, "sigma_pos": 1.0e8, "sigma_neg": 1.0e8, "k": 50.0, "rho": 2800.0,
                     "cp": 1.0e5},
            "load": {"steps": ["Discharge at 10 A for 30 minutes", "Rest for 10 minutes"]},
            "thermal": {"initial_temperature": 298.15,
                        "boundaries": [{"type": "temperature", "regions": ["exterior"], "T": 298.15}]},
            "solver": {"analysis": "transient", "t_end": 2400.0, "dt": 10.0, "adaptive": False,
                       "electrical_solver": "lu", "thermal_solver": "lu"}}
    path = tmp_path / "module.yaml"
    path.write_text(yaml.safe_dump(case, sort_keys=False))
    run_cli(path, tmp_path / "out")
    ts = read_ts(tmp_path / "out" / "timeseries.csv")
    ref = np.loadtxt(DATA / "liionpack_4s2p_spme.csv", delimiter=",", comments="#", skiprows=2)
    # liionpack's cells V0..V3 are column 1 (stages 1..4), V4..V7 column 2
    names = [f"cell_{s}_{p}" for p in (1, 2) for s in (1, 2, 3, 4)]
    t = ts["time [s]"]
    rows = np.searchsorted(ref[:, 0], t)
    assert np.allclose(ref[rows, 0], t)
    I = np.column_stack([ts[f"I_{n} [A]"] for n in names])
    V = np.column_stack([ts[f"V_{n} [V]"] for n in names])
    I_ref, V_ref = ref[rows, 3:11], ref[rows, 11:19]
    assert np.allclose(I.sum(axis=1)[t <= 1800.0] / 4.0, 10.0, rtol=1e-4)  # 10 A through each stage pair
    dis = (t >= 20.0) & (t <= 1800.0)
    assert np.max(np.abs(I - I_ref)[dis] / np.abs(I_ref[dis])) < 0.01
    imb, imb_ref = I - I.mean(axis=1, keepdims=True), I_ref - I_ref.mean(axis=1, keepdims=True)
    assert np.max(np.abs(imb_ref[dis])) > 0.04  # the resistors do unbalance the module
    assert np.max(np.abs(imb - imb_ref)[dis]) < 4e-3
    assert np.max(np.abs(V - V_ref)[dis]) < 1e-3
    rest = t >= 1820.0
    assert np.max(np.abs(I_ref[rest])) > 0.02
    assert np.max(np.abs(I - I_ref)[rest]) < 0.01


@pytest.mark.slow
def test_pybamm_cells_restart_from_checkpoint_continues_the_run(tmp_path):
    """A 1s1p SPMe run stopped at 60 s (checkpoint every step) and restarted to 120 s gives
    the same time series as the run straight to 120 s (the PyBaMM state vectors go through
    the checkpoint): every column to 1e-7 relative (measured <= 1.2e-9, the thermal solver's
    tolerance; residuals left out)."""
    case = write_case(tmp_path, soc=0.8, t_end=120.0, dt=30.0)
    run_cli(case, tmp_path / "full")
    run_cli(case, tmp_path / "part", extra=("--checkpoint-every", "1", "--set", "solver.t_end=60"))
    cmd = [PY, "-m", "busbarfem", "run", str(case), "--restart", str(tmp_path / "part"), "-q", "--no-cache",
           "--checkpoint-every", "1"]
    subprocess.run(cmd, check=True, timeout=900, env=dict(os.environ, OMP_NUM_THREADS="1"))
    a, b = read_ts(tmp_path / "full" / "timeseries.csv"), read_ts(tmp_path / "part" / "timeseries.csv")
    assert list(a) == list(b) and len(b["time [s]"]) == 5
    for k in (k for k in a if "residual" not in k):
        scale = max(np.max(np.abs(a[k])), 1e-12)
        assert np.max(np.abs(a[k] - b[k])) <= 1e-7 * scale, k


def test_pybamm_cell_heat_support_is_exact(tmp_path):
    """The PyBaMM cells' heat (DG0 per cell body) is integrated over the cell bodies only
    (``heat_support``): after two 60 s steps of a 1s2p SPMe module, the thermal source vector
    and the per-region heat book equal their whole-mesh assemblies
    (:func:`helpers.assert_heat_support_exact`)."""
    from helpers import assert_heat_support_exact, solve_case
    from mpi4py import MPI

    sim = solve_case(write_case(tmp_path, name="1s2p", np_=2, soc=0.9, current=10.0, t_end=120.0),
                     comm=MPI.COMM_SELF, cache_dir=tmp_path / "cache")
    assert set(sim.model.heat_support) >= {"irreversible", "reversible"}
    assert sim.rows[-1]["time [s]"] == pytest.approx(120.0)
    assert_heat_support_exact(sim)
