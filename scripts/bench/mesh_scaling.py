"""Meshing time vs cell count (cold cache): instanced and plain meshing of nSmP modules.

For each module size, ``generate_model`` of ``examples/module_4s2p_discharge.yaml`` grown
to ``--sizes`` (default 2s1p, 4s2p, 4s6p, 8s6p = 2, 8, 24, 48 cells) runs without the
mesh cache, with meshing by instancing (the default) and, with ``--plain``, without it
(``instancing.ENABLED = False``). Reported per run: tetrahedra, CPU seconds of the process
(``time.process_time``: the machine is shared, wall time is given but noisy), wall
seconds, the instancing phase split, mesh quality, and the load average before/after.

    .venv/bin/python scripts/bench/mesh_scaling.py [--plain] [--sizes 2x1 4x2 4x6 8x6] [--out f.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import dolfinx_solver  # noqa: F401  (must precede dolfinx/petsc4py/mpi4py)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def one(series: int, parallel: int, instanced: bool) -> dict:
    """Mesh one module size in a fresh gmsh model; returns its numbers."""
    import gmsh

    from busbarfem.geometry import instancing
    from busbarfem.geometry.model import generate_model

    case, _ = common.load_bench_case("module_4s2p_discharge", [
        f"geometry.module.series={series}", f"geometry.module.parallel={parallel}"])
    instancing.ENABLED = instanced
    if not gmsh.isInitialized():
        gmsh.initialize(interruptible=False)
    gmsh.option.restoreDefaults()
    gmsh.option.setNumber("General.Terminal", 0)
    gmsh.clear()
    gmsh.model.add(f"m{series}x{parallel}")
    load0 = open("/proc/loadavg").read().split()[:3]
    c0, t0 = time.process_time(), time.perf_counter()
    info = generate_model(case.geometry, case.mesh, None)  # no cache: cold meshing
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    q = info.parameters["quality"]
    return {"series": series, "parallel": parallel, "cells": series * parallel,
            "instanced": instanced, "tets": q["elements"], "cpu_s": round(cpu, 2),
            "wall_s": round(wall, 2), "load_before": load0,
            "load_after": open("/proc/loadavg").read().split()[:3],
            "min_dihedral_deg": round(q["min_dihedral_deg"], 2), "mean_gamma": round(q["mean_gamma"], 3),
            "max_aspect": round(q["max_aspect"], 1),
            "algorithm": info.parameters["algorithm"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", default=["2x1", "4x2", "4x6", "8x6"])
    p.add_argument("--plain", action="store_true", help="also mesh without instancing")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    rows = []
    for size in a.sizes:
        s, m = (int(v) for v in size.split("x"))
        for inst in ([True, False] if a.plain else [True]):
            r = one(s, m, inst)
            rows.append(r)
            print(f"{s}s{m}p ({r['cells']} cells) {'instanced' if inst else 'plain':9s} "
                  f"tets {r['tets']:7d} cpu {r['cpu_s']:6.2f} s wall {r['wall_s']:6.2f} s "
                  f"min dihedral {r['min_dihedral_deg']:.2f} mean gamma {r['mean_gamma']:.3f} "
                  f"load {' '.join(r['load_before'])}", flush=True)
    inst = [r for r in rows if r["instanced"]]
    if len(inst) >= 2:
        a0, a1 = inst[0], inst[-1]
        print(f"instanced: {(a1['cpu_s'] - a0['cpu_s']) / (a1['cells'] - a0['cells']):.3f} s CPU per "
              f"added cell ({a0['cells']} -> {a1['cells']} cells)")
    if a.out:
        a.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
