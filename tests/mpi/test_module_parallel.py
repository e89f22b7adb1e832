"""Serial and MPI agree on per-cell currents of an MSMD module (run under mpirun -n 2).

Each rank also solves on COMM_SELF; the 2-rank solve must give the same per-cell currents
to 1e-6 relative (issue 4 acceptance)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI
from msmd_fixture import box_bundle

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "verification"))
from test_msmd import make_sim  # noqa: E402


def two_by_two(comm):
    h = 0.04
    boxes = []
    for s in (1, 2):
        for p in (1, 2):
            x0, y0 = (s - 1) * 0.03, (p - 1) * 0.03
            boxes.append({"name": f"cell_{s}_{p}", "lo": (x0, y0, 0), "hi": (x0 + 0.02, y0 + 0.02, h),
                          "kind": "cell", "field": None, "stage": s, "parallel": p})
    cu = {"material": "copper"}
    boxes += [
        {"name": "busbar_1", "lo": (0, 0, h), "hi": (0.05, 0.05, h + 0.001), "field": 1, **cu},      # + of s1, - of s2
        {"name": "busbar_2", "lo": (0, 0, -0.001), "hi": (0.02, 0.05, 0), "field": 2, **cu},         # - of stage 1
        {"name": "busbar_3", "lo": (0.03, 0, -0.001), "hi": (0.05, 0.05, 0), "field": 2, **cu},      # + of stage 2
    ]
    return box_bundle(comm, boxes, {"terminal_pos": ("busbar_3", "zmin"), "terminal_neg": ("busbar_2", "zmin")},
                      size=0.005)


def test_cell_currents_serial_equals_parallel(tmp_path):
    shared = Path(MPI.COMM_WORLD.bcast(str(tmp_path), root=0))  # one case file for COMM_WORLD
    results, keep = [], []
    for comm, tmp in ((MPI.COMM_SELF, tmp_path), (MPI.COMM_WORLD, shared)):
        sim = make_sim(tmp, two_by_two(comm), comm=comm, r0=0.02, current=10.0,
                       variation="{R0_factors: [1.0, 1.4, 0.8, 1.0]}")
        sim.model.electrical_step(0.0, 1)
        results.append(sim.cells.current.copy())
        keep.append(sim)  # parallel PETSc objects must not be collected at rank-dependent times
    ser, par = results
    assert abs(par.sum() - 20.0) < 1e-6  # 2p x 10 A per stage, both stages
    np.testing.assert_allclose(par, ser, rtol=1e-6)


def test_circuit_coarse_space_in_parallel_matches_lu(monkeypatch, tmp_path):
    """On 2 ranks the automatic circuit coarse space (threshold lowered below a 2s1p module) is
    switched on and gives the 2-rank MUMPS terminal voltage and cell currents within 2e-6."""
    from helpers import EXAMPLES, solve_case

    from busbarfem.physics import solvers

    shared = Path(MPI.COMM_WORLD.bcast(str(tmp_path), root=0))
    ov = ["geometry.module.series=2", "geometry.module.parallel=1", "solver.adaptive=false", "solver.dt=30",
          "solver.t_end=30", "mesh.size=0.012", "solver.electrical.reduced.enabled=false"]  # the full solve
    monkeypatch.setattr(solvers, "CIRCUIT_COARSE_SPACE", "auto")
    monkeypatch.setattr(solvers, "CIRCUIT_COARSE_MIN_DOFS", 1_000)
    out = []
    for kind in ("gamg", "lu"):
        sim = solve_case(EXAMPLES / "module_4s2p_discharge.yaml", [*ov, f"solver.electrical_solver={kind}"],
                         comm=MPI.COMM_WORLD, cache_dir=shared)
        s = sim.summary()
        out.append((s["terminal"]["voltage_V"], np.array([s["cells"][n]["current_A"] for n in sorted(s["cells"])]),
                    sim.el.circuit_space))
    (v, i, ncol), (vl, il, ncol_lu) = out
    assert ncol > 4 and ncol_lu == 0
    assert abs(v / vl - 1) < 2e-6
    assert np.max(np.abs(i - il)) < 2e-6 * np.max(np.abs(il))


def test_circuit_space_does_not_depend_on_the_partition(tmp_path):
    """The circuit coarse space (one indicator per (region, field), a dof shared by regions in
    the first one's) is the serial one on 2 ranks when a region's cells and the dofs on its
    boundary live on different ranks: the cell body on rank 0, its tabs on rank 1, so rank 1
    owns interface dofs of the cell's second potential without holding a cell cell. Every free
    dof is in exactly one column, each column holds as many dofs as serially, and the coarse
    matrix Z^T A Z equals the serial one to 1e-12 (deciding on the owner's cells alone left
    such dofs in no column: 7 of 0.78M at 16s6p, whose coarse-corrected solves then took
    15.5 instead of 10 iterations on 2 ranks)."""
    from test_msmd import CASE

    from busbarfem.case.loader import load_case
    from busbarfem.coupling import Simulation

    height = 0.04125
    boxes = [{"name": "cell_1_1", "lo": (0, 0, 0), "hi": (0.02, 0.02, height), "kind": "cell", "field": None,
              "stage": 1, "parallel": 1},
             {"name": "tab_pos_1_1", "lo": (0.005, 0.005, height), "hi": (0.015, 0.015, height + 0.002),
              "material": "copper", "field": 1},
             {"name": "tab_neg_1_1", "lo": (0.005, 0.005, -0.002), "hi": (0.015, 0.015, 0.0),
              "material": "copper", "field": 2}]
    terms = {"terminal_pos": ("tab_pos_1_1", "zmax"), "terminal_neg": ("tab_neg_1_1", "zmin")}

    def tabs_last(c, nparts):  # the tabs (outside 0 < z < h) on the last rank
        return np.where((c[:, 2] > height) | (c[:, 2] < 0), nparts - 1, 0)

    shared = Path(MPI.COMM_WORLD.bcast(str(tmp_path), root=0))
    text = CASE.format(ocv=3.6, ocv2=3.8, dudt=0.0, r0=0.02, current=3.0, T=298.15, variation="null",
                       sigma=1.0e8, alpha=0.0).replace("electrical_solver: lu", "electrical_solver: gamg")
    out, keep = [], []
    for comm, tmp in ((MPI.COMM_SELF, tmp_path / "serial"), (MPI.COMM_WORLD, shared / "world")):
        if comm.rank == 0:
            tmp.mkdir(exist_ok=True)
            (tmp / "case.yaml").write_text(text)
        comm.barrier()
        case, src = load_case(tmp / "case.yaml")
        sim = Simulation(case, src, comm)
        sim.setup(bundle=box_bundle(comm, boxes, terms, size=0.004, rank_of=tabs_last))
        el = sim.el
        assert el.options["pc_type"] == "gamg" and el._Z is not None
        sim.model.electrical_step(0.0, 1)  # assembles A and solves (the KSP is set up)
        Z = el._Z
        ones_c, cnt = Z.createVecRight(), Z.createVecRight()
        ones_r, per_row = Z.createVecLeft(), Z.createVecLeft()
        ones_r.set(1.0)
        Z.multTranspose(ones_r, cnt)        # dofs per column
        ones_c.set(1.0)
        Z.mult(ones_c, per_row)             # columns per dof
        nloc = el.V.dofmap.index_map.size_local * 2
        fixed = np.zeros(nloc, dtype=bool)
        for bc in el.bcs:
            idx, first_ghost = bc.dof_indices()
            fixed[idx[:first_ghost][idx[:first_ghost] < nloc]] = True
        rows = per_row.getArray(readonly=True)
        holes = comm.allreduce(int(np.sum((rows == 0) & ~fixed)), op=MPI.SUM)
        assert comm.allreduce(int(np.sum(rows[fixed] != 0)), op=MPI.SUM) == 0 and np.all(rows <= 1)
        counts = np.concatenate(comm.allgather(cnt.getArray(readonly=True).copy()))
        A = el.ksp.getOperators()[0]
        E = A.ptap(Z)
        r0, r1 = E.getOwnershipRange()
        m = E.getSize()[0]
        loc = np.zeros((r1 - r0, m))
        for i in range(r0, r1):
            cols, vals = E.getRow(i)
            loc[i - r0, cols] = vals
        out.append((holes, counts, np.vstack(comm.allgather(loc))))
        keep.append(sim)  # parallel PETSc objects must not be collected at rank-dependent times
    (h1, c1, E1), (h2, c2, E2) = out
    assert h1 == 0 and h2 == 0, (h1, h2)
    np.testing.assert_array_equal(c2, c1)
    assert np.max(np.abs(E2 - E1)) <= 1e-12 * np.max(np.abs(E1))
