"""Benchmark B1 worker: the welded L busbar at one mesh level, busbarfem vs bare DOLFINx.

Runs under any number of ranks (``mpirun -n N``) and writes one JSON record:

* mesh: Gmsh build (or cache load) and uniform refinement;
* setup: ``Simulation.setup`` (forms, matrices, KSPs, writers);
* assemble_el: one electrical matrix assembly (sigma(T) changes every step, so every
  electrical solve re-assembles);
* solve_el: one full ``ElectricalProblem.solve`` at a target current (sigma(T) refresh
  after a temperature change, assembly, PC set-up, KSP solve(s), terminal reaction). B1 is a passive conductor: one KSP solve per call
  (with cells there are two, with the same operator, for the equipotential terminal);
* thermal_first / thermal_next: the first backward-Euler step (matrix assembly + PC
  set-up + solve) and the following steps at the same dt (PC reused);
* bare_solve: the bare-DOLFINx ``LinearProblem`` of :mod:`bare_dolfinx`, same mesh and
  options, timed in the same process, each repeat right after busbarfem's (interleaved);
* KSP iterations, peak RSS per rank, the terminal resistance and T_max for the
  serial-vs-parallel check.

Each timed phase is repeated ``--repeats`` times; the JSON keeps best/median/max.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dolfinx_solver  # noqa: F401  (must precede dolfinx/petsc4py/mpi4py)
import numpy as np
from mpi4py import MPI

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from bare_dolfinx import BareConduction  # noqa: E402


def main() -> None:
    from busbarfem.coupling import Simulation
    from busbarfem.physics import solvers

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--level", default="0.25M", choices=list(common.B1_LEVELS))
    p.add_argument("--solver", default="gamg", choices=["gamg", "lu", "auto"])
    p.add_argument("--rtol", type=float, default=1e-8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--thermal-steps", type=int, default=4, help="steps after the first at fixed dt")
    p.add_argument("--dt", type=float, default=1.0)
    p.add_argument("--no-bare", action="store_true")
    p.add_argument("--bare-variants", default="const,temperature",
                   help="bare sigma variants: const (DG0 sigma, the hand-written baseline), temperature")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    comm = MPI.COMM_WORLD
    overrides = common.level_overrides(a.level) + [
        f"solver.electrical_solver={a.solver}", f"solver.thermal_solver={a.solver}", f"solver.rtol={a.rtol}"]
    case, src = common.load_bench_case("b1_lbar_welded", overrides)
    timer = common.Timer(comm)
    mem = common.MemTrace(comm)
    mem.mark("start")
    with timer("mesh"):
        bundle, mesh_t = common.build_level(case, comm, common.B1_LEVELS[a.level][1])
    mem.mark("mesh")
    sim = Simulation(case, src, comm, outdir=None, cache_dir=None)
    with timer("setup"):
        sim.setup(bundle)
    el, th = sim.el, sim.th
    mem.mark("setup")
    rss_setup = common.mem_per_rank(comm)
    current = case.load.current
    for _ in range(a.repeats):
        with timer("assemble_el"):
            el._assemble_matrix()
    mem.mark("assemble_el")
    # bare baselines set up now, so their solves can be interleaved with busbarfem's:
    # machine drift (frequency, other jobs, memory state) then hits both alike
    bares = {}
    bares_run = not a.no_bare
    if not a.no_bare:
        from busbarfem.materials import resolve_materials

        mats = resolve_materials(case.materials)
        T_init = case.thermal.initial_temperature
        for variant in a.bare_variants.split(","):
            with timer(f"bare_setup_{variant}"):
                bares[variant] = BareConduction(bundle, mats, el.options, T_init, order=bundle.element_order,
                                                sigma=variant)
    its_el, its_b = [], {v: [] for v in bares}
    T_el0 = el.T.x.array.copy()
    for _ in range(a.repeats):
        # a new temperature each time, as in a transient step: the solve re-evaluates sigma(T)
        el.T.x.array[:] += 1.0e-3
        with timer("solve_el"):
            sol = el.solve("current", current)
        its_el.append(sol.iterations)
        for variant, bare in bares.items():
            with timer(f"bare_solve_{variant}"):
                its_b[variant].append(bare.solve())
    mem.mark("solve_el")
    el.T.x.array[:] = T_el0  # the reported resistance is at the initial temperature (untimed)
    sol = el.solve("current", current)
    # thermal: the first step assembles and sets the PC up; later steps at the same dt reuse it
    its_th_first, its_th_next = [], []
    T0 = th.T.x.array.copy()
    for _ in range(a.repeats):
        th.T.x.array[:] = T0
        th.T_n.x.array[:] = T0
        th._assembled_key = None  # force the first-step path (assembly + PC set-up)
        with timer("thermal_first"):
            its_th_first.append(th.solve(a.dt))
    th.advance()
    for _ in range(a.thermal_steps):
        with timer("thermal_next"):
            its_th_next.append(th.solve(a.dt))
        th.advance()
    mem.mark("thermal")
    nown = th.V.dofmap.index_map.size_local
    tmax = comm.allreduce(float(th.T.x.array[:nown].max()), op=MPI.MAX)
    result = {
        "case": "B1", "level": a.level, "ranks": comm.size, "solver": a.solver,
        "cells": bundle.mesh.topology.index_map(3).size_global,
        "ndofs_electrical": el.ndofs, "ndofs_thermal": th.ndofs,
        "options_electrical": el.options, "options_thermal": th.options,
        "iterations": {"electrical": its_el, "thermal_first": its_th_first, "thermal_next": its_th_next},
        "resistance_ohm": sol.voltage / sol.current, "T_max_K": tmax, "mesh": mesh_t,
        "maxrss_MiB_after_setup": rss_setup,
    }
    for variant, bare in bares.items():
        result[f"bare_{variant}"] = {"iterations": its_b[variant], "resistance_ohm": bare.resistance()}
        # same operator check: busbarfem's V = 1 solution vs the bare one (at T0)
        if variant == "temperature":
            el.T.x.array[:] = case.thermal.initial_temperature
            el.solve("voltage", 1.0)
            d = el._phi_b.x.array - bare.problem.u.x.array
            nloc = el.V.dofmap.index_map.size_local
            num = comm.allreduce(float(np.dot(d[:nloc], d[:nloc])), op=MPI.SUM)
            den = comm.allreduce(float(np.dot(el._phi_b.x.array[:nloc], el._phi_b.x.array[:nloc])), op=MPI.SUM)
            result["bare_vs_busbarfem_rel_l2"] = (num / den) ** 0.5
    bares.clear()
    # peak memory per (electrical) dof; with the bare baselines in the same process it
    # includes theirs: --no-bare gives busbarfem's own figure (compare bare_dolfinx.py alone)
    result["memory"] = mem.summary(el.ndofs)
    result["memory"]["includes_bare"] = bool(bares_run)
    result["timings"] = timer.summary()
    result["maxrss_MiB"] = common.mem_per_rank(comm)
    result["solver_limit_lu_dofs"] = solvers.LU_DOF_LIMIT
    common.emit(result, comm, a.out)


if __name__ == "__main__":
    main()
