"""PETSc solver presets: MUMPS LU for small systems, CG+GAMG (tuned for thin, high-contrast
conductors) for large ones. No hypre in this PETSc build.

The GAMG preset was chosen on the B1 benchmark (welded L busbar: copper, steel bolts
~42x less conductive, a 0.3 mm nickel tab; scripts/bench/solver_sweep.py, numbers in
docs/performance.md):

* smoothed aggregation (one prolongator smoothing step) with a drop threshold of 0.02:
  the threshold keeps aggregates from straddling the weak couplings of flat sheet
  elements and material jumps; 0 or -1 (keep every edge) needs ~25 % more iterations,
  0.1 makes the set-up several times dearer;
* one level of aggressive (MIS-2) coarsening: halves the set-up at the price of one or
  two iterations;
* one symmetric SOR sweep (Richardson/SSOR, processor-local in parallel) per level and
  direction. Chebyshev(2)/Jacobi, PETSc's default, needs the same ~15-20 iterations but
  its eigenvalue estimate fails on some of these meshes (KSP DIVERGED_INDEFINITE_PC on a
  refined B1 mesh with flat sheet elements); SSOR is symmetric and has no estimate to
  get wrong. It works point-wise, so it serves the block-size-2 MSMD system unchanged;
  that system takes two sweeps (:data:`MSMD_SMOOTH_SWEEPS`: 4s2p first solve 26 -> 21
  iterations for ~+10 % KSP CPU; three sweeps give 20 for another +15 %);
* ``pc_gamg_reuse_interpolation``: the electrical matrix is re-assembled every step
  (sigma(T) changes) with the same sparsity; keeping the prolongators makes the re-set-up
  ~3x cheaper than a fresh one (the default of this PETSc 3.25; set explicitly);
* a coarse problem of at most ~1000 equations (direct solve, negligible).

The matrix must carry its block size (``A.setBlockSize(2)``) before the first solve so
that GAMG aggregates nodes (both potentials together) and uses one constant per field
as its near-null space.
"""

from __future__ import annotations

import ctypes

import dolfinx_solver  # noqa: F401
from petsc4py import PETSc

#: the thread-count setters of the OpenBLAS builds this stack loads (numpy's 64-bit
#: scipy-openblas, PETSc's and basix's plain OpenBLAS)
_BLAS_SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
                 "scipy_openblas_set_num_threads")


def limit_blas_threads(n: int = 1) -> int:
    """Set every loaded OpenBLAS to ``n`` threads; returns how many libraries were set.

    Under MPI every rank is one process per core: OpenBLAS's own threads (one per core by
    default) then oversubscribe the cores, and its spinning threads slow a dense product
    by an order of magnitude on a loaded machine (the reduced step's Gram products at 8s6p
    on 2 ranks: 29 s per call instead of ~1 s; docs/performance.md). Linux only (reads
    ``/proc/self/maps``); elsewhere nothing is changed.
    """
    try:
        with open("/proc/self/maps") as fh:
            libs = sorted({line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line})
    except OSError:
        return 0
    done = 0
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _BLAS_SETTERS:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.argtypes = [ctypes.c_int]
                fn(int(n))
                done += 1
                break
    return done

#: At or below this many global unknowns ``auto`` picks MUMPS LU, above it CG+GAMG.
#: Measured on the B1 operators (scripts/bench/solver_sweep.py --set crossover, 1 rank,
#: docs/performance.md): per electrical step (MUMPS refactorisation vs GAMG re-set-up +
#: solve) the two are even at ~9.5k unknowns and GAMG is 1.7x faster at 27k, 1.5x at
#: 0.26M and 2.2x at 1.1M (where MUMPS also needs ~5x the memory). MUMPS keeps the
#: cheaper solve with a reused factorisation (thermal steps at fixed dt), but pays it
#: back only after ~17 steps at 1M and refactorises whenever dt changes.
LU_DOF_LIMIT = 15_000

#: For the two-potential MSMD system (block size 2) ``auto`` keeps MUMPS up to this size:
#: the cell currents are integrals of g (E - (phi+ - phi-)) with a large g, so an iterative
#: error that is negligible for the potential shows up as a Kirchhoff mismatch between the
#: cell currents and the terminal current (1e-5 relative with GAMG at rtol 1e-10 on a
#: 2s1p module, 1e-9 with LU).
LU_DOF_LIMIT_MSMD = 250_000
# The cell currents are g-weighted differences of the two potentials (g = 1/(R0 Vol)), which
# amplifies the algebraic error: with GAMG at rtol 1e-10 the summed cell currents of a stage
# missed the terminal current by 5e-5 (4s2p), at 1e-12 by 4e-7 for 20 % more iterations.
# Iterative solves of the two-potential system therefore use rtol * MSMD_RTOL_FACTOR.
MSMD_RTOL_FACTOR = 1e-2

KINDS = ("auto", "lu", "gamg")

#: Symmetric SOR sweeps per multigrid level and direction for the two-potential (block
#: size 2) system; the one-field conductor preset keeps one (docs/performance.md).
MSMD_SMOOTH_SWEEPS = 2

#: When True, an electrical problem with nodes that no conducting cell touches (cold plates,
#: gap pads: region kind "thermal") solves the system restricted to the other nodes; the
#: dropped ones are pinned to zero anyway (docs/performance.md, "Cooled module step").
#: False keeps them in the solved matrix (for comparison).
DROP_INACTIVE_NODES = True

#: When True, iterative two-potential electrical solves start from the problem's previous
#: solution of the same right-hand side (``KSPSetInitialGuessNonzero``; docs/performance.md).
#: The guess is per :class:`~busbarfem.physics.electrical.ElectricalProblem` instance, so
#: two runs of one case in one process are bit-identical. A run restarted from a
#: checkpoint starts its first solve from zero, so with GAMG it matches the uninterrupted
#: run to the solver tolerance, not digit for digit (LU solves, below
#: :data:`LU_DOF_LIMIT_MSMD`, are unaffected).
WARM_START = True

#: Iterative two-potential solves keep their GAMG preconditioner across electrical calls
#: while no operator coefficient (sigma(T) per field, the cells' g, contact conductances)
#: has moved by more than this fraction of its largest value since the preconditioner was
#: built (``KSPSetReusePreconditioner``); 0 rebuilds it on every call. docs/performance.md.
PC_REUSE_TOL = 0.05


def preset(kind: str, ndofs: int, rtol: float, block_size: int = 1) -> dict:
    """PETSc options for ``kind`` in {"auto", "lu", "gamg"} and a system of ``ndofs``.

    Args:
        kind: ``"auto"`` (LU up to :data:`LU_DOF_LIMIT` unknowns, else GAMG), ``"lu"``, ``"gamg"``.
        ndofs: global number of unknowns (all components).
        rtol: relative tolerance of the iterative solve (unpreconditioned residual norm).
        block_size: unknowns per mesh node (2 for the two-potential MSMD system).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown solver kind {kind!r}; valid: {', '.join(KINDS)}")
    if kind == "auto":
        limit = LU_DOF_LIMIT if block_size == 1 else LU_DOF_LIMIT_MSMD
        kind = "lu" if ndofs <= limit else "gamg"
    if kind == "lu":
        return {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}
    return {"ksp_type": "cg", "ksp_rtol": rtol, "ksp_atol": 1e-50, "ksp_max_it": 1000,
            "ksp_norm_type": "unpreconditioned",
            "pc_type": "gamg", "pc_gamg_type": "agg", "pc_gamg_agg_nsmooths": 1,
            "pc_gamg_threshold": 0.02, "pc_gamg_aggressive_coarsening": 1,
            "pc_gamg_coarse_eq_limit": 1000, "pc_gamg_reuse_interpolation": True,
            "mg_levels_ksp_type": "richardson",
            "mg_levels_ksp_max_it": MSMD_SMOOTH_SWEEPS if block_size == 2 else 1,
            "mg_levels_pc_type": "sor"}


_KSP_COUNT = [0]


def make_ksp(comm, A, prefix: str, options: dict) -> PETSc.KSP:
    """A KSP on ``A`` configured from ``options``.

    The prefix is made unique per KSP and the options are removed from PETSc's global
    database once applied, so one problem's settings never leak into the next (several
    problems live in one process in tests, sweeps and the critical-current search).
    """
    _KSP_COUNT[0] += 1
    prefix = f"{prefix}{_KSP_COUNT[0]}_"
    ksp = PETSc.KSP().create(comm)
    ksp.setOperators(A)
    ksp.setOptionsPrefix(prefix)
    opts = PETSc.Options()
    opts.prefixPush(prefix)
    for k, v in options.items():
        opts[k] = v
    ksp.setFromOptions()
    for k in options:
        opts.delValue(k)
    opts.prefixPop()
    return ksp


def reason_name(code: int) -> str:
    """Human name of a KSP converged reason (e.g. DIVERGED_ITS)."""
    for n in dir(PETSc.KSP.ConvergedReason):
        if not n.startswith("_") and getattr(PETSc.KSP.ConvergedReason, n) == code:
            return n
    return str(code)


class KSPStats:
    """Running count of one problem's linear solves and KSP iterations (for summary.json)."""

    def __init__(self, options: dict):
        pc = options.get("pc_type", "")
        self.method = f"{options.get('ksp_type', '')}+{pc}" + (
            f"({options['pc_factor_mat_solver_type']})" if pc == "lu" and "pc_factor_mat_solver_type" in options else "")
        self.solves = 0
        self.iterations = 0
        self.max_iterations = 0

    def record(self, its: int) -> None:
        """Count one converged solve of ``its`` iterations."""
        self.solves += 1
        self.iterations += its
        self.max_iterations = max(self.max_iterations, its)

    def to_dict(self) -> dict:
        """``{"method", "solves", "iterations_total", "iterations_mean", "iterations_max"}``."""
        return {"method": self.method, "solves": self.solves, "iterations_total": self.iterations,
                "iterations_mean": self.iterations / self.solves if self.solves else 0.0,
                "iterations_max": self.max_iterations}


def solve_checked(ksp: PETSc.KSP, b, x, what: str, step: int | None = None, stats: KSPStats | None = None) -> int:
    """Solve and raise SolveError with the PETSc reason if the KSP did not converge.

    Returns:
        The number of KSP iterations (also counted in ``stats`` if given).
    """
    from busbarfem.errors import SolveError

    try:
        ksp.solve(b, x)
    except PETSc.Error as exc:
        # an error PETSc raises instead of returning a reason (a factorisation that cannot
        # be set up, a missing solver package): a solver failure all the same (exit 3)
        raise SolveError(f"{what} solve failed: PETSc error {exc.ierr} ({str(exc).strip() or 'no message'})",
                         step=step, reason=f"{what} solver failure") from None
    r = ksp.getConvergedReason()
    if r <= 0:
        raise SolveError(f"{what} solve failed: PETSc KSP reason {reason_name(r)} ({r}) after "
                         f"{ksp.getIterationNumber()} iterations", step=step, reason=f"{what} solver failure")
    its = ksp.getIterationNumber()
    if stats is not None:
        stats.record(its)
    return its


#: Precondition iterative two-potential solves by GAMG combined (symmetric multiplicative)
#: with an exact coarse correction on one constant per (region, field) -- the per-conductor
#: potentials of a 0D network: True always, False never, ``"auto"`` above
#: :data:`CIRCUIT_COARSE_MIN_DOFS` solved unknowns (:func:`circuit_coarse_space_on`).
#: 16s6p (779k unknowns): 48 -> 25 iterations per solve, KSP CPU 45 -> 33 s; up to 8s6p it
#: saves ~10 % of the iterations for more CPU (docs/performance.md).
CIRCUIT_COARSE_SPACE = "auto"

#: ``CIRCUIT_COARSE_SPACE = "auto"`` switches the coarse space on above this many solved
#: unknowns (measured, docs/performance.md: it costs CPU at 4s2p, 65k, and 8s6p, 389k, and
#: saves a third of the iterations and of the KSP CPU at 16s6p, 779k).
CIRCUIT_COARSE_MIN_DOFS = 500_000

#: Enrich the circuit coarse space with a linear potential per (region, field): the three
#: centred coordinates on its dofs next to its constant (4 columns instead of 1).
CIRCUIT_COARSE_LINEAR = False


def circuit_coarse_space_on(ndofs: int) -> bool:
    """Whether an iterative two-potential solve of ``ndofs`` unknowns uses the circuit coarse space."""
    if CIRCUIT_COARSE_SPACE == "auto":
        return ndofs > CIRCUIT_COARSE_MIN_DOFS
    return bool(CIRCUIT_COARSE_SPACE)


class CircuitCoarse:
    """PCPYTHON context: ``y = Z (Z^T A Z)^-1 Z^T x`` with a small dense replicated coarse matrix.

    ``Z`` is a sparse indicator matrix (one column per circuit node); the coarse matrix
    is rebuilt at every preconditioner set-up (``A.ptap(Z)``), gathered and inverted on
    every rank (a few hundred columns at 16s6p).
    """

    def __init__(self, comm, Z):
        import numpy as np

        self._np = np
        self.comm, self.Z = comm, Z
        self.c = Z.createVecRight()
        self.Einv = None
        self.r0 = self.r1 = 0

    def setUp(self, pc) -> None:
        """Form and invert ``Z^T A Z`` (collective)."""
        np = self._np
        A, _ = pc.getOperators()
        E = A.ptap(self.Z)
        m = E.getSize()[0]
        r0, r1 = E.getOwnershipRange()
        loc = np.zeros((r1 - r0, m))
        for i in range(r0, r1):
            cols, vals = E.getRow(i)
            loc[i - r0, cols] = vals
        full = np.vstack(self.comm.allgather(loc))
        # a pseudo-inverse: the columns of Z may be (nearly) dependent (a flat region's
        # coordinate normal to it, with CIRCUIT_COARSE_LINEAR)
        w, U = np.linalg.eigh(0.5 * (full + full.T))
        ok = w > 1e-12 * w.max()
        self.Einv = (U[:, ok] / w[ok]) @ U[:, ok].T
        self.r0, self.r1 = r0, r1
        E.destroy()

    def apply(self, pc, x, y) -> None:
        """``y = Z E^-1 Z^T x`` (collective)."""
        np = self._np
        self.Z.multTranspose(x, self.c)
        g = np.concatenate(self.comm.allgather(self.c.getArray(readonly=True).copy()))
        self.c.setArray((self.Einv @ g)[self.r0:self.r1])
        self.Z.mult(self.c, y)


def use_circuit_coarse_space(ksp: PETSc.KSP, comm, Z, options: dict, additive: bool = False) -> None:
    """Turn ``ksp``'s GAMG preconditioner into GAMG + the exact coarse correction on ``Z``
    (composed symmetric-multiplicatively; ``additive=True``: added, for comparison)."""
    prefix = ksp.getOptionsPrefix()
    opts = PETSc.Options()
    opts.prefixPush(prefix)
    gamg = {k: v for k, v in options.items() if k.startswith(("pc_", "mg_"))}
    for k, v in gamg.items():
        opts["sub_1_" + k] = v
    opts.prefixPop()
    pc = ksp.getPC()
    pc.setType("composite")
    pc.setCompositeType(PETSc.PC.CompositeType.ADDITIVE if additive
                        else PETSc.PC.CompositeType.SYMMETRIC_MULTIPLICATIVE)
    pc.addCompositePCType("python")
    pc.addCompositePCType("gamg")
    pc.getCompositePC(0).setPythonContext(CircuitCoarse(comm, Z))
    pc.getCompositePC(1).setFromOptions()
    opts.prefixPush(prefix)
    for k in gamg:
        opts.delValue("sub_1_" + k)
    opts.prefixPop()
    # the outer KSP's GAMG smoother options are read by no PC now (the outer PC is the
    # composite); remove them by their full name (delValue does not apply a pushed
    # prefix), else PETSc reports them as unused at exit
    for k in gamg:
        if k.startswith("mg_"):
            opts.delValue(f"-{prefix}{k}")
