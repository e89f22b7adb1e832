"""MSMD two-potential cells: Bernardi number, stage parity in series, parallel split.

Geometries are hand-built boxes (tests/msmd_fixture.py) so the electrical coupling is
verified independently of the geometry builders.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from mpi4py import MPI
from msmd_fixture import box_bundle

from dolfinx import fem

from busbarfem.case.loader import load_case
from busbarfem.coupling import Simulation, contributions

CASE = """
name: msmd_box
geometry:
  busbars: [{{path: [[0, 0], [0.01, 0]], width: 0.01, thickness: 0.001}}]
cell:
  capacity: 3.0
  ocv: [[0.0, {ocv}], [1.0, {ocv2}]]
  entropic_coefficient: [[0.0, {dudt}], [1.0, {dudt}]]
  R0: {r0}
  sigma_pos: {sigma}
  sigma_neg: {sigma}
  alpha_pos: {alpha}
  alpha_neg: {alpha}
  initial_soc: 0.5
  variation: {variation}
load:
  electrical_input_type: current
  current_type: constant
  current: {current}
thermal:
  initial_temperature: {T}
  ambient_temperature: {T}
  boundaries: [{{type: convection, regions: [exterior], h: 10.0}}]
solver: {{analysis: transient, t_end: 1.0, dt: 1.0, electrical_solver: lu, thermal_solver: lu}}
"""


def make_sim(tmp_path, bundle, comm=MPI.COMM_WORLD, **kw):
    prm = dict(ocv=3.6, ocv2=3.8, dudt=0.0, r0=0.02, current=3.0, T=298.15, variation="null", sigma=1.0e8,
               alpha=0.0)
    prm.update(kw)
    path = tmp_path / "case.yaml"
    if comm.rank == 0:
        path.write_text(textwrap.dedent(CASE.format(**prm)))
    comm.barrier()
    case, src = load_case(path)
    sim = Simulation(case, src, comm)
    sim.setup(bundle=bundle)  # the model's load controller gives the step targets
    return sim


def cell(name, lo, hi, stage, parallel):
    return {"name": name, "lo": lo, "hi": hi, "kind": "cell", "field": None, "stage": stage, "parallel": parallel}


def cu(name, lo, hi, field):
    return {"name": name, "lo": lo, "hi": hi, "material": "copper", "field": field}


def single_cell(comm, height=0.04125):
    """One 20 x 20 x h mm cell (Vb = 16.5e-6 m^3 at the default h) with two copper tabs."""
    boxes = [cell("cell_1_1", (0, 0, 0), (0.02, 0.02, height), 1, 1),
             cu("tab_pos_1_1", (0.005, 0.005, height), (0.015, 0.015, height + 0.002), 1),
             cu("tab_neg_1_1", (0.005, 0.005, -0.002), (0.015, 0.015, 0.0), 2)]
    return box_bundle(comm, boxes, {"terminal_pos": ("tab_pos_1_1", "zmax"),
                                    "terminal_neg": ("tab_neg_1_1", "zmin")}, size=0.004)


def test_bernardi_18650_number_from_solver_heat(tmp_path):
    """Bernardi 18650 worked example: I = 3 A, Vb = 16.5e-6, OCV - V = 0.13 V, dU/dT = -1e-4, 298 K."""
    comm = MPI.COMM_WORLD
    sim = make_sim(tmp_path, single_cell(comm), ocv=3.7, ocv2=3.7 + 1e-9, dudt=-1.0e-4, r0=0.13 / 3.0,
                   current=3.0, T=298.0)
    sol = sim.model.electrical_step(0.0, 1)
    c = sim.cells
    assert abs(c.volumes[0] - 16.5e-6) < 1e-12
    assert abs(sol.current - 3.0) < 1e-9 and abs(c.current[0] - 3.0) < 1e-6
    q_irr, q_rev = c.heat()
    Vb = c.volumes[0]
    assert abs(q_irr[0] / Vb / 23636 - 1) < 0.005, q_irr[0] / Vb
    assert abs(q_rev[0] / Vb / 5418 - 1) < 0.005, q_rev[0] / Vb
    assert abs((q_irr[0] + q_rev[0]) / Vb / 29054 - 1) < 0.005
    # terminal voltage = OCV(T) - R0 I minus the (tiny) tab and collector drops
    ocv = 3.7 + (298.0 - 298.15) * -1.0e-4
    assert ocv - 0.13 - 1e-3 < sol.voltage < ocv - 0.13


def test_collector_conductivity_follows_temperature(tmp_path):
    """Collector networks with alpha at T = T_ref + 40 K behave exactly like constant
    collectors of conductivity sigma / (1 + 40 alpha); and with a poor collector (1e3 S/m)
    the difference from the cold collector is visible in the terminal voltage."""
    comm = MPI.COMM_WORLD
    bundle = single_cell(comm)
    T, alpha, sigma = 338.15, 0.004, 1.0e3

    def voltage(**kw):
        sim = make_sim(tmp_path, bundle, ocv=3.7, ocv2=3.7 + 1e-9, r0=0.02, current=3.0, T=T, **kw)
        return sim.model.electrical_step(0.0, 1).voltage

    v_alpha = voltage(sigma=sigma, alpha=alpha)
    v_equiv = voltage(sigma=sigma / (1.0 + alpha * (T - 298.15)), alpha=0.0)
    v_cold = voltage(sigma=sigma, alpha=0.0)
    assert v_alpha == pytest.approx(v_equiv, abs=1e-9)
    # the drop beyond R0 I (collectors + tabs, 0.24 V cold) grows by ~16 % (the collectors
    # carry nearly all of it; the copper tabs are the same in both runs)
    drop_cold, drop_hot = 3.7 - 0.06 - v_cold, 3.7 - 0.06 - v_alpha
    assert drop_cold > 0.1
    assert 1.14 < drop_hot / drop_cold < 1.16


def test_two_cells_in_series_alternate_parity(tmp_path):
    """2s1p: stage 2 carries phi+ on field 2; module V = E1 + E2 - (R01 + R02) I."""
    comm = MPI.COMM_WORLD
    h = 0.04
    boxes = [cell("cell_1_1", (0, 0, 0), (0.02, 0.02, h), 1, 1),
             cell("cell_2_1", (0.03, 0, 0), (0.05, 0.02, h), 2, 1),
             cu("tab_pos_1_1", (0.005, 0.005, h), (0.015, 0.015, h + 0.002), 1),
             cu("tab_neg_2_1", (0.035, 0.005, h), (0.045, 0.015, h + 0.002), 1),
             cu("busbar_1", (0.0, 0.0, h + 0.002), (0.05, 0.02, h + 0.004), 1),
             cu("tab_neg_1_1", (0.005, 0.005, -0.002), (0.015, 0.015, 0.0), 2),
             cu("tab_pos_2_1", (0.035, 0.005, -0.002), (0.045, 0.015, 0.0), 2)]
    bundle = box_bundle(comm, boxes, {"terminal_pos": ("tab_pos_2_1", "zmin"),
                                      "terminal_neg": ("tab_neg_1_1", "zmin")}, size=0.004)
    sim = make_sim(tmp_path, bundle, ocv=3.7, ocv2=3.7 + 1e-9, r0=0.02, current=10.0)
    sol = sim.model.electrical_step(0.0, 1)
    I = sim.cells.current
    assert np.allclose(I, 10.0, rtol=1e-6), I
    expected = 2 * 3.7 - 2 * 0.02 * 10.0
    assert abs(sol.voltage - expected) < 1e-3 * expected, (sol.voltage, expected)
    assert sol.voltage < expected  # interconnect drops are real and positive


def test_parallel_cells_share_current_inversely_to_R0(tmp_path):
    """1s2p with R0 = 20 and 30 mOhm (listed variation): I_j = (E - V)/R0_j within 0.5 %."""
    comm = MPI.COMM_WORLD
    h = 0.04
    boxes = [cell("cell_1_1", (0, 0, 0), (0.02, 0.02, h), 1, 1),
             cell("cell_1_2", (0.03, 0, 0), (0.05, 0.02, h), 1, 2),
             cu("tab_pos_1_1", (0.005, 0.005, h), (0.015, 0.015, h + 0.002), 1),
             cu("tab_pos_1_2", (0.035, 0.005, h), (0.045, 0.015, h + 0.002), 1),
             cu("busbar_1", (0.0, 0.0, h + 0.002), (0.05, 0.02, h + 0.004), 1),
             cu("tab_neg_1_1", (0.005, 0.005, -0.002), (0.015, 0.015, 0.0), 2),
             cu("tab_neg_1_2", (0.035, 0.005, -0.002), (0.045, 0.015, 0.0), 2),
             cu("busbar_2", (0.0, 0.0, -0.004), (0.05, 0.02, -0.002), 2)]
    bundle = box_bundle(comm, boxes, {"terminal_pos": ("busbar_1", "zmax"),
                                      "terminal_neg": ("busbar_2", "zmin")}, size=0.004)
    sim = make_sim(tmp_path, bundle, ocv=3.7, ocv2=3.7 + 1e-9, r0=0.02, current=10.0,
                   variation="{R0_factors: [1.0, 1.5]}")
    sim.model.electrical_step(0.0, 1)
    I = sim.cells.current
    # lumped oracle (AcuSolve BATTERY_MODULE): V_K = (sum V_j/R_j - I)/(sum 1/R_j), I_j = (V_j - V_K)/R_j
    R = np.array([0.02, 0.03])
    VK = (np.sum(3.7 / R) - 10.0) / np.sum(1 / R)
    I_exact = (3.7 - VK) / R
    assert abs(I.sum() - 10.0) < 1e-6
    assert np.allclose(I, I_exact, rtol=0.005), (I, I_exact)


class Short(contributions.Contribution):
    """An internal short of resistance R_S through the whole cell volume: one Conductance."""

    name = "test_short"

    def __init__(self, bundle, cell):
        self.bundle, self.cell = bundle, cell

    def electrical_elements(self, model):
        self.g = fem.Function(fem.functionspace(model.bundle.mesh, ("DG", 0)))
        return [contributions.Conductance(self.g)]

    def setup(self, model):
        from busbarfem.analysis.regions import RegionIntegrator

        vol = RegionIntegrator(model.bundle, fem.Constant(model.bundle.mesh, 1.0)).by_region()[self.cell]
        self.g.x.array[model.bundle.cells_of(self.cell)] = 1.0 / (R_S * vol)
        self.g.x.scatter_forward()


R_S = 0.05  # ohm


def test_conductance_element_is_an_internal_short(tmp_path):
    """At open circuit a short R_S across an ECM cell (E, R0) carries I = E / (R0 + R_S) and
    the terminals read E R_S / (R0 + R_S) (less the tabs' micro-ohms)."""
    E, R0 = 3.7, 0.02
    comm = MPI.COMM_WORLD
    mp = pytest.MonkeyPatch()
    contributions.registered()
    mp.setitem(contributions._REGISTRY, "test_short", lambda case, bundle: Short(bundle, "cell_1_1"))
    try:
        sim = make_sim(tmp_path, single_cell(comm), ocv=E, ocv2=E + 1e-9, r0=R0, current=0.0)
        sol = sim.model.electrical_step(0.0, 1)
    finally:
        mp.undo()
    assert abs(sol.current) < 1e-9
    assert sim.cells.current[0] == pytest.approx(E / (R0 + R_S), rel=1e-5)
    assert sol.voltage == pytest.approx(E * R_S / (R0 + R_S), rel=1e-4)
    sim.close()
