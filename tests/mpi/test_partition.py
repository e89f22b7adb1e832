"""Summary values do not depend on how the mesh is partitioned.

Run under ``mpirun -n 2 pytest tests/mpi`` (each rank also solves the same case on
COMM_SELF, the serial reference) and serially (then both solves are serial and the test
checks determinism). Compared: T_max/T_min value, place and region; |J|_max value, place and
region; terminal resistance, voltage and current; Joule power per region; heat balance.

The slow test runs every example (transient ones cut to three steps) with ``mpirun -n 3``
(more ranks than cores here: mpich simply oversubscribes) in a subprocess and compares the
summary.json headline numbers with a serial run at 1e-6 relative. The comparison does not
depend on resolution, so each example runs on a coarser mesh than its own (twice its
mesh.size, one element through thin sheets; 3-5x fewer dofs) and both runs share one mesh
from the session's mesh cache (the serial run meshes, the 3-rank run reads the same file,
which a fresh mesh also goes through: bit-identical input to both solves).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import solve_case
import yaml

import dolfinx_solver  # noqa: F401  (before mpi4py)
from mpi4py import MPI

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

RTOL = 1e-6


LU = ["solver.electrical_solver=lu", "solver.thermal_solver=lu"]
CASES = ["busbar_straight.yaml", "busbar_l_bolted.yaml"]


@pytest.fixture(scope="module", params=CASES)
def solved(request):
    """(case, parallel summary, serial summary, serial Simulation) of one example."""
    case = request.param
    par = solve_case(EXAMPLES / case, LU, MPI.COMM_WORLD).result
    ser_sim = solve_case(EXAMPLES / case, LU, MPI.COMM_SELF)
    return case, par, ser_sim.result, ser_sim


def value_at(fn, x) -> float:
    """Serial Function ``fn`` evaluated at the point ``x``."""
    from dolfinx import geometry

    msh = fn.function_space.mesh
    pt = np.asarray([x], dtype=np.float64)
    tree = geometry.bb_tree(msh, msh.topology.dim)
    cells = geometry.compute_colliding_cells(msh, geometry.compute_collisions_points(tree, pt), pt)
    if not len(cells.links(0)):
        # a P2 (curved-map) dof coordinate of a corner can land 1e-17 outside: step inwards
        centre = 0.5 * (msh.geometry.x.min(axis=0) + msh.geometry.x.max(axis=0))
        pt = pt + 1e-10 * (centre - pt)
        cells = geometry.compute_colliding_cells(msh, geometry.compute_collisions_points(tree, pt), pt)
    assert len(cells.links(0)), f"point {x} is outside the mesh"
    return float(fn.eval(pt, np.asarray([cells.links(0)[0]], dtype=np.int32))[0])


def close(a: float, b: float, scale: float | None = None) -> bool:
    return abs(a - b) <= RTOL * max(abs(b), scale or 0.0)


def test_mesh_is_the_same(solved):
    case, par, ser, _ = solved
    assert par["dofs"] == ser["dofs"], case
    assert par["mpi_size"] == MPI.COMM_WORLD.size and ser["mpi_size"] == 1


def test_terminal_and_heat_balance(solved):
    case, par, ser, _ = solved
    for key in ("voltage_V", "current_A", "resistance_ohm", "power_W"):
        assert close(par["terminal"][key], ser["terminal"][key]), (case, key, par["terminal"], ser["terminal"])
    gen = ser["heat"]["generated_W"]
    for key in ("generated_W", "convection_W", "fixed_temperature_W", "radiation_W", "flux_in_W"):
        assert close(par["heat"][key], ser["heat"][key], scale=gen), (case, key, par["heat"], ser["heat"])
    assert par["stop_reason"] == ser["stop_reason"]


@pytest.mark.parametrize("which", ["T_max", "T_min", "J_max"])
def test_extremum_value_place_and_region(solved, which):
    case, par, ser, ser_sim = solved
    p, s = par[which], ser[which]
    assert close(p["value"], s["value"]), (case, which, p, s)
    # Where several dofs tie (T_min on a fixed-temperature face) any of them may win; the
    # place reported in parallel must be a place where the serial field takes the extreme value.
    fn = ser_sim.th.T if which.startswith("T") else ser_sim.out_Jmag
    assert close(value_at(fn, p["x"]), s["value"]), (case, which, p["x"], s["x"])
    if np.allclose(p["x"], s["x"], rtol=0, atol=1e-12):
        assert p["region"] == s["region"], (case, which, p, s)
    else:
        # a tie across an interface may name either neighbour; it must still be a region
        assert p["region"] in ser["joule_power_W"]["by_region"], (case, which, p)


def test_joule_power_by_region(solved):
    case, par, ser, _ = solved
    pj, sj = par["joule_power_W"], ser["joule_power_W"]
    assert set(pj["by_region"]) == set(sj["by_region"])
    total = sj["total"]
    assert close(pj["total"], total)
    for name, val in sj["by_region"].items():
        assert close(pj["by_region"][name], val, scale=total * 1e-3), (case, name, pj["by_region"][name], val)


# ------------------------------------------------------------------ mpirun -n 3 vs serial
MPIRUN = ROOT / ".venv" / "bin" / "mpirun"
PYTHON = ROOT / ".venv" / "bin" / "python"


# Too big for a quick comparison: 416k electrical dofs, ~3 min serially for three steps.
# The cold-plate module (122k cells) is compared serial vs mpirun -n 2 on a 2s1p version of
# itself in tests/verification/test_cooled_module.py.
# (the PyBaMM and abuse examples have their own serial vs mpirun -n 2 tests:
# test_pybamm_cells_3d.py, test_abuse_3d.py)
TOO_SLOW = {"module_8s6p_cccv.yaml", "module_4s2p_cold_plate.yaml", "module_2s2p_pybamm.yaml",
            "abuse_row_holder.yaml"}
# Compared serial vs parallel elsewhere already, in more detail than the headline numbers here:
# busbar_l_bolted by the ``solved`` tests above (under mpirun -n 2: terminal, heat balance,
# extrema values, places and regions, Joule power per region, at the same 1e-6) and by
# tests/mpi/test_serial_vs_parallel.py. busbar_straight is compared there too but stays here:
# its 3-rank run pins the hot-spot deadlock (below).
COMPARED_ELSEWHERE = {"busbar_l_bolted.yaml"}

# io/hotspots.find_hotspots calls the collective _dof_regions only on ranks that have local
# maxima; with 3 ranks one often has none and the run deadlocks after the solve. Fixed; pinned
# by test_three_ranks_match_serial[busbar_straight] (3 ranks on busbar_straight at mesh.size
# 0.004, the run test_three_ranks_hotspots_do_not_deadlock made on its own before; run_cli
# fails on a hang instead of waiting for ever).
HOTSPOT_DEADLOCK_FIXED = True


# Partitioning is what is compared, not the discretisation: a mesh twice as coarse as the
# example's, with one element (and flatter tets) through the thin sheets, keeps every region,
# contact and terminal of the example at a fraction of the cost (e.g. weld_nuggets 31k -> 14k
# dofs, bolted_lug_contact 43k -> 12k).
COARSE = ["mesh.elements_through_thickness=1", "mesh.thin_aspect=4"]


def example_runs() -> list:
    """Every example with the overrides that keep it short: a coarser mesh (:data:`COARSE`,
    twice the example's mesh.size), steady ones otherwise as they are, transient ones cut to
    their first three time steps (the full runs take minutes)."""
    from busbarfem.case.geometry import MeshOptions

    default_size = MeshOptions.model_fields["size"].default
    out = []
    for p in sorted(EXAMPLES.glob("*.yaml")):
        data = yaml.safe_load(p.read_text())
        solver = data.get("solver") or {}
        size = float((data.get("mesh") or {}).get("size", default_size))
        overrides = [*COARSE, f"mesh.size={2 * size:g}"]
        if solver.get("analysis", "steady") != "steady":
            overrides.append(f"solver.t_end={3 * float(solver.get('dt', 1.0))}")
        marks = [pytest.mark.skip(reason="too big for a quick 3-rank comparison")] if p.name in TOO_SLOW else []
        if p.name in COMPARED_ELSEWHERE:
            marks = [pytest.mark.skip(reason="compared serial vs mpirun -n 2 by tests/mpi (COMPARED_ELSEWHERE)")]
        out.append(pytest.param(p.name, overrides, id=p.stem, marks=marks))
    return out


def headline(summary: dict) -> dict[str, float]:
    h = {"T_max": summary["T_max"]["value"], "T_min": summary["T_min"]["value"],
         "J_max": summary["J_max"]["value"], "joule_total": summary["joule_power_W"]["total"],
         "heat_generated": summary["heat"]["generated_W"]}
    for k in ("voltage_V", "current_A", "resistance_ohm"):
        if summary["terminal"][k] is not None:  # V/I is null for modules
            h[k] = summary["terminal"][k]
    for k, v in summary["resistance"].items():
        if v is not None:
            h[k] = v
    for name, v in summary["joule_power_W"]["by_region"].items():
        h[f"joule_{name}"] = v
    for name, v in summary["heat"]["by_region"].items():
        h[f"heat_{name}"] = v["total_W"]
    if isinstance(summary.get("cells"), dict):  # module cases: per-cell current, voltage, SOC
        for name, c in summary["cells"].items():
            for k in ("current_A", "voltage_V", "soc", "T_mean_K"):
                h[f"{name}_{k}"] = c[k]
    return h


def run_cli(case: Path, out: Path, nranks: int, overrides=(), timeout: float = 300, report: bool = False) -> dict:
    """``busbarfem run`` on ``nranks`` ranks (LU solvers, the session's mesh cache: the
    conftest sets BUSBARFEM_MESH_CACHE); returns summary.json."""
    cmd = [str(PYTHON), "-m", "busbarfem", "run", str(case), "-o", str(out), "-q",
           "--set", "solver.electrical_solver=lu", "--set", "solver.thermal_solver=lu"]
    if not report:
        cmd.append("--no-report")
    for o in overrides:
        cmd += ["--set", o]
    if nranks > 1:
        cmd = [str(MPIRUN), "-n", str(nranks), *cmd]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "MPI_", "HYDRA_", "OMPI_"))}
    env["OMP_NUM_THREADS"] = "1"
    # Own process group, stderr to a file: if one rank dies with a traceback the others wait
    # forever in a collective, so stop as soon as a traceback has sat there for a few seconds
    # (or at the timeout) and kill every rank.
    errfile = out.parent / f"{out.name}.stderr"
    with open(errfile, "w") as ferr:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=ferr, text=True, env=env,
                                start_new_session=True)
        start, traceback_seen = time.monotonic(), None
        while proc.poll() is None:
            time.sleep(1.0)
            now = time.monotonic()
            if traceback_seen is None and "Traceback" in errfile.read_text(errors="replace"):
                traceback_seen = now
            if now - start > timeout or (traceback_seen is not None and now - traceback_seen > 10):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                why = "a rank died with a traceback and the others hung" if traceback_seen else \
                    f"no answer within {timeout} s"
                pytest.fail(f"{' '.join(cmd[:3])}: {why}:\n{errfile.read_text(errors='replace')[-3000:]}")
    err = errfile.read_text(errors="replace")
    assert proc.returncode == 0, (cmd, err[-3000:])
    return json.loads((out / "summary.json").read_text())


@pytest.mark.slow
@pytest.mark.mpi
@pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="starts its own mpirun; run it serially")
@pytest.mark.parametrize("case, overrides", example_runs())
def test_three_ranks_match_serial(tmp_path, case, overrides):
    if not HOTSPOT_DEADLOCK_FIXED:
        pytest.skip("blocked by the hot-spot deadlock (see HOTSPOT_DEADLOCK_FIXED)")
    # the serial run first: it meshes (and caches) without two idle ranks spinning in MPI
    # beside it, the 3-rank run reads that mesh. Rank 0 writes the report only (read back
    # from the output files); it is written once under mpirun here, for busbar_straight.
    ser = run_cli(EXAMPLES / case, tmp_path / "serial", 1, overrides)
    par = run_cli(EXAMPLES / case, tmp_path / "np3", 3, overrides, timeout=180,
                  report=case == "busbar_straight.yaml")
    assert par["mesh_cells"] == ser["mesh_cells"]
    assert par["mpi_size"] == 3 and ser["mpi_size"] == 1
    assert par["dofs"] == ser["dofs"]
    assert par["stop_reason"] == ser["stop_reason"]
    hs, hp = headline(ser), headline(par)
    assert set(hs) == set(hp)
    bad = {k: (hp[k], hs[k]) for k in hs
           if not math.isclose(hp[k], hs[k], rel_tol=RTOL, abs_tol=RTOL * 1e-3 * abs(hs["joule_total"]))}
    assert not bad, (case, bad)
    assert par["T_max"]["region"] == ser["T_max"]["region"]
    assert par["J_max"]["region"] == ser["J_max"]["region"]
