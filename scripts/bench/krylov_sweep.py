"""Krylov iterations per two-potential electrical solve vs module size; warm start on/off.

Runs ``examples/module_4s2p_discharge.yaml`` grown to ``--series``/``--parallel`` for
``--steps`` fixed steps of ``--dt`` with CG+GAMG forced (``solver.electrical_solver=gamg``),
once with the warm start of :data:`busbarfem.physics.solvers.WARM_START` and once without,
(``--lu-reference``: and once with MUMPS LU) and reports the KSP iterations of every electrical solve (two per call: the source
right-hand side and the V = 1 one), the CPU time of the electrical phase, and the largest
relative differences between the two runs in terminal voltage and cell currents (per call,
as measured after each solve).

    .venv/bin/python scripts/bench/krylov_sweep.py --series 4 --parallel 2 --steps 5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import dolfinx_solver  # noqa: F401  (must precede dolfinx/petsc4py/mpi4py)
import numpy as np
from mpi4py import MPI

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def run(series: int, parallel: int, steps: int, dt: float, warm: bool, extra: list[str],
        kind: str = "gamg") -> dict:
    """One transient with the warm start on or off; returns iterations and answers."""
    from busbarfem.coupling import Simulation
    from busbarfem.mesh import build_mesh
    from busbarfem.physics import solvers

    solvers.WARM_START = warm
    comm = MPI.COMM_WORLD
    ov = [f"geometry.module.series={series}", f"geometry.module.parallel={parallel}",
          "solver.adaptive=false", f"solver.dt={dt}", f"solver.t_end={steps * dt}",
          f"solver.electrical_solver={kind}"] + extra
    case, src = common.load_bench_case("module_4s2p_discharge", ov)
    tmp = tempfile.mkdtemp(prefix="bbf_kry_") if comm.rank == 0 else None
    bundle = build_mesh(case, comm, cache_dir=common.MESH_CACHE)
    sim = Simulation(case, src, comm, outdir=Path(comm.bcast(tmp, root=0)), cache_dir=None)
    sim.setup(bundle)
    its: list[int] = []
    volts: list[float] = []
    currents: list[np.ndarray] = []
    cpu = [0.0]
    checked = solvers.solve_checked

    def counted(ksp, b, x, what, *args, **kw):
        n = checked(ksp, b, x, what, *args, **kw)
        if what == "electrical":
            its.append(n)
            if len(its) == 1 and kind == "gamg":
                pc = ksp.getPC()
                smoother.append(pc.getMGSmoother(1).getType() + "/" + pc.getMGSmoother(1).getPC().getType())
        return n

    smoother: list[str] = []
    solvers.solve_checked = counted
    el_solve = sim.el.solve

    def solve(*a, **k):
        c0 = time.process_time()
        out = el_solve(*a, **k)
        cpu[0] += time.process_time() - c0
        volts.append(out.voltage)
        if sim.cells is not None:
            currents.append(np.asarray(sim.cells.measure_currents(), float).copy())
        return out

    sim.el.solve = solve
    try:
        sim.run()
    finally:
        solvers.solve_checked = checked
    sim.close()
    return {"smoother": smoother, "its": its, "volts": np.array(volts), "currents": currents, "cpu_el": cpu[0],
            "ndofs": sim.el.ndofs, "options": sim.el.options}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--series", type=int, default=4)
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--dt", type=float, default=30.0)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--lu-reference", action="store_true",
                   help="also run MUMPS LU and compare both GAMG runs to it")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    comm = MPI.COMM_WORLD
    load0 = open("/proc/loadavg").read().split()[:3]
    cold = run(a.series, a.parallel, a.steps, a.dt, False, a.overrides)
    warm = run(a.series, a.parallel, a.steps, a.dt, True, a.overrides)
    def diff(x, y):
        n = min(len(x["volts"]), len(y["volts"]))
        dv = float(np.max(np.abs(x["volts"][:n] - y["volts"][:n]) / np.abs(y["volts"][:n])))
        di = 0.0
        for c, w in zip(y["currents"], x["currents"], strict=False):
            di = max(di, float(np.max(np.abs(w - c)) / max(np.max(np.abs(c)), 1e-30)))
        return dv, di

    dv, di = diff(warm, cold)
    ref = {}
    if a.lu_reference:
        lu = run(a.series, a.parallel, a.steps, a.dt, False, a.overrides, kind="lu")
        ref = {"cold_vs_lu_dV_dI": diff(cold, lu), "warm_vs_lu_dV_dI": diff(warm, lu)}
    res = {"case": f"{a.series}s{a.parallel}p", "ranks": comm.size, "ndofs": cold["ndofs"],
           "steps": a.steps, "smoother": cold["smoother"], "its_cold": cold["its"], "its_warm": warm["its"],
           "mean_its_cold": float(np.mean(cold["its"])), "mean_its_warm": float(np.mean(warm["its"])),
           "cpu_electrical_cold_s": cold["cpu_el"], "cpu_electrical_warm_s": warm["cpu_el"],
           "max_rel_dV": dv, "max_rel_dI_cell": di, **ref, "load_before": load0,
           "load_after": open("/proc/loadavg").read().split()[:3]}
    if comm.rank == 0:
        print({k: v for k, v in res.items()})
    common.emit(res, comm, a.out)


if __name__ == "__main__":
    main()
