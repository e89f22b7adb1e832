"""Reference cell currents of a 4s2p SPMe module from liionpack (oracle for issue 17).

Runs in its own venv (liionpack pins an older PyBaMM than busbarfem's):

    PY=$(bash scripts/find_python.sh); $PY -m venv /work/venvs/liionpack
    /work/venvs/liionpack/bin/pip install liionpack==0.4.0 pybamm==25.1.1 'pandas<3'
    /work/venvs/liionpack/bin/python scripts/gen_liionpack_4s2p.py

Module: liionpack ``setup_circuit(Np=2, Ns=4, Rb=1e-3, Rc=5e-3, Rt=1e-4,
configuration="series-groups")`` (terminals "left"): four stages of two parallel cells (as
busbarfem's modules), per cell a connection resistor Rc in series, busbar segments Rb
between the cells of a stage, terminal resistors Rt. Cells: PyBaMM SPMe,
Chen2020, isothermal 298.15 K, initial SOC 0.9; load: 10 A discharge (1C per cell) for
30 min, then 10 min rest, 10 s period. Writes

* tests/data/liionpack_4s2p_spme.csv: time [s], pack current [A], pack voltage [V], and
  the current [A] (> 0 discharges) and terminal voltage [V] of each cell V0..V7 in
  liionpack's order of the netlist's voltage sources;
* tests/data/liionpack_4s2p_netlist.csv: the netlist (desc, node1, node2, value) with
  the resistor values used (the V / Ri values are liionpack's initial placeholders).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "liionpack_4s2p_spme.csv"
NET = ROOT / "tests" / "data" / "liionpack_4s2p_netlist.csv"
CIRCUIT = dict(Np=2, Ns=4, Rb=1e-3, Rc=5e-3, Rt=1e-4, Ri=1e-2, V=4.0, I=10.0, configuration="series-groups")


def spme_simulation(parameter_values=None):
    """liionpack's basic_simulation with the SPMe instead of the SPM."""
    import liionpack as lp
    import pybamm

    model = lp.add_events_to_model(pybamm.lithium_ion.SPMe())
    param = pybamm.ParameterValues("Chen2020") if parameter_values is None else parameter_values.copy()
    return pybamm.Simulation(model=model, parameter_values=param,
                             solver=pybamm.CasadiSolver(mode="safe"))


def main() -> int:
    """Run liionpack and write the two CSVs."""
    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
    import liionpack as lp
    import pybamm

    netlist = lp.setup_circuit(**CIRCUIT)
    netlist.to_csv(NET, index=False)
    experiment = pybamm.Experiment(["Discharge at 10 A for 30 minutes", "Rest for 10 minutes"],
                                   period="10 seconds")
    pv = pybamm.ParameterValues("Chen2020")
    out = lp.solve(netlist=netlist, sim_func=spme_simulation, parameter_values=pv,
                   experiment=experiment, initial_soc=0.9,
                   output_variables=["Terminal voltage [V]"])
    t = np.asarray(out["Time [s]"])
    cur = np.asarray(out["Cell current [A]"])
    volt = np.asarray(out["Terminal voltage [V]"])
    n = cur.shape[1]
    header = ["time [s]", "pack current [A]", "pack voltage [V]"]
    header += [f"I_V{i} [A]" for i in range(n)] + [f"V_V{i} [V]" for i in range(n)]
    data = np.column_stack([t, out["Pack current [A]"], out["Pack terminal voltage [V]"], cur, volt])
    with open(OUT, "w", encoding="utf-8") as fh:
        fh.write(f"# liionpack {lp.__version__}, PyBaMM {pybamm.__version__}: setup_circuit({CIRCUIT}), "
                 "SPMe Chen2020 isothermal 298.15 K, initial SOC 0.9, 10 A for 30 min then rest 10 min\n")
        fh.write(",".join(header) + "\n")
        np.savetxt(fh, data, delimiter=",", fmt="%.7g")
    print(f"written: {OUT} ({t.size} rows, {n} cells), {NET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
