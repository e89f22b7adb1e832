"""Times liionpack on the 4s2p module of ``scripts/gen_liionpack_4s2p.py``: 1C for 1800 s.

The busbarfem side of issue 20's "3D 4s2p 1C discharge CPU <= 2x liionpack's" item. Same
circuit (``setup_circuit(**CIRCUIT)``: 4 stages of 2 parallel cells, Rb/Rc/Rt) and the same
cells (SPMe Chen2020 through ``spme_simulation``) as the reference generator, imported from
it; the load is only the 10 A (1C per cell) discharge for 30 min (period 10 s), without the
generator's 10 min rest, to match ``b2_module.py --full --set solver.t_end=1800``.

Runs in liionpack's own venv (it pins an older PyBaMM than busbarfem's)::

    /work/venvs/liionpack/bin/python scripts/bench/liionpack_4s2p.py [--out FILE]

Reports (JSON on stdout, and to ``--out``) the CPU time (``time.process_time`` of this
process; liionpack's ``lp.solve`` runs serially here, ``nproc=1``, so no child process
CPU is missed) two ways: ``cpu_process_s`` from interpreter start (imports of pybamm,
liionpack, casadi included) and ``cpu_solve_s`` for set-up + solve only (netlist,
parameter values, experiment, ``lp.solve``: model build, discretisation, casadi
integration of the 8 cells and the circuit solves), plus wall times and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))


def _process_cpu() -> float:
    """CPU of this process since it started (user + system) [s]."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _stack_versions() -> dict:
    """Versions of the packages liionpack's CPU depends on (its time moved 2-3.6x between
    sessions' machines while busbarfem's moved 2x: record what ran)."""
    from importlib import metadata

    out = {}
    for name in ("liionpack", "pybamm", "casadi", "pybammsolvers", "numpy", "scipy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def main() -> int:
    """Run the 1800 s discharge once and print the timings."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--t-end", type=float, default=1800.0, help="discharge time [s] (default 1800)")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    import numpy as np
    import liionpack as lp
    import pybamm
    from gen_liionpack_4s2p import CIRCUIT, spme_simulation

    t_imp = _process_cpu()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    netlist = lp.setup_circuit(**CIRCUIT)
    experiment = pybamm.Experiment([f"Discharge at 10 A for {a.t_end:g} seconds"], period="10 seconds")
    pv = pybamm.ParameterValues("Chen2020")
    out = lp.solve(netlist=netlist, sim_func=spme_simulation, parameter_values=pv,
                   experiment=experiment, initial_soc=0.9, nproc=1,
                   output_variables=["Terminal voltage [V]"])
    cpu_solve = time.process_time() - cpu0
    wall_solve = time.perf_counter() - wall0
    t = np.asarray(out["Time [s]"])
    res = {
        "tool": f"liionpack {lp.__version__}, PyBaMM {pybamm.__version__}", "case": "4s2p",
        "circuit": {k: v for k, v in CIRCUIT.items()}, "cells": "SPMe Chen2020, isothermal, SOC0 0.9",
        "load": f"10 A for {a.t_end:g} s, period 10 s", "t_end_s": float(t[-1]), "rows": int(t.size),
        "pack_voltage_end_V": float(np.asarray(out["Pack terminal voltage [V]"])[-1]),
        "cpu_process_s": _process_cpu(), "cpu_imports_s": t_imp, "cpu_solve_s": cpu_solve,
        "wall_solve_s": wall_solve, "load_average": list(os.getloadavg()), "stack": _stack_versions(),
    }
    text = json.dumps(res, indent=1)
    print(text)
    if a.out is not None:
        a.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
