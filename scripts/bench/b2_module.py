"""Benchmarks B2/B3 worker: an nSmP 21700 module transient through ``Simulation``.

B2: ``examples/module_4s2p_discharge.yaml`` (4s2p LG M50, 1C discharge) for ``--steps``
fixed steps of ``--dt`` (default 20 x 30 s). B3: the same case grown to 8s6p
(``--series 8 --parallel 6``), one coupled step. ``--full`` instead runs the example's
adaptive steps to the end of the 1C discharge and reports the wall time. The electrical
step is the full two-potential solve (``solver.electrical.reduced.enabled=false``, although
the example itself enables the reduced step since session 13, so that the B2 numbers of
every session compare); ``--reduced`` switches on the reduced step (the cell-port basis of
:mod:`busbarfem.physics.reduced_ports`). CPU, summed over the ranks:
``cpu_s`` from the mesh read to the end (``time.process_time``; imports excluded),
``cpu_solve_s`` the same without the mesh read (set-up + run: what
``liionpack_4s2p.py``'s ``cpu_solve_s`` measures for liionpack), ``cpu_process_s`` the whole
process from interpreter start (``getrusage``, imports included: its ``cpu_process_s``).

Phases come from ``Simulation.timings`` (mesh, setup, solve_electrical, solve_thermal,
output); the cell-state work (``CellCoupling.refresh/measure_currents/advance``) and the
per-step records (heat flows, time series) are timed here by wrapping those methods on
the instance, so ``cell_update`` and ``record`` are split out of the electrical phase.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import dolfinx_solver  # noqa: F401  (must precede dolfinx/petsc4py/mpi4py)
from mpi4py import MPI

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def _wrap(obj, name: str, sink: dict, key: str, its: list | None = None) -> None:
    fn = getattr(obj, name)

    def timed(*a, **k):
        t0 = time.perf_counter()
        out = fn(*a, **k)
        sink[key] = sink.get(key, 0.0) + time.perf_counter() - t0
        if its is not None:
            its.append(out.iterations if hasattr(out, "iterations") else int(out))
        return out

    setattr(obj, name, timed)


def _mark(obj, name: str, marks: list) -> None:
    """Append the wall clock to ``marks`` after every call of ``obj.name``."""
    fn = getattr(obj, name)

    def marked(*a, **k):
        out = fn(*a, **k)
        marks.append(time.perf_counter())
        return out

    setattr(obj, name, marked)


def main() -> None:
    from busbarfem.coupling import Simulation
    from busbarfem.mesh import build_mesh

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--series", type=int, default=4)
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--dt", type=float, default=30.0)
    p.add_argument("--full", action="store_true", help="the example's adaptive 1C discharge to the end")
    p.add_argument("--reduced", action="store_true",
                   help="solver.electrical.reduced.enabled=true (default: false, the full solve)")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--capacity", action="store_true",
                   help="measure common.parallel_capacity first (what 2 processes get from the machine)")
    a = p.parse_args()
    comm = MPI.COMM_WORLD
    capacity = common.capacity_collective(comm) if a.capacity else None
    ov = [f"geometry.module.series={a.series}", f"geometry.module.parallel={a.parallel}"]
    if not a.full:
        ov += ["solver.adaptive=false", f"solver.dt={a.dt}", f"solver.t_end={a.steps * a.dt}"]
    ov += [f"solver.electrical.reduced.enabled={'true' if a.reduced else 'false'}"]
    case, src = common.load_bench_case("module_4s2p_discharge", ov + a.overrides)
    tmp = tempfile.mkdtemp(prefix="bbf_bench_") if comm.rank == 0 else None
    outdir = Path(comm.bcast(tmp, root=0))
    t_all = time.perf_counter()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    bundle = build_mesh(case, comm, cache_dir=common.MESH_CACHE)
    t_mesh = time.perf_counter() - t0
    cpu_mesh = time.process_time() - cpu0
    sim = Simulation(case, src, comm, outdir=outdir, cache_dir=None)
    sim.setup(bundle)
    sim.timings["mesh"] = t_mesh
    extra: dict[str, float] = {}
    its_el: list[int] = []
    its_th: list[int] = []
    _wrap(sim.el, "solve", extra, "ksp_electrical", its_el)
    _wrap(sim.th, "solve", extra, "ksp_thermal", its_th)
    if sim.cells is not None:
        for m in ("refresh", "measure_currents", "advance", "update_temperature"):
            _wrap(sim.cells, m, extra, "cell_update")
    _wrap(sim, "_record", extra, "record")
    marks: list[float] = []  # wall clock at the end of each record: row 0 after the t = 0 call, row k after step k
    _mark(sim, "_record", marks)
    rss_setup = common.mem_per_rank(comm)
    summary = sim.run()
    sim.close()
    wall = comm.allreduce(time.perf_counter() - t_all, op=MPI.MAX)
    cpu = comm.allreduce(time.process_time() - cpu0, op=MPI.SUM)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu_process = comm.allreduce(ru.ru_utime + ru.ru_stime, op=MPI.SUM)
    cpu_solve = cpu - comm.allreduce(cpu_mesh, op=MPI.SUM)
    timings = {k: comm.allreduce(v, op=MPI.MAX) for k, v in sim.timings.items()}
    extra = {k: comm.allreduce(v, op=MPI.MAX) for k, v in extra.items()}
    # the transient records its initial state (one electrical solve at t = 0) as row 0
    nsteps = max(len(sim.rows) - 1, 1)
    res = {
        "case": f"{a.series}s{a.parallel}p", "ranks": comm.size, "full_discharge": a.full,
        "cells": bundle.mesh.topology.index_map(3).size_global,
        "ndofs_electrical": sim.el.ndofs, "ndofs_thermal": sim.th.ndofs,
        "options_electrical": sim.el.options, "options_thermal": sim.th.options,
        "steps": nsteps, "rows": len(sim.rows), "electrical_solves": len(its_el), "thermal_solves": len(its_th),
        "iterations": {"electrical": its_el, "thermal": its_th},
        "timings": timings, "split": extra, "wall_s": wall, "cpu_s": cpu, "reduced": a.reduced,
        "cpu_process_s": cpu_process, "cpu_solve_s": cpu_solve,
        "linear_solvers": summary.get("linear_solvers"), "load_average": list(__import__("os").getloadavg()),
        "per_step_s": (timings.get("solve_electrical", 0) + timings.get("solve_thermal", 0)
                       + extra.get("record", 0) + timings.get("output", 0)) / max(nsteps, 1),
        # each step timed on its own (record to record, max over ranks): solve, cell update,
        # thermal, its record and output; the first entry is step 1 (after the t = 0 call)
        "step_wall_s": [comm.allreduce(b - a_, op=MPI.MAX) for a_, b in zip(marks, marks[1:])],
        "stop_reason": summary.get("stop_reason"), "t_end_s": sim.rows[-1]["time [s]"] if sim.rows else 0.0,
        "terminal": summary.get("terminal"), "T_max_K": summary.get("T_max", {}).get("value"),
        "maxrss_MiB_after_setup": rss_setup, "maxrss_MiB": common.mem_per_rank(comm),
        "parallel_capacity": capacity,
    }
    common.emit(res, comm, a.out)


if __name__ == "__main__":
    main()
