"""Design studies on sub-communicators (run under ``mpirun -n 2 pytest tests/mpi``; also serially).

``busbarfem sweep --ranks-per-case 1`` on 2 ranks runs two points at a time, each on its own
rank: its ``sweep.csv`` must equal a serial sweep's (every column but the run time), digit
for digit. With ``--ranks-per-case 2`` each point is one 2-rank solve: equal to 1e-6.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from pathlib import Path

from helpers import EXAMPLES
from mpi4py import MPI
from petsc4py import PETSc  # noqa: F401  (PETSc initialised on every rank at import: a lazy
# start inside one rank's study would be a collective the other rank never joins)

from busbarfem import studies
from busbarfem.cli import main

OV = ["mesh.size=0.004", "mesh.elements_through_thickness=1", "mesh.thin_aspect=4",
      "solver.electrical_solver=lu", "solver.thermal_solver=lu"]
VARY = "geometry.busbars.0.thickness=0.0015,0.002,0.003"


def _table(path: Path) -> list[dict]:
    rows = list(csv.DictReader(path.read_text().splitlines()))
    for r in rows:
        r.pop("run_time_s")
    return rows


def test_sweep_on_subcommunicators_equals_serial():
    comm = MPI.COMM_WORLD
    root = Path(comm.bcast(tempfile.mkdtemp(prefix="bbf_sweep_") if comm.rank == 0 else None, root=0))
    try:
        sets = sum((["--set", s] for s in OV), [])
        rc = main(["sweep", str(EXAMPLES / "busbar_straight.yaml"), *sets, "--vary", VARY, "--ranks-per-case", "1",
                   "-o", str(root / "par"), "-q", "--no-cache"])
        assert rc == 0
        rc = main(["sweep", str(EXAMPLES / "busbar_straight.yaml"), *sets, "--vary", VARY, "--ranks-per-case",
                   str(comm.size), "-o", str(root / "whole"), "-q", "--no-cache"])
        assert rc == 0
        ok = True
        if comm.rank == 0:
            ser = studies.sweep(EXAMPLES / "busbar_straight.yaml", [studies.parse_vary(VARY)], root / "ser",
                                overrides=OV, comm=MPI.COMM_SELF)
            assert [r["status"] for r in ser.rows] == ["ok"] * 3
            par, serial, whole = (_table(root / d / "sweep.csv") for d in ("par", "ser", "whole"))
            ok = par == serial
            for w, s in zip(whole, serial):
                for key in ("R_ohm", "T_max_K", "J_max_A_m2", "P_heat_W"):
                    ok &= abs(float(w[key]) - float(s[key])) <= 1e-6 * abs(float(s[key]))
            # the thickness really matters (the test would notice points mixed up)
            ok &= float(serial[0]["T_max_K"]) > float(serial[2]["T_max_K"])
        assert comm.bcast(ok, root=0)
    finally:
        comm.Barrier()
        if comm.rank == 0:
            shutil.rmtree(root, ignore_errors=True)


def test_faults_on_subcommunicators_equal_serial():
    """``faults --ranks-per-case 1`` on 2 ranks: the same fault table as a serial study, digit for digit."""
    comm = MPI.COMM_WORLD
    root = Path(comm.bcast(tempfile.mkdtemp(prefix="bbf_faults_") if comm.rank == 0 else None, root=0))
    case = EXAMPLES / "module_1s4p_welds.yaml"
    ov = ["cell.R0_activation_energy=0"]
    try:
        par = studies.faults(case, root / "par", targets=["weld_1", "weld_8"], overrides=ov, comm=comm,
                             ranks_per_case=1, cache_dir=root / "cache")
        ok = True
        if comm.rank == 0:
            ser = studies.faults(case, root / "ser", targets=["weld_1", "weld_8"], overrides=ov,
                                 comm=MPI.COMM_SELF, cache_dir=root / "cache")
            ok = [r["status"] for r in ser.rows] == ["ok", "ok"]
            for a, b in zip(par.rows, ser.rows):
                ok &= a["dR_uohm"] == b["dR_uohm"] and a["share_change"] == b["share_change"]
                ok &= a["T_max_K"] == b["T_max_K"] and a["dR_uohm"] > 0
            # the two nuggets give different signatures (points not mixed up)
            ok &= abs(ser.rows[0]["dR_uohm"] - ser.rows[1]["dR_uohm"]) > 1e-3
            ok &= (root / "par" / "faults.csv").read_text() == (root / "ser" / "faults.csv").read_text()
        assert comm.bcast(ok, root=0)
    finally:
        comm.Barrier()
        if comm.rank == 0:
            shutil.rmtree(root, ignore_errors=True)
