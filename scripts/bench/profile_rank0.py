"""Run a bench script with cProfile on MPI rank 0 only (the other ranks run it plainly).

    mpirun -n 2 .venv/bin/python scripts/bench/profile_rank0.py OUT.prof scripts/bench/cccv_8s6p.py --reduced ...

Writes the rank-0 profile to OUT.prof (read it with ``python -m pstats OUT.prof``).
"""

from __future__ import annotations

import cProfile
import runpy
import sys

import dolfinx_solver  # noqa: F401  (must precede dolfinx/petsc4py/mpi4py)
from mpi4py import MPI


def main() -> None:
    """Run ``argv[2]`` with ``argv[3:]`` as a script, profiled on rank 0 into ``argv[1]``."""
    out, script, *args = sys.argv[1:]
    sys.argv = [script, *args]
    if MPI.COMM_WORLD.rank == 0:
        prof = cProfile.Profile()
        prof.enable()
        try:
            runpy.run_path(script, run_name="__main__")
        finally:
            prof.disable()
            prof.dump_stats(out)
    else:
        runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
