"""``busbarfem run --lumped`` sizes each cell from the module geometry (pouch, prismatic and
cylindrical bodies), not from the preset's cell.volume: its heat capacity is rho cp V of the
3D model's cell body."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import EXAMPLES
from mpi4py import MPI

from busbarfem.case.loader import load_case
from busbarfem.cli import main
from busbarfem.lumped import cell_volume_area

POUCH = EXAMPLES / "module_4s2p_pouch_discharge.yaml"


def _region_volume(bundle, name: str) -> float:
    """Sum of the tetrahedron volumes of a region, from the mesh coordinates (P1 geometry)."""
    mesh = bundle.mesh
    cells = bundle.cells_of(name)
    x = mesh.geometry.x[mesh.geometry.dofmaps[0][cells]]  # (n, 4, 3)
    d = x[:, 1:, :] - x[:, :1, :]
    vol = np.abs(np.linalg.det(d)).sum() / 6.0
    return mesh.comm.allreduce(float(vol), op=MPI.SUM)


def test_lumped_heat_capacity_is_that_of_the_3d_cell_body():
    """rho cp V of the lumped cell = rho cp x (volume of the meshed cell_1_1 region) to 1e-6,
    for the pouch example (LG_M50 preset: its own cell.volume would be 4x smaller). (A
    prismatic module meshes in ~80 s on this machine, too slow for the unit tier.)"""
    from busbarfem.mesh import build_mesh

    case, _ = load_case(POUCH, ["mesh.size=0.03"])
    cell = None
    vol, area = cell_volume_area(case.geometry.module.cell)
    bundle = build_mesh(case, MPI.COMM_WORLD)
    v_mesh = _region_volume(bundle, "cell_1_1")
    assert vol == pytest.approx(v_mesh, rel=1e-6)
    assert case.cell.rho * case.cell.cp * vol == pytest.approx(case.cell.rho * case.cell.cp * v_mesh, rel=1e-6)
    if cell is None:  # the defect: the preset's volume was taken before the geometry
        assert case.cell.volume is not None and vol / case.cell.volume > 3.5


def test_pouch_example_runs_lumped_with_the_geometry_heat_capacity(tmp_path, capsys):
    """The pouch example runs --lumped (it was refused: 'cannot size a pouch cell'); over 120 s
    with a negligible h the energy book of a cell, C dT = its heat, gives C = rho cp V_geometry."""
    out = tmp_path / "out"
    code = main(["run", str(POUCH), "--lumped", "-o", str(out), "--set", "solver.t_end=120",
                 "--set", "thermal.boundaries.0.h=1e-9"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    case, _ = load_case(POUCH)
    vol, _area = cell_volume_area(case.geometry.module.cell)
    C = case.cell.rho * case.cell.cp * vol
    assert summary["lumped_thermal"]["heat_capacity_J_K"] == pytest.approx(C, rel=1e-12)
    assert summary["lumped_thermal"]["cell_volume_m3"] == pytest.approx(0.1 * 0.12 * 0.008, rel=1e-12)
    cols = np.genfromtxt(out / "timeseries.csv", delimiter=",", names=True)
    T = [n for n in cols.dtype.names if n.startswith("T_") and "cell_1_1" in n]
    assert T, cols.dtype.names
    dT = cols[T[0]][-1] - cols[T[0]][0]
    heat = summary["energy"]["heat_by_region_J"]["cell_1_1"]
    assert dT > 0.05
    # the book closes to ~6e-6 (the lumped driver's step heat vs its exact temperature
    # integration); a preset-sized cell would be off by a factor 4
    assert C * dT == pytest.approx(heat, rel=1e-4)
