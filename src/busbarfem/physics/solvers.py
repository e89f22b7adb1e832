"""PETSc solver presets: MUMPS LU for small systems, CG+GAMG (tuned for thin, high-contrast
conductors) for large ones. No hypre in this PETSc build."""

from __future__ import annotations

import dolfinx_solver  # noqa: F401
from petsc4py import PETSc

#: Below this many global unknowns a direct solve is faster than CG+GAMG here
#: (measured on this machine: scripts/bench).
LU_DOF_LIMIT = 150_000


def preset(kind: str, ndofs: int, rtol: float, block_size: int = 1) -> dict:
    """PETSc options for ``kind`` in {"auto", "lu", "gamg"} and a system of ``ndofs``."""
    if kind == "auto":
        kind = "lu" if ndofs <= LU_DOF_LIMIT else "gamg"
    if kind == "lu":
        return {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}
    return {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": rtol, "ksp_atol": 1e-50,
            "ksp_max_it": 1000, "pc_gamg_threshold": 0.02, "pc_gamg_coarse_eq_limit": 2000,
            "pc_gamg_agg_nsmooths": 1, "pc_gamg_square_graph": 1,
            "mg_levels_ksp_type": "chebyshev", "mg_levels_pc_type": "jacobi",
            "mg_levels_ksp_max_it": 2, "ksp_norm_type": "unpreconditioned"}


def make_ksp(comm, A, prefix: str, options: dict) -> PETSc.KSP:
    """A KSP on ``A`` configured from ``options`` under a unique ``prefix``."""
    ksp = PETSc.KSP().create(comm)
    ksp.setOperators(A)
    ksp.setOptionsPrefix(prefix)
    opts = PETSc.Options()
    opts.prefixPush(prefix)
    for k, v in options.items():
        opts[k] = v
    opts.prefixPop()
    ksp.setFromOptions()
    return ksp


def reason_name(code: int) -> str:
    """Human name of a KSP converged reason (e.g. DIVERGED_ITS)."""
    for n in dir(PETSc.KSP.ConvergedReason):
        if not n.startswith("_") and getattr(PETSc.KSP.ConvergedReason, n) == code:
            return n
    return str(code)


def solve_checked(ksp: PETSc.KSP, b, x, what: str, step: int | None = None) -> int:
    """Solve and raise SolveError with the PETSc reason if the KSP did not converge.

    Returns:
        The number of KSP iterations.
    """
    from busbarfem.errors import SolveError

    ksp.solve(b, x)
    r = ksp.getConvergedReason()
    if r <= 0:
        raise SolveError(f"{what} solve failed: PETSc KSP reason {reason_name(r)} ({r}) after "
                         f"{ksp.getIterationNumber()} iterations", step=step, reason=f"{what} solver failure")
    return ksp.getIterationNumber()
