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


def release_free_memory() -> bool:
    """Return the C heap's free memory to the operating system (glibc ``malloc_trim(0)``).

    Building a matrix's sparsity pattern frees as much memory as the matrix holds, and glibc
    keeps it in the process: the set-up leaves ~0.4 GiB of free heap resident at 1.2M dofs
    that the solves' own allocations do not all reuse, so it adds to the peak (B1 1M_coarse:
    -66 MiB at the peak when released after the set-up; docs/performance.md). Returns whether
    it was called (False where the C library has no ``malloc_trim``)."""
    try:
        libc = ctypes.CDLL(None)
        fn = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_size_t]
    fn(0)
    return True


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

#: The heat equation's ``auto`` keeps the direct solve up to this size when its operator is
#: symmetric (no coolant walls): a MUMPS Cholesky factorisation, refactorised at each new dt,
#: instead of CG+GAMG's set-up per dt bucket and ~19 iterations at rtol 1e-10. Session 13, the
#: 4s2p 1C discharge to 1800 s (32,359 thermal unknowns, 19 adaptive steps): thermal 1.84 s
#: against 2.70-2.81 s with GAMG on 1 rank (LU 2.30 s), 1.09-1.17 s against 1.37-1.39 s on 2
#: ranks, T_max equal to 6e-9 K; the operator is symmetric to 2e-16 in every example checked
#: (docs/performance.md). Not measured above this size: larger problems keep GAMG.
THERMAL_LU_DOF_LIMIT = 40_000

#: For the two-potential MSMD system (block size 2) ``auto`` keeps MUMPS up to this size:
#: the cell currents are integrals of g (E - (phi+ - phi-)) with a large g, so an iterative
#: error that is negligible for the potential shows up as a Kirchhoff mismatch between the
#: cell currents and the terminal current (1e-5 relative with GAMG at rtol 1e-10 on a
#: 2s1p module, 1e-9 with LU).
LU_DOF_LIMIT_MSMD = 250_000
# Iterative solves of the two-potential system use rtol * MSMD_RTOL_FACTOR. Until session 8
# this was 1e-2 (rtol 1e-12): with GAMG at rtol 1e-10 the summed cell currents of a stage
# missed the terminal current by 5e-5 (4s2p), at 1e-12 by 4e-7. That mismatch was not the
# interior error but the Dirichlet dofs' (the terminal current is a reaction that weighs
# them by sigma h) and the per-conductor current balance; with EXACT_BC_VALUES and
# COARSE_POST (below) Kirchhoff holds to LU's rounding floor at any tolerance. The source
# solve now runs near the operating point (OPERATING_POINT_SOLVE), where ||b|| carries the
# terminal voltage's lifting, so rtol 1e-11 is a looser absolute test for it than before; at
# 1e-11 the cell currents are closer to MUMPS than they were at 1e-12 (4s2p 1.2e-8 vs 3.5e-7,
# 8s6p 8.5e-9 vs 6.5e-8), at 1e-10 about as close (2.0e-8, 7.0e-8) for 2 fewer iterations
# (docs/performance.md, scripts/bench/two_potential_accuracy.py).
MSMD_RTOL_FACTOR = 0.1

KINDS = ("auto", "lu", "gamg")

#: MUMPS factorisations of up to this many global unknowns order the matrix by approximate
#: minimum fill (``ICNTL(7) = 2``, AMF) instead of MUMPS's automatic choice, which picks METIS
#: here. METIS's nested dissection pays on large 3D systems, but its analysis is serial and
#: costs more than the whole factorisation below ~1e5 unknowns. The P1 heat operator of the
#: 4s2p module (32,359 unknowns), analysis + factorisation: 0.087-0.10 s with AMF against
#: 0.29-0.34 s with METIS on 1 and on 2 ranks, the factor 3 % larger, the solves and the
#: numerical refactorisation as fast; at 207,476 unknowns (8s6p) AMF still set up in half
#: the time (1.0-1.3 vs 2.1-2.7 s) but solved up to 1.9x slower on 2 ranks, so larger systems
#: keep METIS (docs/performance.md, "Session 15").
MUMPS_AMF_LIMIT = 100_000

#: Symmetric SOR sweeps per multigrid level and direction for the two-potential (block
#: size 2) system; the one-field conductor preset keeps one (docs/performance.md).
MSMD_SMOOTH_SWEEPS = 2

#: GAMG's aggregation thresholds for the two-potential (block size 2) system, per level
#: (finest first; the last value holds for every coarser level): couplings weaker than this
#: fraction of the (scaled) diagonal are left out of the aggregation graph. The one-field
#: conductor preset keeps 0.02 on every level. A uniform threshold above 0.02 fell off a
#: cliff on the second level (8s6p: 15 -> 22 iterations per solve at 0.05, KSP CPU
#: 1.6-1.9x), whose place depends on the mesh; on the finest level alone 0.04-0.08 is a
#: plateau (the cliff is at 0.08-0.12). 0.05 there, 0.02 below: the largest count per solve
#: on 2 ranks 11 -> 10 (4s2p), 15 -> 13 (8s6p), 15 -> 12 (16s6p), meshes 1.5x coarser and
#: finer 19 -> 16 and 13 -> 12, KSP CPU the same or less (docs/performance.md, "Session 17";
#: ``two_potential_pc.py ... auto,thrF[/C]``).
MSMD_GAMG_THRESHOLD: tuple[float, ...] = (0.05, 0.02)


def gamg_threshold_option(values) -> float | str:
    """``-pc_gamg_threshold``'s value for per-level thresholds (finest first): one number,
    or PETSc's comma-separated list."""
    vals = [float(v) for v in (values if isinstance(values, (tuple, list)) else (values,))]
    if not vals or any(not 0.0 <= v < 1.0 for v in vals):
        raise ValueError(f"GAMG thresholds must be in [0, 1): {values!r}")
    return vals[0] if len(vals) == 1 else ",".join(repr(v) for v in vals)

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


def preset(kind: str, ndofs: int, rtol: float, block_size: int = 1, symmetric: bool = False,
           limit: int | None = None) -> dict:
    """PETSc options for ``kind`` in {"auto", "lu", "gamg"} and a system of ``ndofs``.

    Args:
        kind: ``"auto"`` (direct up to ``limit`` unknowns, by default :data:`LU_DOF_LIMIT`,
            :data:`LU_DOF_LIMIT_MSMD` for block size 2, else GAMG), ``"lu"`` (MUMPS: LU,
            Cholesky for block size 2 or a ``symmetric`` operator), ``"gamg"``.
        ndofs: global number of unknowns (all components).
        rtol: relative tolerance of the iterative solve (unpreconditioned residual norm).
        block_size: unknowns per mesh node (2 for the two-potential MSMD system).
        symmetric: the operator is symmetric positive definite (a direct solve factorises it
            by Cholesky).
        limit: the ``auto`` size limit of the direct solve (None: the default above).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown solver kind {kind!r}; valid: {', '.join(KINDS)}")
    if kind == "auto":
        if limit is None:
            limit = LU_DOF_LIMIT if block_size == 1 else LU_DOF_LIMIT_MSMD
        kind = "lu" if ndofs <= limit else "gamg"
    if kind == "lu":
        # the two-potential operator and the heat equation without coolant walls are symmetric
        # positive definite (CG solves them): MUMPS Cholesky (LDL^T) keeps half the factor and
        # refactorises ~26 % faster than LU at 65k unknowns on 1 and 2 ranks
        # (docs/performance.md); the other scalar problems keep LU
        opts = {"ksp_type": "preonly", "pc_type": "cholesky" if block_size == 2 or symmetric else "lu",
                "pc_factor_mat_solver_type": "mumps"}
        if ndofs <= MUMPS_AMF_LIMIT:
            opts["mat_mumps_icntl_7"] = 2
        return opts
    return {"ksp_type": "cg", "ksp_rtol": rtol, "ksp_atol": 1e-50, "ksp_max_it": 1000,
            "ksp_norm_type": "unpreconditioned",
            "pc_type": "gamg", "pc_gamg_type": "agg", "pc_gamg_agg_nsmooths": 1,
            "pc_gamg_threshold": gamg_threshold_option(MSMD_GAMG_THRESHOLD) if block_size == 2 else 0.02,
            "pc_gamg_aggressive_coarsening": 1,
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
    for k in options:
        if k.startswith("mat_mumps_"):
            # MUMPS reads these only when it factorises: mark them used now (a query does), so a
            # KSP that is set up but never solved leaves no "unused database option" warning
            opts.hasName(f"-{prefix}{k}")
    _KSP_OPTIONS[prefix] = list(options)
    return ksp


#: the option keys of every KSP :func:`make_ksp` made, by prefix (for :func:`destroy_ksp`)
_KSP_OPTIONS: dict[str, list[str]] = {}


def destroy_ksp(ksp: PETSc.KSP | None) -> None:
    """Destroy a KSP of :func:`make_ksp` and remove what its options left in PETSc's database.

    GAMG reads its level options (``mg_levels_*``) only when the preconditioner is first set
    up, so they stay in the database until then; a KSP that never solved (the electrical KSP
    of a reduced-step run whose basis came from a separate factorisation) left them there,
    and PETSc printed them as "unused database options" at exit. Removed by full name here
    (``delValue`` does not apply a pushed prefix).
    """
    if ksp is None:
        return
    prefix = ksp.getOptionsPrefix() or ""
    opts = PETSc.Options()
    for k in _KSP_OPTIONS.pop(prefix, ()):
        if opts.hasName(f"-{prefix}{k}"):
            opts.delValue(f"-{prefix}{k}")
    ksp.destroy()


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
            f"({options['pc_factor_mat_solver_type']})" if pc in ("lu", "cholesky")
            and "pc_factor_mat_solver_type" in options else "")
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


#: Iterative two-potential solves solve the source right-hand side at a predicted terminal
#: voltage V* (the previous call's, the target, or the open-circuit estimate) instead of at
#: V = 0 (the short circuit), warm-started from the previous call's solution
#: (``ElectricalProblem._predicted_voltage``; docs/performance.md).
OPERATING_POINT_SOLVE = True

#: Iterative solves end by setting the Dirichlet dofs (terminals, inactive dofs) of the
#: solution to their exact values. Their rows are decoupled identity rows, which CG solves
#: only to the tolerance like every other row (~1e-12 V at rtol 1e-12), but the terminal
#: current is a reaction that multiplies them by the terminal's conductance (sigma h,
#: ~1e4-1e5 S per node): that error, not the interior one, was the Kirchhoff mismatch
#: between the cell currents and the terminal current (docs/performance.md).
EXACT_BC_VALUES = True

#: Iterative two-potential solves start from their initial guess (the warm start, or zero)
#: corrected by the exact circuit coarse solve, ``x0 += Z (Z^T A Z)^-1 Z^T (b - A x0)`` with
#: ``Z`` the per-(region, field) indicators of the circuit coarse space (built for this
#: even where the coarse space is not part of the preconditioner). docs/performance.md.
COARSE_GUESS = True

#: Iterative two-potential solves end with the same exact coarse correction of the
#: converged solution: the residual then has no component on any (region, field)
#: indicator, so the current balance of every conductor and every cell collector (the
#: cell currents against the terminal current, Kirchhoff per stage) holds to rounding
#: instead of to the Krylov tolerance. docs/performance.md.
COARSE_POST = True


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
        #: True when the owner (:class:`~busbarfem.physics.electrical.ElectricalProblem`)
        #: forms the coarse matrix after every assembly (:meth:`form`): the PC set-up then
        #: finds it current and does nothing
        self.owner_forms = False
        self._E = None
        self._r = None

    def setUp(self, pc) -> None:
        """Form and invert ``Z^T A Z`` (collective), unless the owner keeps it current."""
        if self.owner_forms and self.Einv is not None:
            return
        A, _ = pc.getOperators()
        self.form(A)

    def form(self, A) -> None:
        """Form and invert ``Z^T A Z`` for the operator ``A`` (collective; the product's
        sparsity is computed once and reused)."""
        np = self._np
        if self._E is None:
            self._E = A.ptap(self.Z)
        else:
            A.ptap(self.Z, result=self._E)
        E = self._E
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

    def correct(self, A, b, x) -> None:
        """``x += Z E^-1 Z^T (b - A x)``: the exact coarse (Galerkin) correction of ``x``
        (collective). Afterwards ``Z^T (b - A x) = 0`` up to rounding: the residual has no
        component on any (region, field) indicator, i.e. every conductor's and every cell
        collector's current balance holds exactly for the corrected ``x``."""
        if self._r is None:
            self._r = b.duplicate()
            self._y = x.duplicate()
        r = self._r
        A.mult(x, r)
        r.aypx(-1.0, b)  # r = b - A x
        self.apply(None, r, self._y)
        x.axpy(1.0, self._y)

    def free(self) -> None:
        """Free the PETSc objects this context created (not ``Z``; after the KSP that uses it).

        (Not named ``destroy``: PCPYTHON calls a context's ``destroy(pc)`` itself.)"""
        for o in (self._E, self._r, getattr(self, "_y", None), self.c):
            if o is not None:
                o.destroy()
        self._E = self._r = self._y = self.c = None

    def apply(self, pc, x, y) -> None:
        """``y = Z E^-1 Z^T x`` (collective)."""
        np = self._np
        self.Z.multTranspose(x, self.c)
        g = np.concatenate(self.comm.allgather(self.c.getArray(readonly=True).copy()))
        self.c.setArray((self.Einv @ g)[self.r0:self.r1])
        self.Z.mult(self.c, y)


def use_circuit_coarse_space(ksp: PETSc.KSP, comm, Z, options: dict, additive: bool = False,
                             context: CircuitCoarse | None = None) -> None:
    """Turn ``ksp``'s GAMG preconditioner into GAMG + the exact coarse correction on ``Z``
    (composed symmetric-multiplicatively; ``additive=True``: added, for comparison).
    ``context``: the :class:`CircuitCoarse` to use (default: a new one on ``Z``)."""
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
    pc.getCompositePC(0).setPythonContext(context if context is not None else CircuitCoarse(comm, Z))
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
