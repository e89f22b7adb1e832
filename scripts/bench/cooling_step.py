"""Time per step of the cooled 4s2p module vs the same module without coolant (issue 15: 1.3x).

Runs ``examples/module_4s2p_cold_plate.yaml`` twice through the CLI with a fixed step (no
adaptivity, so both take the same steps): as it is, and with its ``cooling:`` section removed
(the same module, plate and pad gone, natural convection everywhere). The time per step is the
run loop's wall time (``timings_s.total`` minus the initial state) over the number of steps;
the thermal solves per step and the coolant's Picard iterations are printed too, with the load
average of the machine (the numbers mean little on a busy machine).

``--interleaved`` instead builds both models in one process and alternates their steps (the
electrical step, the thermal step with the coolant's Picard iteration, the contributions'
advance), so both see the same machine load; it prints each step's time and the ratio of the
sums (the t = 0 state, meshing and output are left out).

    python scripts/bench/cooling_step.py [--size 0.012] [--steps 6] [--dt 30] [--interleaved]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "examples" / "module_4s2p_cold_plate.yaml"


def run(case: Path, out: Path, size: float, steps: int, dt: float) -> dict:
    """One CLI run; its summary."""
    from busbarfem.cli import main

    args = ["run", str(case), "-o", str(out), "-q", "--no-report", "--set", f"mesh.size={size}",
            "--set", f"solver.t_end={steps * dt}", "--set", f"solver.dt={dt}", "--set", "solver.adaptive=false",
            "--set", f"solver.dt_max={dt}"]
    if main(args) != 0:
        raise SystemExit(f"run of {case} failed")
    return json.loads((out / "summary.json").read_text())


def interleaved(cases: dict, size: float, steps: int, dt: float) -> dict:
    """Both models in this process, their steps alternated; per-step wall times [s]."""
    import time

    from mpi4py import MPI

    from busbarfem.case.loader import load_case
    from busbarfem.coupling import Simulation

    ov = [f"mesh.size={size}", f"solver.t_end={dt}", f"solver.dt={dt}", "solver.adaptive=false", f"solver.dt_max={dt}"]
    sims = {}
    for label, case in cases.items():
        c, src = load_case(case, ov)
        sims[label] = Simulation(c, src, MPI.COMM_WORLD, outdir=None)
        sims[label].setup()
        sims[label].run()  # t = 0 and one step: factorisations and the coolant's history set up
    times: dict = {k: [] for k in sims}
    t = dt
    for step in range(2, 2 + steps):
        for label, sim in sims.items():
            m = sim.model
            t0 = time.perf_counter()
            m.thermal.restart_step()
            sol = m.electrical_step(t + 0.5 * dt, step, dt, None)
            m.thermal_step(dt, step)
            m.advance_contributions(t, dt, sol)
            m.thermal.advance()
            times[label].append(time.perf_counter() - t0)
        t += dt
    for sim in sims.values():
        sim.close()
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=float, default=0.012, help="mesh.size [m]")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--dt", type=float, default=30.0)
    p.add_argument("--interleaved", action="store_true", help="alternate the two models' steps in one process")
    a = p.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = yaml.safe_load(CASE.read_text())
        data.pop("cooling")
        data["name"] = "module_4s2p_no_coolant"
        plain = tmp / "no_coolant.yaml"
        plain.write_text(yaml.safe_dump(data))
        if a.interleaved:
            times = interleaved({"cooled": CASE, "no coolant": plain}, a.size, a.steps, a.dt)
            c, n = sum(times["cooled"]), sum(times["no coolant"])
            print(json.dumps({"load_average": [load, os.getloadavg()], "size": a.size, "steps": a.steps, "dt": a.dt,
                              "step_s": times, "ratio_per_step": [x / y for x, y in zip(times["cooled"], times["no coolant"])],
                              "ratio": c / n, "target": 1.3}, indent=2))
            sys.exit(0)
        res = {}
        for label, case in (("cooled", CASE), ("no coolant", plain)):
            s = run(case, tmp / label.replace(" ", "_"), a.size, a.steps, a.dt)
            t = s["timings_s"]
            res[label] = {"per_step_s": t["total"] / a.steps, "thermal_solves": s["linear_solvers"]["thermal"]["solves"],
                          "solve_thermal_s": t["solve_thermal"], "solve_electrical_s": t["solve_electrical"],
                          "dofs_thermal": s["dofs"]["thermal"], "mesh_cells": s["mesh_cells"],
                          "picard_mean": (s.get("cooling") or {}).get("coupling_iterations_mean")}
    ratio = res["cooled"]["per_step_s"] / res["no coolant"]["per_step_s"]
    print(json.dumps({"load_average": load, "size": a.size, "steps": a.steps, "dt": a.dt, **res,
                      "ratio": ratio, "target": 1.3}, indent=2))
    sys.exit(0)


if __name__ == "__main__":
    main()
