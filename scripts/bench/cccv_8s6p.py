"""Benchmark: the full 8s6p CC-CV charge in 3D (``examples/module_8s6p_cccv.yaml``) and its step sequence.

Runs the example through ``Simulation`` (``--reduced`` switches on
``solver.electrical.reduced``; ``--set`` overrides, e.g. ``mesh.size=...``) and records,
besides wall and CPU time and the phase timings, every step attempt of the shared stepper:
accepted and rejected attempts per load step (CC, CV), the length of the first step after
each event, the stop time and the final cell states (SOC, current, voltage per cell), and the
load average before and after (the machine is shared). Measured, never asserted.

    .venv/bin/mpirun -n 2 .venv/bin/python scripts/bench/cccv_8s6p.py --reduced --out results/cccv_8s6p.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import dolfinx_solver  # noqa: F401  (must precede dolfinx/petsc4py/mpi4py)
from mpi4py import MPI

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def trace_attempts(log: list) -> None:
    """Wrap ``TransientStepper.run`` so every trial and accept of its system lands in ``log``
    as ``(kind, step, t_start, h, load_step_index)``."""
    from busbarfem.coupling import stepper

    run = stepper.TransientStepper.run

    def traced(self, *a, **k):
        system = self.system
        trial, accept = system.trial, system.accept

        def t_(t, h, step, start, i_start):
            log.append(("trial", step, t, h, system.controller.step_index))
            return trial(t, h, step, start, i_start)

        def a_(t, h, step, result, t_start):
            log.append(("accept", step, t_start, h, system.controller.step_index))
            return accept(t, h, step, result, t_start)

        system.trial, system.accept = t_, a_
        return run(self, *a, **k)

    stepper.TransientStepper.run = traced


def step_sequence(log: list, events: list) -> dict:
    """Attempts per load step, and the first accepted step after each event."""
    phases: dict[int, dict] = {}
    for kind, _step, _t, _h, idx in log:
        p = phases.setdefault(idx, {"trials": 0, "accepted": 0})
        p["trials" if kind == "trial" else "accepted"] += 1
    acc = [(t, h) for kind, _s, t, h, _i in log if kind == "accept"]
    after = []
    for ev in events:
        nxt = next(((t, h) for t, h in acc if t >= ev["time"] - 1e-9), None)
        after.append({"event": ev.get("kind"), "time": ev["time"], "next_step_s": None if nxt is None else nxt[1]})
    trials = sum(p["trials"] for p in phases.values())
    accepted = sum(p["accepted"] for p in phases.values())
    return {"trials": trials, "accepted": accepted, "extra_attempts": trials - accepted,
            "per_load_step": {str(k): v for k, v in sorted(phases.items())}, "after_events": after,
            "accepted_steps": acc}


def main() -> None:
    from busbarfem.coupling import Simulation
    from busbarfem.mesh import build_mesh

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reduced", action="store_true", help="solver.electrical.reduced.enabled=true")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--capacity", action="store_true",
                   help="measure common.parallel_capacity first (what 2 processes get from the machine)")
    a = p.parse_args()
    comm = MPI.COMM_WORLD
    capacity = common.capacity_collective(comm) if a.capacity else None
    load_before = list(os.getloadavg())
    ov = list(a.overrides) + (["solver.electrical.reduced.enabled=true"] if a.reduced else [])
    case, src = common.load_bench_case("module_8s6p_cccv", ov)
    log: list = []
    trace_attempts(log)
    tmp = tempfile.mkdtemp(prefix="bbf_bench_") if comm.rank == 0 else None
    outdir = Path(comm.bcast(tmp, root=0))
    t_all, cpu0 = time.perf_counter(), time.process_time()
    t0 = time.perf_counter()
    bundle = build_mesh(case, comm, cache_dir=common.MESH_CACHE)
    t_mesh = time.perf_counter() - t0
    sim = Simulation(case, src, comm, outdir=outdir, cache_dir=None)
    sim.setup(bundle)
    sim.timings["mesh"] = t_mesh
    summary = sim.run()
    sim.close()
    wall = comm.allreduce(time.perf_counter() - t_all, op=MPI.MAX)
    cpu = comm.allreduce(time.process_time() - cpu0, op=MPI.SUM)
    timings = {k: comm.allreduce(v, op=MPI.MAX) for k, v in sim.timings.items()}
    cells = summary.get("cells") or {}
    res = {
        "case": "8s6p CC-CV", "ranks": comm.size, "reduced": a.reduced, "overrides": ov,
        "cells": bundle.mesh.topology.index_map(3).size_global, "ndofs_electrical": sim.el.ndofs,
        "wall_s": wall, "cpu_s": cpu, "timings": timings,
        "load_average_before": load_before, "load_average_after": list(os.getloadavg()),
        "stop_reason": summary.get("stop_reason"), "t_end_s": sim.rows[-1]["time [s]"] if sim.rows else 0.0,
        "events": sim.events, "steps": step_sequence(log, sim.events),
        "cell_states": {n: {k: c.get(k) for k in ("soc", "current_A", "voltage_V", "T_mean_K")}
                        for n, c in cells.items()},
        "linear_solvers": summary.get("linear_solvers"), "maxrss_MiB": common.mem_per_rank(comm),
        "machine": common.machine_info(), "parallel_capacity": capacity,
    }
    common.emit(res, comm, a.out)


if __name__ == "__main__":
    main()
