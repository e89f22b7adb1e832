"""The physics-contribution protocol: a test contribution's Robin term, volume source and
stop condition go into the coupled model exactly like the case's own terms."""

from __future__ import annotations

from pathlib import Path

import dolfinx_solver  # noqa: F401
import pytest
from mpi4py import MPI

from dolfinx import fem

from busbarfem.case.loader import load_case
from busbarfem.coupling import Simulation, contributions
from busbarfem.events import Condition, EventKind

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
COARSE = ["mesh.size=0.005", "mesh.order=1"]
Q0 = 1.0e5  # W/m^3, the test source
VOLUME = 0.1 * 0.01 * 0.002  # the straight bar [m^3]


class Cooling(contributions.Contribution):
    """h = 10 W/m^2/K to 298.15 K on the exterior as a DG0 Function, a uniform source Q0,
    and a stop at t = t_stop."""

    name = "test_cooling"

    def __init__(self, bundle, t_stop=None, source=True):
        self.bundle, self.t_stop, self.with_source = bundle, t_stop, source

    def setup(self, model):
        msh = model.bundle.mesh
        self.h = fem.Function(fem.functionspace(msh, ("DG", 0)))
        self.h.x.array[:] = 10.0
        self.q = fem.Constant(msh, Q0)

    def heat_sources(self):
        return {"test_source": self.q} if self.with_source else {}

    def robin_terms(self):
        return [contributions.RobinTerm(self.bundle.facets_of("exterior"), self.h, 298.15)]

    def conditions(self, t):
        if self.t_stop is None:
            return []
        return [Condition(kind=EventKind.TEMPERATURE, key="test.t_stop", margin=t - self.t_stop,
                          reached=t >= self.t_stop, reason="test stop", stop=True)]


def run(overrides, factory=None):
    case, src = load_case(EXAMPLES / "busbar_straight.yaml", [*COARSE, *overrides])
    mp = pytest.MonkeyPatch()
    if factory is not None:
        contributions.registered()
        mp.setitem(contributions._REGISTRY, "test_cooling", factory)
    try:
        with Simulation(case, src, MPI.COMM_WORLD) as sim:
            sim.setup()
            return sim.run(), sim
    finally:
        mp.undo()


def test_robin_term_and_volume_source_of_a_contribution():
    ref, _ = run([])
    s, sim = run(["thermal.boundaries=[]"], lambda case, bundle: Cooling(bundle, source=False))
    # the contribution's Function-valued Robin term is the case's convection condition
    assert s["T_max"]["value"] == pytest.approx(ref["T_max"]["value"], rel=1e-10)
    assert s["heat"]["convection_W"] == pytest.approx(ref["heat"]["convection_W"], rel=1e-8)
    s2, _ = run(["thermal.boundaries=[]"], lambda case, bundle: Cooling(bundle))
    # its volume source: Q0 V in the per-source heat, the same in the energy balance
    assert s2["heat"]["by_source_W"]["test_source"] == pytest.approx(Q0 * VOLUME, rel=1e-9)
    assert s2["heat"]["convection_W"] == pytest.approx(s2["heat"]["generated_W"], rel=1e-6)
    assert s2["T_max"]["value"] > s["T_max"]["value"] + 1.0


def test_contribution_stop_condition_is_located_by_the_stepper():
    tol = 0.01
    s, sim = run(["solver.analysis=transient", "solver.t_end=5", "solver.dt=1", "solver.adaptive=false",
                  f"solver.event_tolerance={tol}"], lambda case, bundle: Cooling(bundle, t_stop=2.5))
    t_last = sim.rows[-1]["time [s]"]
    assert s["stop_reason"] == "test stop"
    assert 2.5 <= t_last <= 2.5 + tol + 1e-9
    assert s["events"][-1]["key"] == "test.t_stop" and s["events"][-1]["source"] == "test_cooling"


class Writer(contributions.Contribution):
    """A summary block and a result file written from it by ``write_outputs``."""

    name = "test_writer"
    summary_key = "test_writer"

    def summary(self, heat):
        return {"generated_W": float(sum(sum(v.values()) for v in heat.values()))}

    def write_outputs(self, outdir, summary):
        (Path(outdir) / "test_writer.txt").write_text(repr(summary[self.summary_key]["generated_W"]))


def test_contribution_writes_its_own_outputs_after_the_summary(tmp_path):
    import json

    case, src = load_case(EXAMPLES / "busbar_straight.yaml", COARSE)
    mp = pytest.MonkeyPatch()
    contributions.registered()
    mp.setitem(contributions._REGISTRY, "test_writer", lambda case, bundle: Writer())
    out = tmp_path / "out"
    out.mkdir()
    try:
        with Simulation(case, src, MPI.COMM_WORLD, outdir=out) as sim:
            sim.setup()
            sim.run()
    finally:
        mp.undo()
    s = json.loads((out / "summary.json").read_text())
    # the file holds the block of the written summary.json; the base hook writes nothing
    assert float((out / "test_writer.txt").read_text()) == s["test_writer"]["generated_W"] > 0
    assert contributions.Contribution().write_outputs(out, s) is None
    assert sorted(p.name for p in out.glob("*.txt")) == ["test_writer.txt"]
