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
