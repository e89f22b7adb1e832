"""Shared helpers of the benchmark scripts: case loading, mesh levels, timers, memory.

Mesh levels. Gmsh meshing of the thin-sheet B1 geometry costs minutes for a few hundred
thousand cells on this machine, so the larger B1 sizes are reached by uniform
refinement of a cached Gmsh mesh (``dolfinx.mesh.refine``, every tet split in 8; cell
and facet tags carried over with ``transfer_meshtag``). A level is
``(case overrides, refinements)`` (:data:`B1_LEVELS`); the Gmsh part is cached in
``scripts/bench/results/meshes`` (keyed by the busbarfem mesh cache key).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import dolfinx_solver  # noqa: F401  (must precede dolfinx/petsc4py/mpi4py)
import numpy as np
from mpi4py import MPI

import dolfinx
from dolfinx import mesh as dmesh

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parents[1]
RESULTS = BENCH_DIR / "results"
MESH_CACHE = RESULTS / "meshes"
CASES = BENCH_DIR / "cases"


def load_bench_case(name: str, overrides: list[str] | None = None):
    """``(case, source)`` of ``scripts/bench/cases/<name>.yaml`` or an examples/ file."""
    from busbarfem.case.loader import load_case

    path = CASES / f"{name}.yaml"
    if not path.is_file():
        path = REPO / "examples" / f"{name}.yaml"
    return load_case(path, overrides or [])


def _transfer_tags(mt, parent, new, parent_cell, parent_facet):
    """Cell or facet tags of ``parent`` carried to the refined mesh ``new``.

    ``dolfinx.mesh.transfer_meshtag`` does this in serial but aborts in parallel
    (DOLFINx 0.11, heap corruption at >= 2 ranks on the B1 meshes), hence this version.
    ``parent_cell``/``parent_facet`` are in the refined mesh's *input* cell order, so new
    cell ``c`` has parent ``parent_cell[original_cell_index[c]]`` (a local index).
    """
    tdim = parent.topology.dim
    n_new = new.topology.index_map(tdim).size_local
    order = np.array(new.topology.original_cell_index[:n_new], dtype=np.int64)
    order -= order.min() if n_new and order.max() >= len(parent_cell) else 0
    pc = np.asarray(parent_cell, dtype=np.int64)[order]
    if mt.dim == tdim:
        n_par = parent.topology.index_map(tdim).size_local + parent.topology.index_map(tdim).num_ghosts
        val = np.full(n_par, -1, dtype=np.int64)
        val[mt.indices] = mt.values
        v = val[pc]
        keep = np.flatnonzero(v >= 0).astype(np.int32)
        return dmesh.meshtags(new, tdim, keep, v[keep].astype(np.int32))
    fdim = tdim - 1
    parent.topology.create_connectivity(tdim, fdim)
    new.topology.create_connectivity(tdim, fdim)
    nf_par = parent.topology.index_map(fdim).size_local + parent.topology.index_map(fdim).num_ghosts
    val = np.full(nf_par, -1, dtype=np.int64)
    val[mt.indices] = mt.values
    nfc = tdim + 1  # facets per simplex
    c2f_par = parent.topology.connectivity(tdim, fdim).array.reshape(-1, nfc)
    c2f_new = new.topology.connectivity(tdim, fdim).array.reshape(-1, nfc)[:n_new]
    pf = np.asarray(parent_facet, dtype=np.int64).reshape(-1, nfc)[order]
    rows, cols = np.nonzero(pf >= 0)
    v = val[c2f_par[pc[rows], pf[rows, cols]]]
    ok = v >= 0
    fac, first = np.unique(c2f_new[rows[ok], cols[ok]], return_index=True)
    return dmesh.meshtags(new, fdim, fac.astype(np.int32), v[ok][first].astype(np.int32))


def refine_bundle(bundle, times: int):
    """The bundle with its mesh uniformly refined ``times`` times (tags transferred)."""
    from busbarfem.mesh import MeshBundle

    for _ in range(times):
        msh = bundle.mesh
        tdim = msh.topology.dim
        msh.topology.create_entities(1)
        msh.topology.create_connectivity(tdim - 1, tdim)
        new, parent_cell, parent_facet = dmesh.refine(
            msh, option=dmesh.RefinementOption.parent_cell_and_facet)
        new.topology.create_connectivity(tdim - 1, tdim)
        ct = _transfer_tags(bundle.cell_tags, msh, new, parent_cell, parent_facet)
        ft = _transfer_tags(bundle.facet_tags, msh, new, parent_cell, parent_facet)
        bundle = MeshBundle(mesh=new, cell_tags=ct, facet_tags=ft, regions=bundle.regions,
                            tags=bundle.tags, info=bundle.info, mesh_seconds=bundle.mesh_seconds)
    return bundle


#: B1 mesh levels: name -> (case overrides of the Gmsh mesh, uniform refinements).
#: thin_aspect sets the in-plane size of the sheets relative to thickness/n (the case has
#: n = 2 elements through every sheet); each refinement multiplies the dofs by ~6-8.
#: The three sizes the issue names (0.25M, 1M, 2M) share the sheet-element shape (in-plane
#: size 1.05-1.2x the through-thickness spacing), so iteration counts compare sizes, not
#: element shapes; "1M_coarse" is the default sizing refined twice (flatter sheet elements).
B1_LEVELS: dict[str, tuple[list[str], int]] = {
    "10k": (["mesh.thin_aspect=3.0"], 0),
    "60k": (["mesh.thin_aspect=3.0"], 1),
    "30k": ([], 0),
    "0.25M": (["mesh.thin_aspect=1.2"], 1),
    "1M": (["mesh.thin_aspect=1.2", "mesh.elements_through_thickness=3"], 1),
    "1M_coarse": ([], 2),
    "2M": (["mesh.thin_aspect=1.05"], 2),
}


def level_overrides(level: str) -> list[str]:
    """Case overrides of a B1 mesh level."""
    return list(B1_LEVELS[level][0])


def build_level(case, comm: MPI.Comm, refinements: int) -> tuple[object, dict]:
    """Mesh ``case`` (through the bench mesh cache) and refine; returns (bundle, timings)."""
    from busbarfem.mesh import build_mesh

    comm.Barrier()
    t0 = time.perf_counter()
    bundle = build_mesh(case, comm, cache_dir=MESH_CACHE)
    t_gmsh = time.perf_counter() - t0
    hit = bool(bundle.info.parameters.get("cache", {}).get("hit", False))
    comm.Barrier()
    t0 = time.perf_counter()
    bundle = refine_bundle(bundle, refinements)
    comm.Barrier()
    t_ref = time.perf_counter() - t0
    return bundle, {"mesh_build_or_load": t_gmsh, "mesh_cache_hit": hit, "mesh_refine": t_ref,
                    "gmsh_mesh_seconds": bundle.mesh_seconds}


def maxrss_mib() -> float:
    """Peak resident memory of this process [MiB] (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def mem_per_rank(comm: MPI.Comm) -> list[float]:
    """Peak RSS of every rank [MiB] (gathered on all ranks)."""
    return comm.allgather(round(maxrss_mib(), 1))


def proc_mem_mib() -> dict:
    """Current and peak resident memory of this process [MiB] (``/proc/self/status``
    VmRSS and VmHWM; VmHWM is the same peak as ``ru_maxrss``)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return out


class MemTrace:
    """Resident memory after each phase, summed over the ranks [MiB].

    ``mark(phase)`` records the current RSS and the peak so far (VmHWM) of every rank,
    summed over ranks (per-dof figures divide the sums by the global dof count).
    """

    def __init__(self, comm: MPI.Comm):
        self.comm = comm
        self.phases: list[dict] = []

    def mark(self, phase: str) -> None:
        m = proc_mem_mib()
        rss = self.comm.allreduce(m.get("VmRSS", 0.0), op=MPI.SUM)
        hwm = self.comm.allreduce(m.get("VmHWM", 0.0), op=MPI.SUM)
        self.phases.append({"phase": phase, "rss_MiB": round(rss, 1), "peak_MiB": round(hwm, 1)})

    def summary(self, ndofs: int) -> dict:
        """Phases plus the peak per dof [KiB/dof] (``peak``) and the peak above the RSS
        after the mesh phase (``above_mesh``, the part the solver stack adds)."""
        peak = max((p["peak_MiB"] for p in self.phases), default=0.0)
        mesh = next((p["rss_MiB"] for p in self.phases if p["phase"] == "mesh"), 0.0)
        return {"phases": self.phases, "ndofs": ndofs, "peak_MiB": peak,
                "peak_KiB_per_dof": round(peak * 1024.0 / ndofs, 3),
                "above_mesh_KiB_per_dof": round((peak - mesh) * 1024.0 / ndofs, 3)}


class Timer:
    """Wall-clock phases, maximum over ranks (the slowest rank sets the pace).

    The CPU time of the process (``time.process_time``, maximum over ranks) is kept too:
    on a shared machine it is much less sensitive to other people's jobs than wall time
    (it still counts MPI busy-waiting, so it is not a parallel-efficiency measure).
    """

    def __init__(self, comm: MPI.Comm):
        self.comm = comm
        self.t: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    @contextmanager
    def __call__(self, phase: str):
        self.comm.Barrier()
        t0, c0 = time.perf_counter(), time.process_time()
        yield
        c1 = time.process_time()
        self.comm.Barrier()
        dt = self.comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        self.t.setdefault(phase, []).append(dt)
        self.cpu.setdefault(phase, []).append(self.comm.allreduce(c1 - c0, op=MPI.MAX))

    def best(self, phase: str) -> float:
        return min(self.t[phase])

    def summary(self) -> dict:
        """phase -> {best, median, max, n, spread = max/best - 1}."""
        out = {}
        for k, v in self.t.items():
            a = np.asarray(v)
            out[k] = {"best": float(a.min()), "median": float(np.median(a)), "max": float(a.max()),
                      "n": len(a), "spread": float(a.max() / a.min() - 1.0) if a.min() > 0 else 0.0,
                      "cpu_best": float(min(self.cpu[k]))}
        return out


def machine_info() -> dict:
    """CPU, cores, memory, load, versions (for the table header)."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024**2:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    from petsc4py import PETSc

    import busbarfem

    git = ""
    try:
        git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "load_average": os.getloadavg(),
            "python": platform.python_version(), "dolfinx": dolfinx.__version__,
            "petsc": ".".join(map(str, PETSc.Sys.getVersion())), "busbarfem": getattr(busbarfem, "__version__", ""),
            "git": git, "in_container": Path("/.dockerenv").exists()}


def emit(result: dict, comm: MPI.Comm, out: Path | None) -> None:
    """Write the JSON result on rank 0 (to ``out`` or stdout)."""
    if comm.rank != 0:
        return
    text = json.dumps(result, indent=1, default=float)
    if out is None:
        sys.stdout.write(text + "\n")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


def apply_solver_tokens(tokens, strict: bool = True) -> None:
    """Set two-potential solver switches of :mod:`busbarfem.physics.solvers` from short tokens:
    ``rfX`` MSMD_RTOL_FACTOR, ``swN`` MSMD_SMOOTH_SWEEPS, ``thrF`` or ``thrF/C`` MSMD_GAMG_THRESHOLD
    (the finest level's, and the coarser levels'),
    ``g0/g1`` COARSE_GUESS, ``p0/p1``
    COARSE_POST, ``op0/op1`` OPERATING_POINT_SOLVE, ``bc0/bc1`` EXACT_BC_VALUES, ``cs0/cs1``
    CIRCUIT_COARSE_SPACE, ``lin`` CIRCUIT_COARSE_LINEAR; ``lu`` is left to the caller. An
    unknown token stops the script when ``strict``."""
    from busbarfem.physics import solvers

    flags = {"g": "COARSE_GUESS", "p": "COARSE_POST", "op": "OPERATING_POINT_SOLVE",
             "bc": "EXACT_BC_VALUES", "cs": "CIRCUIT_COARSE_SPACE"}
    for e in filter(None, tokens):
        if e.startswith("rf"):
            solvers.MSMD_RTOL_FACTOR = float(e[2:])
        elif e.startswith("sw"):
            solvers.MSMD_SMOOTH_SWEEPS = int(e[2:])
        elif e.startswith("thr"):
            solvers.MSMD_GAMG_THRESHOLD = tuple(float(t) for t in e[3:].split("/"))
        elif e == "lin":
            solvers.CIRCUIT_COARSE_LINEAR = True
        elif e[-1:] in "01" and e[:-1] in flags:
            setattr(solvers, flags[e[:-1]], e[-1] == "1")
        elif e != "lu" and strict:
            raise SystemExit(f"unknown solver setting {e!r}")


#: the calibration kernels of :func:`parallel_capacity`: interpreter-bound (a Python loop,
#: like the per-step bookkeeping) and memory-bound (streaming numpy updates over 32 MiB
#: arrays, like assembly and sparse products); each prints its own wall time
_CAPACITY_KERNELS = {
    "python": "import time\nt = time.perf_counter()\ns = 0\nfor i in range({n}):\n    s += i\n"
              "print(time.perf_counter() - t)",
    "memory": "import time, numpy as np\na = np.ones(4 << 20)\nb = np.ones(4 << 20)\n"
              "t = time.perf_counter()\nfor _ in range({n}):\n    a += 1.0001 * b\nprint(time.perf_counter() - t)",
}


def parallel_capacity(sizes: dict[str, int] | None = None) -> dict:
    """What two concurrent processes get from this machine right now.

    Each kernel of :data:`_CAPACITY_KERNELS` runs alone, then as two concurrent processes
    (fresh interpreters, BLAS threads pinned to 1). A job split perfectly over two ranks
    gains ``2 t_alone / t_pair`` (``t_pair`` the slower of the pair): 2.0 on two free
    cores, less when the cores are shared (hyper-threads, other tenants, a throttled host).
    That is the ceiling of any 1 -> 2 ranks speed-up measured at the same time, so the
    module benchmarks record it next to the load average (session 12 measured 1.33x at one
    time and 2.0x an hour later on the same machine). Serial: call it from one rank while
    the others wait.
    """
    sizes = sizes or {"python": 15_000_000, "memory": 60}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def launch(code: str):
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)

    out: dict = {"load_average_before": list(os.getloadavg())}
    for name, template in _CAPACITY_KERNELS.items():
        code = template.format(n=sizes[name])
        alone = float(launch(code).communicate()[0])
        procs = [launch(code), launch(code)]
        pair = [float(p.communicate()[0]) for p in procs]
        out[name] = {"alone_s": round(alone, 3), "pair_s": [round(t, 3) for t in pair],
                     "capacity": round(2.0 * alone / max(pair), 3)}
    out["capacity"] = min(out[k]["capacity"] for k in _CAPACITY_KERNELS)
    return out


def capacity_collective(comm: MPI.Comm) -> dict:
    """:func:`parallel_capacity` measured on rank 0 while the other ranks sleep (not spin in
    an MPI barrier, which would take a core from the calibration); the result on every rank."""
    res = parallel_capacity() if comm.rank == 0 else None
    if comm.size > 1:
        req = comm.Ibarrier()
        while not req.Test():
            time.sleep(0.01)
    return comm.bcast(res, root=0)
