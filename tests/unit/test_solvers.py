"""Solver presets: structure, the auto switch, and GAMG = LU on small high-contrast systems.

Nothing here is timed (speed is measured by scripts/bench). Runs serially and under
``mpirun -n 2``.
"""

from __future__ import annotations

import dolfinx_solver  # noqa: F401
import numpy as np
import pytest
import ufl
from mpi4py import MPI
from petsc4py import PETSc

import dolfinx.fem.petsc as fpetsc
from dolfinx import fem, mesh as dmesh

from busbarfem.physics import solvers


@pytest.mark.parametrize("block_size", [1, 2])
def test_preset_structure(block_size):
    lu = solvers.preset("lu", 10**7, 1e-8, block_size)
    # the two-potential system (block size 2) is SPD: MUMPS Cholesky; scalar problems LU
    assert lu == {"ksp_type": "preonly", "pc_type": "cholesky" if block_size == 2 else "lu",
                  "pc_factor_mat_solver_type": "mumps"}
    g = solvers.preset("gamg", 10, 1e-8, block_size)
    assert g["ksp_type"] == "cg" and g["pc_type"] == "gamg"
    assert g["ksp_rtol"] == 1e-8
    # the per-step savings rely on these: keep the interpolation when only values change
    assert g["pc_gamg_reuse_interpolation"] is True
    thresholds = [float(t) for t in str(g["pc_gamg_threshold"]).split(",")]
    assert thresholds == ([0.02] if block_size == 1 else list(solvers.MSMD_GAMG_THRESHOLD))
    assert all(0.0 <= t < 0.1 for t in thresholds)
    # deprecated alias must not come back (PETSc >= 3.20: aggressive_coarsening)
    assert "pc_gamg_square_graph" not in g
    # symmetric smoother without an eigenvalue estimate (Chebyshev broke down on B1)
    assert g["mg_levels_pc_type"] == "sor"
    for v in g.values():
        assert isinstance(v, (str, int, float, bool))


def test_auto_switches_at_the_limit():
    n = solvers.LU_DOF_LIMIT
    assert solvers.preset("auto", n, 1e-8)["pc_type"] == "lu"
    assert solvers.preset("auto", n + 1, 1e-8)["pc_type"] == "gamg"
    # the two-potential cell system keeps a direct solve longer (cell-current accuracy)
    assert solvers.preset("auto", n + 1, 1e-8, block_size=2)["pc_type"] == "cholesky"
    m = solvers.LU_DOF_LIMIT_MSMD
    assert solvers.preset("auto", m + 1, 1e-8, block_size=2)["pc_type"] == "gamg"


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="gamg"):
        solvers.preset("hypre", 100, 1e-8)


def _contrast_problem(comm, block_size: int):
    """A thin plate (10 x 10 x 1) with a 40x less conductive core, Dirichlet at x = 0 / x = 1.

    block_size 2: two P1 fields coupled by a transfer term in half the plate (the MSMD
    pattern: vector P1, block size 2, symmetric positive definite).
    """
    msh = dmesh.create_box(comm, [[0, 0, 0], [1, 1, 0.1]], [16, 16, 3], dmesh.CellType.tetrahedron)
    Q0 = fem.functionspace(msh, ("DG", 0))
    sigma = fem.Function(Q0)
    sigma.interpolate(lambda x: np.where((np.abs(x[0] - 0.5) < 0.2) & (np.abs(x[1] - 0.5) < 0.2), 1.4e6, 5.8e7))
    shape = (2,) if block_size == 2 else ()
    V = fem.functionspace(msh, ("Lagrange", 1, shape))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    tdim = msh.topology.dim
    left = dmesh.locate_entities_boundary(msh, tdim - 1, lambda x: np.isclose(x[0], 0.0))
    right = dmesh.locate_entities_boundary(msh, tdim - 1, lambda x: np.isclose(x[0], 1.0))
    if block_size == 1:
        a = sigma * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx
        L = fem.Constant(msh, PETSc.ScalarType(0.0)) * v * ufl.dx
        bcs = [fem.dirichletbc(PETSc.ScalarType(1.0), fem.locate_dofs_topological(V, tdim - 1, left), V),
               fem.dirichletbc(PETSc.ScalarType(0.0), fem.locate_dofs_topological(V, tdim - 1, right), V)]
    else:
        g = fem.Function(Q0)
        g.interpolate(lambda x: np.where(x[1] < 0.5, 1e9, 0.0))
        a = sum(sigma * ufl.inner(ufl.grad(u[i]), ufl.grad(v[i])) for i in range(2)) * ufl.dx
        a += g * (u[0] - u[1]) * (v[0] - v[1]) * ufl.dx
        L = g * 3.6 * (v[0] - v[1]) * ufl.dx
        bcs = [fem.dirichletbc(PETSc.ScalarType(1.0), fem.locate_dofs_topological(V.sub(0), tdim - 1, left),
                               V.sub(0)),
               fem.dirichletbc(PETSc.ScalarType(0.0), fem.locate_dofs_topological(V.sub(1), tdim - 1, right),
                               V.sub(1))]
    a, L = fem.form(a), fem.form(L)
    A = fpetsc.assemble_matrix(a, bcs=bcs)
    A.assemble()
    if block_size == 2:
        A.setBlockSize(2)
    b = fpetsc.assemble_vector(L)
    fpetsc.apply_lifting(b, [a], bcs=[bcs])
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    fpetsc.set_bc(b, bcs)
    ndofs = V.dofmap.index_map.size_global * V.dofmap.index_map_bs
    # the mesh owns the communicator the PETSc objects live on: keep it alive
    return A, b, ndofs, (msh, V, a, L)


@pytest.mark.parametrize("block_size", [1, 2])
def test_gamg_and_lu_agree(block_size):
    comm = MPI.COMM_WORLD
    A, b, ndofs, _keep = _contrast_problem(comm, block_size)
    sols, ksps = {}, {}
    for kind in ("lu", "gamg"):
        ksps[kind] = solvers.make_ksp(comm, A, f"test_solvers_{kind}_{block_size}_",
                                      solvers.preset(kind, ndofs, 1e-10, block_size))
        x = A.createVecRight()
        its = solvers.solve_checked(ksps[kind], b, x, "test")
        if kind == "gamg":
            assert 0 < its < 60
        sols[kind] = x
    d = sols["gamg"].copy()
    d.axpy(-1.0, sols["lu"])
    assert d.norm() <= 1e-7 * sols["lu"].norm()
    # new values in the same matrix (every electrical step): the GAMG KSP re-sets up,
    # keeping its interpolation, and still agrees
    A.scale(2.0)
    y = A.createVecRight()
    solvers.solve_checked(ksps["gamg"], b, y, "test")
    y.scale(2.0)
    y.axpy(-1.0, sols["lu"])
    assert y.norm() <= 1e-7 * sols["lu"].norm()


def test_two_potential_cholesky_equals_lu():
    """The direct two-potential preset factorises by MUMPS Cholesky, which reads one
    triangle of the matrix: on the MSMD pattern (with Dirichlet rows and columns) it must
    give MUMPS LU's solution to rounding, and a small true residual."""
    comm = MPI.COMM_WORLD
    A, b, ndofs, _keep = _contrast_problem(comm, 2)
    opts = solvers.preset("lu", ndofs, 1e-10, 2)
    assert opts["pc_type"] == "cholesky"
    sols = {}
    for name, o in (("cholesky", opts), ("lu", {**opts, "pc_type": "lu"})):
        ksp = solvers.make_ksp(comm, A, f"test_chol_{name}_", o)
        x = A.createVecRight()
        solvers.solve_checked(ksp, b, x, "test")
        sols[name] = x
    r = b.copy()
    A.mult(sols["cholesky"], r)
    r.axpy(-1.0, b)
    assert r.norm() <= 1e-10 * b.norm()
    d = sols["cholesky"].copy()
    d.axpy(-1.0, sols["lu"])
    assert d.norm() <= 1e-10 * sols["lu"].norm()


@pytest.mark.parametrize("block_size", [1, 2])
def test_small_direct_solves_order_by_amf(block_size):
    """Up to MUMPS_AMF_LIMIT unknowns the direct preset asks MUMPS for the approximate
    minimum fill ordering (a cheaper analysis than METIS's): MUMPS must report that it used
    it (INFOG(7) = 2), although make_ksp applies the options before the factorisation
    exists, and the solution must equal METIS-ordered MUMPS's to rounding. Above the limit
    the preset leaves MUMPS's own choice."""
    comm = MPI.COMM_WORLD
    A, b, ndofs, _keep = _contrast_problem(comm, block_size)
    opts = solvers.preset("lu", ndofs, 1e-10, block_size)
    assert opts["mat_mumps_icntl_7"] == 2
    assert "mat_mumps_icntl_7" not in solvers.preset("lu", solvers.MUMPS_AMF_LIMIT + 1, 1e-10, block_size)
    sols = {}
    for name, o in (("amf", opts), ("metis", {**opts, "mat_mumps_icntl_7": 5})):
        ksp = solvers.make_ksp(comm, A, f"test_amf_{name}_{block_size}_", o)
        x = A.createVecRight()
        solvers.solve_checked(ksp, b, x, "test")
        assert ksp.getPC().getFactorMatrix().getMumpsInfog(7) == o["mat_mumps_icntl_7"]
        sols[name] = x
        solvers.destroy_ksp(ksp)
    d = sols["amf"].copy()
    d.axpy(-1.0, sols["metis"])
    assert d.norm() <= 1e-10 * sols["metis"].norm()


def test_unsolved_direct_ksp_leaves_no_unused_option_warning():
    """The AMF ordering option is read by MUMPS only when it factorises; a direct KSP that is
    made but never solved (a Simulation set up and not run, without close()) must not make
    PETSc print "unused database option" at exit."""
    import subprocess
    import sys

    code = ("import dolfinx_solver\n"
            "from mpi4py import MPI\n"
            "from petsc4py import PETSc\n"
            "from busbarfem.physics import solvers\n"
            "A = PETSc.Mat().createAIJ([50, 50], nnz=1, comm=MPI.COMM_SELF)\n"
            "for i in range(50): A[i, i] = 2.0\n"
            "A.assemble()\n"
            "o = solvers.preset('lu', 50, 1e-8, symmetric=True)\n"
            "assert o['mat_mumps_icntl_7'] == 2\n"
            "ksp = solvers.make_ksp(MPI.COMM_SELF, A, 'unsolved_', o)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "unused database option" not in (proc.stdout + proc.stderr), proc.stdout + proc.stderr


def test_welded_busbar_gamg_iterations_and_stats():
    """B1 (welded L busbar, weld-edge refinement on, ~29k dofs) with CG+GAMG: the 'auto'
    mesher keeps the tab free of slivers, so the electrical solve stays within the issue's
    25-iteration budget (Delaunay alone: ~180). Also checks the linear-solver statistics
    that summary.json reports."""
    from helpers import ROOT, solve_case

    sim = solve_case(ROOT / "scripts/bench/cases/b1_lbar_welded.yaml",
                     ["mesh.cache=false", "solver.electrical_solver=gamg",
                      "solver.thermal_solver=gamg", "solver.rtol=1e-8"], comm=MPI.COMM_SELF)
    ls = sim.summary()["linear_solvers"]
    el, th = ls["electrical"], ls["thermal"]
    assert el["method"] == "cg+gamg" and th["method"] == "cg+gamg"
    assert el["solves"] >= len(sim.rows) >= 2  # at least one electrical solve per recorded step
    assert 0 < el["iterations_max"] <= 25
    assert el["iterations_total"] == pytest.approx(el["iterations_mean"] * el["solves"])
    assert th["solves"] >= 1 and th["iterations_max"] <= 25


def test_limit_blas_threads_sets_numpys_openblas():
    """``solvers.limit_blas_threads(n)`` reaches numpy's OpenBLAS (read back through its own
    getter) and can restore the previous count."""
    import ctypes

    with open("/proc/self/maps") as fh:
        libs = sorted({line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line})
    getters = []
    for path in libs:
        lib = ctypes.CDLL(path)
        for name in ("openblas_get_num_threads", "scipy_openblas_get_num_threads64_",
                     "scipy_openblas_get_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_int
                getters.append(fn)
                break
    if not getters:
        pytest.skip("no OpenBLAS loaded")
    before = [g() for g in getters]
    try:
        assert solvers.limit_blas_threads(1) == len(getters)
        assert [g() for g in getters] == [1] * len(getters)
        a = np.arange(12.0).reshape(3, 4)
        assert np.array_equal(a @ a.T, np.einsum("ik,jk->ij", a, a))  # BLAS still works
    finally:
        solvers.limit_blas_threads(max(before))
    assert max(g() for g in getters) == max(before)


def test_two_potential_gamg_reads_a_threshold_per_level(tmp_path):
    """PETSc takes the two-potential preset's per-level thresholds (finest 0.05, coarser 0.02:
    docs/performance.md, "Session 17") as a list, not only its first value."""
    assert solvers.gamg_threshold_option((0.05, 0.02)) == "0.05,0.02"
    assert solvers.gamg_threshold_option(0.02) == 0.02
    with pytest.raises(ValueError):
        solvers.gamg_threshold_option((0.05, 1.5))
    msh = dmesh.create_unit_cube(MPI.COMM_SELF, 10, 10, 10)
    V = fem.functionspace(msh, ("Lagrange", 1, (2,)))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    A = fpetsc.assemble_matrix(fem.form(ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx + ufl.inner(u, v) * ufl.dx))
    A.assemble()
    views = {}
    for bs in (1, 2):
        ksp = solvers.make_ksp(msh.comm, A, "bbf_test_thr_", solvers.preset("gamg", 10**6, 1e-8, block_size=bs))
        ksp.setUp()
        out = tmp_path / f"view{bs}.txt"
        viewer = PETSc.Viewer().createASCII(str(out), comm=msh.comm)
        ksp.view(viewer)
        viewer.destroy()
        solvers.destroy_ksp(ksp)
        line = next(ln for ln in out.read_text().splitlines() if "Threshold for dropping small values" in ln)
        views[bs] = [float(t) for t in line.split("=")[1].split()]
    A.destroy()
    assert views[1][0] == pytest.approx(0.02) and all(t == pytest.approx(0.02) for t in views[1])
    fine, *coarse = views[2]
    assert fine == pytest.approx(solvers.MSMD_GAMG_THRESHOLD[0]) and coarse
    assert all(t == pytest.approx(solvers.MSMD_GAMG_THRESHOLD[-1]) for t in coarse)
