"""Hot spots: separated local maxima, sorted, located, region-named; same on every rank."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import dolfinx_solver  # noqa: F401
import numpy as np
import pytest
from mpi4py import MPI

from dolfinx import fem, mesh

from busbarfem.io.hotspots import default_separation, find_hotspots, suppress, write_hotspots_json
from busbarfem.naming import RegionInfo

ROOT = Path(__file__).resolve().parents[2]
# three bumps of different heights on a smooth background that peaks under the first bump
# (so the background adds no maximum of its own): the answer is known
BUMPS = [((0.25, 0.25, 0.5), 3.0), ((0.75, 0.30, 0.5), 2.0), ((0.50, 0.80, 0.5), 1.0)]
WIDTH = 0.08


def field_value(x):
    c0 = BUMPS[0][0]
    v = -0.3 * sum((x[i] - c0[i]) ** 2 for i in range(3))
    for c, a in BUMPS:
        r2 = sum((x[i] - c[i]) ** 2 for i in range(3))
        v = v + a * np.exp(-r2 / WIDTH**2)
    return v


def make_bundle(comm, n=16):
    """A unit cube split into two regions at x = 0.5 (left, right)."""
    msh = mesh.create_unit_cube(comm, n, n, n)
    tdim = msh.topology.dim
    nc = msh.topology.index_map(tdim).size_local + msh.topology.index_map(tdim).num_ghosts
    mid = mesh.compute_midpoints(msh, tdim, np.arange(nc, dtype=np.int32))
    tags = np.where(mid[:, 0] < 0.5, 1, 2).astype(np.int32)
    ct = mesh.meshtags(msh, tdim, np.arange(nc, dtype=np.int32), tags)
    regions = {"left": RegionInfo(name="left", dim=3), "right": RegionInfo(name="right", dim=3)}
    return SimpleNamespace(mesh=msh, cell_tags=ct, tags={"left": 1, "right": 2}, regions=regions, comm=comm)


def spots_for(comm, family, kind="max", n=5):
    b = make_bundle(comm)
    V = fem.functionspace(b.mesh, (family, 1 if family == "Lagrange" else 0))
    u = fem.Function(V)
    sign = 1.0 if kind == "max" else -1.0
    u.interpolate(lambda x: sign * field_value(x))
    return b, find_hotspots(b, u, n=n, kind=kind)


@pytest.mark.parametrize("family", ["Lagrange", "DG"])
def test_hotspots_find_the_three_bumps_sorted_and_separated(family):
    b, spots = spots_for(MPI.COMM_SELF, family)
    # only three local maxima exist (the slope adds none): not 5 points of one blob
    assert len(spots) == 3
    values = [s["value"] for s in spots]
    assert values == sorted(values, reverse=True)
    h = 1.0 / 16
    for s, (c, a) in zip(spots, BUMPS):
        assert np.linalg.norm(np.array(s["x"]) - c) < 1.5 * h
        # the value is the field's at the reported point (nodal value / DG0 midpoint value)
        assert s["value"] == pytest.approx(field_value(np.array(s["x"])), rel=1e-12)
        assert s["value"] == pytest.approx(a, rel=0.3)
    assert spots[0]["region"] == "left" and spots[1]["region"] == "right"
    # a node on the x = 0.5 interface belongs to the region with the smaller tag
    expected = "left" if family == "Lagrange" or spots[2]["x"][0] < 0.5 else "right"
    assert spots[2]["region"] == expected
    sep = default_separation(b)
    assert sep == pytest.approx(0.05 * np.sqrt(3.0))
    for i in range(3):
        for j in range(i):
            assert np.linalg.norm(np.subtract(spots[i]["x"], spots[j]["x"])) >= sep


def test_hotspots_min_kind_and_n_limit():
    _, spots = spots_for(MPI.COMM_SELF, "Lagrange", kind="min", n=2)
    assert len(spots) == 2
    assert spots[0]["value"] < spots[1]["value"] < 0
    assert np.linalg.norm(np.array(spots[0]["x"]) - BUMPS[0][0]) < 0.1


def test_hotspots_large_separation_keeps_only_the_top():
    b = make_bundle(MPI.COMM_SELF, n=8)
    V = fem.functionspace(b.mesh, ("Lagrange", 1))
    u = fem.Function(V)
    u.interpolate(field_value)
    spots = find_hotspots(b, u, n=5, min_separation=10.0)
    assert len(spots) == 1 and spots[0]["value"] == float(u.x.array.max())


def test_suppress_greedy():
    pts = np.array([[0, 0, 0], [0.1, 0, 0], [1, 0, 0], [1.05, 0, 0], [2, 0, 0]], float)
    assert suppress(np.arange(5)[::-1], pts, 5, 0.5) == [0, 2, 4]
    assert suppress(np.arange(5)[::-1], pts, 2, 0.5) == [0, 2]


def test_write_hotspots_json(tmp_path):
    T = [{"value": 350.0, "x": [0.0, 0.1, 0.2], "region": "weld_1"}]
    J = [{"value": 1e7, "x": [0.0, 0.0, 0.0], "region": "busbar_1"}]
    p = write_hotspots_json(tmp_path, T, J, meta={"min_separation_m": 0.01})
    data = json.loads(p.read_text())
    assert p.name == "hotspots.json"
    assert data["T"] == T and data["J_magnitude"] == J
    assert data["units"]["T"] == "K" and data["min_separation_m"] == 0.01


MPI_SCRIPT = """
import dolfinx_solver, json, sys
from mpi4py import MPI
sys.path.insert(0, {tests!r})
from unit.test_hotspots import spots_for
out = {{}}
for fam in ("Lagrange", "DG"):
    out[fam] = spots_for(MPI.COMM_WORLD, fam)[1]
# gather on rank 0 and print once: two ranks printing at once can interleave on one line
gathered = MPI.COMM_WORLD.gather({{"rank": MPI.COMM_WORLD.rank, "spots": out}}, root=0)
if MPI.COMM_WORLD.rank == 0:
    print(json.dumps(gathered))
"""


@pytest.mark.slow
@pytest.mark.mpi
def test_hotspots_two_ranks_agree_with_serial():
    script = MPI_SCRIPT.format(tests=str(ROOT / "tests"))
    res = subprocess.run([str(ROOT / ".venv/bin/mpirun"), "-n", "2", sys.executable, "-c", script],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    per_rank = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("[")]
    assert len(per_rank) == 1, res.stdout[-2000:]
    per_rank = per_rank[0]
    assert sorted(r["rank"] for r in per_rank) == [0, 1]
    assert per_rank[0]["spots"] == per_rank[1]["spots"]
    for fam in ("Lagrange", "DG"):
        serial = spots_for(MPI.COMM_SELF, fam)[1]
        par = per_rank[0]["spots"][fam]
        assert len(par) == len(serial)
        for a, b in zip(par, serial):
            assert a["value"] == pytest.approx(b["value"], rel=1e-12)
            assert np.allclose(a["x"], b["x"]) and a["region"] == b["region"]
