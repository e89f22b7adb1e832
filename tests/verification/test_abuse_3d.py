"""Cell thermal runaway in the 3D run (issue 21): the abuse contribution against independent references.

* A single 18650 in 3D (high conductivity, so nearly isothermal; conductors with negligible
  heat capacity) with small convective loss: onset time and temperature history against
  scipy Radau (rtol 1e-8) of the same lumped ODE, written out here with Kim 2007's numbers,
  using the 3D cell's own volume and cooled area; per cell and per node evaluation.
* The same run under ``mpirun -n 2``: onset times to 1e-6 relative.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from mpi4py import MPI
from scipy.integrate import solve_ivp

ROOT = Path(__file__).resolve().parents[2]
R = 8.314462618
# Kim et al. 2007, Tables 1-2 (H*W in J/m^3), initial c_sei, c_ne, t_sei, alpha, c_e
KIM = dict(A=[1.667e15, 2.5e13, 6.667e13, 5.14e25], Ea=[1.3508e5, 1.3508e5, 1.396e5, 2.74e5],
           HW=[257 * 6.104e5, 1714 * 6.104e5, 314 * 1.221e6, 155 * 4.07e5],
           y0=[0.15, 0.75, 0.033, 0.04, 1.0], t_ref=0.033)
RHO, CP = 2580.0, 830.0
T0 = 403.15

SINGLE = f"""
name: arc3d
geometry:
  module:
    series: 1
    parallel: 1
    cell: {{preset: "18650"}}
    busbars: both
    busbar_thickness: 0.001
mesh: {{size: 0.01, cell_size: 0.02, elements_through_thickness: 1, thin_aspect: 4,
        curvature_elements: 8, optimize: false}}
materials:   # conductors with negligible heat capacity: the cell alone stores the heat
  copper: {{sigma_ref: 5.8e7, k: 390.0, rho: 1.0, cp: 1.0}}
  nickel_plated_steel: {{sigma_ref: 1.0e7, k: 60.0, rho: 1.0, cp: 1.0}}
cell: {{preset: LG_M50, initial_soc: 1.0, k: 30.0, rho: {RHO}, cp: {CP}}}
load: {{electrical_input_type: current, current: 0.0}}
thermal:
  initial_temperature: {T0}
  ambient_temperature: {T0}
  boundaries:
    - {{type: convection, regions: [cell_1_1], h: 2.0}}
solver: {{analysis: transient, t_end: 1500.0, dt: 20.0, max_temperature_change: 0.5,
          thermal_solver: lu, electrical_solver: lu}}
output: {{every: 100000, report: false}}
abuse: {{kinetics: Kim2007, evaluation: cell, stop: {{all_onset: true}}}}
"""


def kim_heat(y):
    """Kim 2007 four-equation kinetics, written here independently of busbarfem: the heat
    [W/m^3] and the four rates at state ``y = (T, c_sei, c_ne, t_sei, alpha, c_e)``."""
    A, Ea, HW = (np.array(KIM[k]) for k in ("A", "Ea", "HW"))
    T, cs, cn, ts, a, ce = y
    k = A * np.exp(-Ea / (R * T))
    r = np.array([k[0] * max(cs, 0), k[1] * np.exp(-ts / KIM["t_ref"]) * max(cn, 0),
                  k[2] * min(max(a, 0), 1) * max(1 - a, 0), k[3] * max(ce, 0)])
    return HW @ r, r


def kim_reference(h_A_per_V, T_amb, t_end):
    """Radau (rtol 1e-8) of rho cp dT/dt = q(T, y) - (hA/V)(T - T_amb); onset at q/(rho cp) = 1 K/s."""
    heat = kim_heat

    def f(t, y):
        q, r = heat(y)
        return [(q - h_A_per_V * (y[0] - T_amb)) / (RHO * CP), -r[0], -r[1], r[1], r[2], -r[3]]

    def onset(t, y):
        return heat(y)[0] / (RHO * CP) - 1.0

    onset.direction = 1
    sol = solve_ivp(f, (0, t_end), [T0] + KIM["y0"], method="Radau", rtol=1e-8, atol=1e-10,
                    dense_output=True, events=onset)
    assert sol.success
    return sol, float(sol.t_events[0][0])


def run_3d(tmp_path, text, comm=MPI.COMM_SELF, area_of="cell_1_1"):
    """Run the case in-process; returns (summary, columns, cell volume, area of the facets of
    ``area_of``: the can's cooled area, or ``"exterior"``). After the run, the abuse heat
    sources are checked to vanish outside the cell bodies, as their support declares
    (:func:`helpers.assert_heat_support_exact`)."""
    from helpers import assert_heat_support_exact

    import ufl
    from dolfinx import fem

    from busbarfem.api import _columns, _source_of, case_from_dict
    from busbarfem.coupling import Simulation

    case, src = _source_of(case_from_dict(yaml.safe_load(text), tmp_path))
    with Simulation(case, src, comm, outdir=tmp_path / "out") as sim:
        sim.setup()
        b = sim.bundle
        one = fem.Constant(b.mesh, 1.0)
        dx = ufl.Measure("dx", domain=b.mesh, subdomain_data=b.cell_tags)
        vol = comm.allreduce(fem.assemble_scalar(fem.form(one * dx(b.tags["cell_1_1"]))), op=MPI.SUM)
        from dolfinx import mesh as dmesh

        fac = b.facets_of(area_of)
        tags = dmesh.meshtags(b.mesh, 2, np.sort(fac).astype(np.int32), np.ones(len(fac), np.int32))
        ds = ufl.Measure("ds", domain=b.mesh, subdomain_data=tags)
        area = comm.allreduce(fem.assemble_scalar(fem.form(one * ds(1))), op=MPI.SUM)
        summary = sim.run()
        cols = _columns(sim.rows)
        assert {"abuse"} <= set(sim.model.heat_support)
        assert_heat_support_exact(sim)
    return summary, cols, vol, area


_RUNS: dict = {}


def single_case(evaluation: str, h: float) -> str:
    """The single-cell case text with the evaluation and the convective h."""
    text = SINGLE.replace("evaluation: cell", f"evaluation: {evaluation}").replace("h: 2.0", f"h: {h}")
    if h == 0.0:
        text = text.replace("- {type: convection, regions: [cell_1_1], h: 0.0}", "[]").replace("boundaries:\n", "boundaries:")
    return text


def single_run(tmp_path_factory, evaluation: str, h: float):
    """The serial single-cell run (cached: the MPI comparison reuses it)."""
    key = (evaluation, h)
    if key not in _RUNS:
        folder = tmp_path_factory.mktemp(f"single_{evaluation}_{h}")
        _RUNS[key] = run_3d(folder, single_case(evaluation, h))
        _RUNS[key + ("folder",)] = folder / "out"
    return _RUNS[key]


def test_report_has_the_runaway_section(tmp_path_factory):
    """The HTML/Markdown report of a 3D abuse run: the runaway table with the summary's onset
    time, the temperature plot with the onsets and the onset-order chart."""
    from busbarfem.io.report import write_report

    summary = single_run(tmp_path_factory, "cell", 2.0)[0]
    out = _RUNS[("cell", 2.0, "folder")]
    paths = write_report(out, renders=False)
    md = paths["md"].read_text()
    assert "Thermal runaway" in md and "1 of 1 cells had their onset" in md
    onset = summary["abuse"]["cells"]["cell_1_1"]["onset_time_s"]
    assert f"{onset:.4g}"[:4] in md
    for name in ("abuse_temperatures", "abuse_onset_order"):
        assert (out / "report_files" / f"{name}.png").stat().st_size > 1000


@pytest.mark.parametrize("evaluation,h", [("cell", 0.0), ("cell", 2.0), ("node", 2.0)])
def test_single_cell_3d_onset_matches_radau(tmp_path_factory, evaluation, h, record_property):
    """3D 18650 (k = 30 W/m/K, h = 0 or 2 W/m^2/K): onset within 1 % of Radau of the lumped ODE
    with the 3D cell's volume and cooled area; the mean T within 0.5 K of it up to 0.9 of the
    onset time (the backward-Euler loss term of the heat equation is first order in dt, so with
    h > 0 the gap grows towards onset, 0.24 % in onset time at 0.5 K per step); the heat released
    (sum over reactions) equals the time integral of the 3D abuse heat source."""
    summary, cols, vol, area = single_run(tmp_path_factory, evaluation, h)
    sol, t_on = kim_reference(h * area / vol, T0, 1500.0)
    ab = summary["abuse"]
    t3 = ab["cells"]["cell_1_1"]["onset_time_s"]
    record_property(f"3D {evaluation} h={h} onset [s]", t3)
    record_property("Radau onset [s]", t_on)
    assert t3 is not None
    assert abs(t3 - t_on) / t_on < 0.01, (t3, t_on)
    t = cols["time [s]"]
    before = t < 0.9 * t_on
    dT = np.abs(cols["abuse_T_cell_1_1 [K]"][before] - sol.sol(t[before])[0])
    record_property(f"3D {evaluation} max |T_mean - T_Radau| before onset [K]", float(dT.max()))
    assert dT.max() < 0.5
    assert "every cell has had its onset" in summary["stop_reason"]
    q = cols["abuse_heat_cell_1_1 [W]"]
    released = float(np.sum(q[1:] * np.diff(t)))
    assert ab["cells"]["cell_1_1"]["energy_total_J"] == pytest.approx(released, rel=1e-6)


@pytest.mark.mpi
@pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="starts its own mpirun; run it serially")
def test_single_cell_node_evaluation_serial_equals_two_ranks(tmp_path, tmp_path_factory, record_property):
    """Per-node kinetics (the dofs split between two ranks): onset time and energy per reaction
    of ``mpirun -n 2 busbarfem run`` equal the serial run's to 1e-6 relative (the energies to 1e-6
    of the total released)."""
    serial = single_run(tmp_path_factory, "node", 2.0)[0]["abuse"]["cells"]["cell_1_1"]
    case = tmp_path / "case.yaml"
    case.write_text(single_case("node", 2.0))
    mpirun = ROOT / ".venv" / "bin" / "mpirun"
    if not mpirun.exists():
        mpirun = Path(sys.executable).parent / "mpirun"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([str(mpirun), "-n", "2", sys.executable, "-m", "busbarfem", "run", str(case), "-o",
                          str(tmp_path / "out"), "--quiet"], capture_output=True, text=True, timeout=600,
                         env=env, check=False)
    assert res.returncode == 0, res.stderr[-2000:] + res.stdout[-2000:]
    par = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert par["mpi_size"] == 2
    cell = par["abuse"]["cells"]["cell_1_1"]
    record_property("node onset serial [s]", serial["onset_time_s"])
    record_property("node onset 2 ranks [s]", cell["onset_time_s"])
    assert cell["onset_time_s"] == pytest.approx(serial["onset_time_s"], rel=1e-6)
    # the run stops at onset, where the fastest reactions grow steeply: a 1e-6 relative change
    # of the stop time moves a small reaction's energy by more than 1e-6 of itself, so each
    # reaction's energy is compared to 1e-6 of the total released
    total = serial["energy_total_J"]
    for r, e in serial["energy_J"].items():
        assert cell["energy_J"][r] == pytest.approx(e, rel=1e-6, abs=1e-6 * total), r


SHORT = """
name: short1s2p
geometry:
  module:
    series: 1
    parallel: 2
    cell: {preset: "21700"}
    busbars: both
    busbar_thickness: 0.001
mesh: {size: 0.01, cell_size: 0.03, elements_through_thickness: 1, thin_aspect: 4,
       curvature_elements: 8, optimize: false}
cell: {preset: LG_M50, initial_soc: 0.9}
load: {electrical_input_type: current, current: 0.0}
thermal:
  boundaries:
    - {type: convection, regions: [exterior], h: 10.0}
solver: {analysis: transient, t_end: 0.02, dt: 0.01, thermal_solver: lu, electrical_solver: lu}
output: {every: 100000, report: false}
abuse:
  kinetics: Kim2007
  triggers:
    - {type: internal_short, cell: cell_1_1, resistance: 0.05, at_time: 0.0}
"""


def loop_resistance(tmp_path, text, R0: float) -> float:
    """Resistance of the path between the two cells of a 1s2p module (collector networks, tabs,
    welds, plates) from one conduction solve of the same mesh, written here: each cell body a
    source of internal resistance R0 (g = 1/(R0 Vol)), EMF 1 V in cell 1 and 0 in cell 2,
    terminals open (current 0): the loop current I = 1 V / (2 R0 + R_loop)."""
    from busbarfem.analysis.regions import RegionIntegrator
    from busbarfem.api import _source_of, case_from_dict
    from busbarfem.coupling import Simulation

    case, src = _source_of(case_from_dict(yaml.safe_load(text), tmp_path))
    with Simulation(case, src, MPI.COMM_SELF, outdir=tmp_path / "loop") as sim:
        sim.setup()
        el, b = sim.model.electrical, sim.bundle
        ab = sim.model.contribution("abuse")
        el.g.x.array[:] = 0.0
        el.emf.x.array[:] = 0.0
        for i, name in enumerate(ab.names):
            c = b.cells_of(name)
            el.g.x.array[c] = 1.0 / (R0 * ab.volumes[i])
            el.emf.x.array[c] = 1.0 if i == 0 else 0.0
        el.g.x.scatter_forward()
        el.emf.x.scatter_forward()
        sol = el.solve("current", 0.0)
        assert abs(sol.current) < 1e-9
        cur = RegionIntegrator(b, el.transfer_current()).by_region()
        i1, i2 = cur[ab.names[0]], cur[ab.names[1]]
        assert i1 == pytest.approx(-i2, rel=1e-9)  # open terminals: the loop current only
        return 1.0 / abs(i1) - 2.0 * R0


def test_internal_short_drains_the_parallel_neighbour(tmp_path, record_property):
    """1s2p LG M50 module at rest, 50 mOhm internal short in cell_1_1: the short current and its
    split between the shorted cell and its parallel neighbour (through the busbars) equal the
    lumped ECM network (two cells E = OCV, R0 at SOC 0.9, 25 C; short across cell 1; no load)
    within 1 %, with the neighbour connected through the loop resistance of the 3D geometry
    (collector networks, tabs, welds, plates: a conduction solve of the same mesh,
    :func:`loop_resistance`); with ideal busbars the neighbour would be 1.1 % off. The
    neighbour's current heats the busbars."""
    from busbarfem.case.cells import CellModel

    summary, cols, _, _ = run_3d(tmp_path, SHORT)
    cell = CellModel.model_validate({"preset": "LG_M50", "initial_soc": 0.9})
    ocv_tab, r0_tab = np.asarray(cell.ocv), np.asarray(cell.R0)
    E = float(np.interp(0.9, ocv_tab[:, 0], ocv_tab[:, 1]))
    R0 = float(np.interp(0.9, r0_tab[:, 0], r0_tab[:, 1]))  # at T_ref = 25 C = the initial T
    Rs = 0.05
    R_loop = loop_resistance(tmp_path, SHORT, R0)
    record_property("loop resistance cell 1 - cell 2 from the 3D geometry [ohm]", R_loop)
    assert 0.0 < R_loop < 1e-3
    V = E * (1 / R0 + 1 / (R0 + R_loop)) / (1 / R0 + 1 / (R0 + R_loop) + 1 / Rs)
    I1, I2 = (E - V) / R0, (E - V) / (R0 + R_loop)
    Is = V / Rs
    V_ideal = (2 * E / R0) / (2 / R0 + 1 / Rs)
    record_property("neighbour current ideal-busbar network [A]", (E - V_ideal) / R0)
    i1, i2 = cols["I_cell_1_1 [A]"][1], cols["I_cell_1_2 [A]"][1]
    i_s = cols["short_1_cell_1_1_current [A]"][1]
    record_property("short current 3D [A]", float(i_s))
    record_property("short current lumped [A]", Is)
    record_property("neighbour current 3D / lumped", float(i2 / I2))
    assert abs(i_s) == pytest.approx(Is, rel=2e-3)
    assert abs(i1) == pytest.approx(I1, rel=2e-3)
    record_property("shorted cell 3D / lumped", float(i1 / I1))
    assert abs(i2) == pytest.approx(I2, rel=2e-3)  # (brief: 1 %; ideal busbars: 1.1 % off)
    assert abs(i1 + i2) == pytest.approx(abs(i_s), rel=1e-6)  # no load: the cells feed the short only
    assert cols["joule_conductors [W]"][1] > 0
    sh = summary["abuse"]["shorts"][0]
    assert sh["on"] and sh["energy_J"] == pytest.approx(Is * V * 0.02, rel=0.02)
    # electrical book: the cells' electrochemical energy = short heat + Joule + Bernardi heat
    e = summary["energy"]
    record_property("electrical residual [J] / electrochemical [J]", e["electrical_residual_J"] / e["electrochemical_energy_J"])
    assert abs(e["electrical_residual_J"]) < 1e-3 * abs(e["electrochemical_energy_J"])


ROW = """
name: row5
geometry:
  module:
    series: 1
    parallel: 5
    cell: {preset: "18650"}
    pitch: [0.021, 0.021]          # 3 mm gaps between the cans
    busbars: both
    busbar_thickness: BB_T
    busbar_material: BB_MAT
    holder: {material: holder, margin: 0.002}
mesh: {size: 0.006, cell_size: 0.02, elements_through_thickness: 1, thin_aspect: 4,
       curvature_elements: 8, optimize: false}
materials:   # an idealised holder and conductors: conductance without heat capacity
  holder: {sigma_ref: 0.0, k: K_HOLDER, rho: 1.0, cp: 1.0}
  copper: {sigma_ref: 5.8e7, k: 390.0, rho: 1.0, cp: 1.0}
  nickel_plated_steel: {sigma_ref: 1.0e7, k: 60.0, rho: 1.0, cp: 1.0}
cell: {preset: LG_M50, initial_soc: 0.9, k: 30.0, rho: 2580.0, cp: 830.0}
load: {electrical_input_type: current, current: 0.0}
thermal:
  boundaries:
    - {type: convection, regions: [exterior], h: 10.0}
solver: {analysis: transient, t_end: 4000.0, dt: 10.0, max_temperature_change: 5.0, dt_min: 0.02,
         thermal_solver: lu, electrical_solver: lu}
output: {every: 100000, report: false}
abuse:
  kinetics: Kim2007
  triggers:
    - {type: heater, cell: cell_1_1, power: 30.0, until_temperature: T_UNTIL}
  stop: {halt_rate: 0.01, halt_time: 300.0, all_onset: true}
"""


def conductance_network(sim):
    """The thermal network of the 3D geometry between the cells' mean temperatures [W/K], by
    steady conduction solves written here with dolfinx: 1 W spread uniformly over cell i's body
    (as the heater and the per-cell reaction heat are), the case's convection to 0 K, the mean
    temperature of every body read off: T_mean = Rm P. Its inverse K = Rm^-1 is the network's
    conductance matrix (diag: the sum of all paths, off-diagonal: -G_ij), so the lumped network
    reproduces the 3D steady cell means exactly, the cells' internal resistance included.
    Returns (G (n, n) symmetric, >= 0, G0 (n,) to ambient)."""
    import ufl
    from dolfinx import fem
    from dolfinx import mesh as dmesh
    from dolfinx.fem.petsc import LinearProblem

    b, th = sim.bundle, sim.th
    ab = sim.model.contribution("abuse")
    names, vols = ab.names, ab.volumes
    V = th.V
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    h = sim.case.thermal.boundaries[0].h
    ext = np.sort(b.facets_of("exterior")).astype(np.int32)
    tags = dmesh.meshtags(b.mesh, 2, ext, np.ones(len(ext), np.int32))
    ds = ufl.Measure("ds", domain=b.mesh, subdomain_data=tags)
    dx = ufl.Measure("dx", domain=b.mesh, subdomain_data=b.cell_tags)
    K = th.k if th.k.ufl_shape == () else ufl.diag(th.k)  # scalar k: every region isotropic
    a = ufl.inner(K * ufl.grad(u), ufl.grad(v)) * ufl.dx + h * u * v * ds(1)
    Tfun = fem.Function(V)
    n = len(names)
    Rm = np.zeros((n, n))
    for i in range(n):
        L = fem.Constant(b.mesh, 1.0 / vols[i]) * v * dx(b.tags[names[i]])
        LinearProblem(a, L, bcs=[], u=Tfun, petsc_options_prefix=f"abuse_g{i}_",
                      petsc_options={"ksp_type": "preonly", "pc_type": "lu"}).solve()
        for j in range(n):
            tot = fem.assemble_scalar(fem.form(Tfun * dx(b.tags[names[j]])))
            Rm[j, i] = sim.comm.allreduce(tot, op=MPI.SUM) / vols[j]
    K = np.linalg.inv(0.5 * (Rm + Rm.T))
    G = np.clip(-(K - np.diag(np.diag(K))), 0.0, None)
    G0 = K.sum(axis=1) + (-(K - np.diag(np.diag(K))) - G).sum(axis=1)
    return 0.5 * (G + G.T), G0


def row_3d(tmp_path, k_holder, T_until=523.15, busbar=("copper", 0.0005)):
    """The 3D row and its conductance network: (summary, G, G0, cell volumes)."""
    from busbarfem.api import _source_of, case_from_dict
    from busbarfem.coupling import Simulation

    case, src = _source_of(case_from_dict(yaml.safe_load(ROW.replace("K_HOLDER", str(k_holder)).replace("T_UNTIL", str(T_until))
                                                  .replace("BB_MAT", busbar[0]).replace("BB_T", str(busbar[1]))), tmp_path))
    with Simulation(case, src, MPI.COMM_SELF, outdir=tmp_path / "out") as sim:
        sim.setup()
        G, G0 = conductance_network(sim)
        vols = sim.model.contribution("abuse").volumes.copy()
        summary = sim.run()
    return summary, G, G0, vols


def row_lumped(G, G0, vols, T_until=523.15, t_end=4000.0):
    """The same row as a lumped network (busbarfem.cells.abuse_lumped) with the 3D conductances."""
    from busbarfem.cells.abuse import kinetics_from_set
    from busbarfem.cells.abuse_lumped import Heater, LumpedCells, StopConditions, run_lumped

    cells = LumpedCells(volume=vols, mass=RHO * vols, cp=CP, area=G0, h=1.0, T_amb=298.15, conductance=G)
    return run_lumped(kinetics_from_set("Kim2007"), cells, t_end, T0=298.15,
                      heaters=[Heater(cell=0, power=30.0, until_temperature=T_until)], dt_max=10.0,
                      max_temperature_change=2.0, stop=StopConditions(halt_rate=0.01, halt_time=300.0,
                                                                      all_onset=True))


@pytest.mark.slow
@pytest.mark.parametrize("k_holder,busbar,propagates", [(0.25, ("copper", 0.0005), True),
                                                        (0.05, ("nickel_plated_steel", 0.0003), False)])
def test_five_cell_row_in_a_holder(tmp_path, k_holder, busbar, propagates, record_property):
    """Five 18650s in a row (3 mm gaps) in a holder, 30 W heater on cell 1 until 250 C: with a
    k = 0.25 W/m/K holder the runaway propagates along the row, with 0.05 W/K it stops after
    cell 1; the onset times are reproduced within 10 % by the lumped network
    (busbarfem.cells.abuse_lumped) of the same cells with the conductances of the 3D geometry
    (steady conduction solves, holder, tabs and busbars included). The propagation speed is
    recorded next to Niu et al. 2020 (0.35 +- 0.15 cells/min, 18650 rows with 3 mm gaps)."""
    summary, G, G0, vols = row_3d(tmp_path, k_holder, busbar=busbar)
    ab = summary["abuse"]
    names = list(ab["cells"])
    t3 = np.array([np.nan if ab["cells"][n]["onset_time_s"] is None else ab["cells"][n]["onset_time_s"]
                   for n in names])
    lumped = row_lumped(G, G0, vols)
    record_property("neighbour conductance G12 [W/K]", float(G[0, 1]))
    record_property("3D onsets [s]", t3.tolist())
    record_property("lumped onsets [s]", lumped.onset_time.tolist())
    record_property("3D speed [cells/min]", ab["propagation"]["speed_cells_per_min"])
    if propagates:
        assert np.all(np.isfinite(t3)) and np.all(np.isfinite(lumped.onset_time))
        assert np.all(np.diff(t3) > 0) and ab["propagation"]["order"] == names
        np.testing.assert_allclose(t3, lumped.onset_time, rtol=0.10)
        assert "every cell has had its onset" in summary["stop_reason"]
    else:
        assert np.isfinite(t3[0]) and np.all(np.isnan(t3[1:]))
        assert np.isfinite(lumped.onset_time[0]) and np.all(np.isnan(lumped.onset_time[1:]))
        assert abs(t3[0] - lumped.onset_time[0]) < 0.10 * lumped.onset_time[0]
        assert "propagation halted after 1 of 5 cells" in summary["stop_reason"]


def test_node_evaluation_restarts_from_a_checkpoint(tmp_path, record_property):
    """Checkpoints carry the abuse state (per node, by global dof): a run restarted from its
    last checkpoint before the onset reaches the same onset time and energies (rel 1e-9)."""
    from busbarfem.cli import main

    case = tmp_path / "case.yaml"
    case.write_text(single_case("node", 0.0))
    out = tmp_path / "out"
    assert main(["run", str(case), "-o", str(out), "-q", "--no-report", "--checkpoint-every", "40"]) == 0
    first = json.loads((out / "summary.json").read_text())
    assert first["abuse"]["cells"]["cell_1_1"]["onset_time_s"] is not None
    steps = len((out / "timeseries.csv").read_text().splitlines()) - 2
    assert steps % 40 > 5, "the onset must come after the last checkpoint"
    assert main(["run", str(case), "--restart", str(out), "-q", "--no-report", "--checkpoint-every", "40"]) == 0
    again = json.loads((out / "summary.json").read_text())
    a, b = first["abuse"]["cells"]["cell_1_1"], again["abuse"]["cells"]["cell_1_1"]
    record_property("onset first / restarted [s]", [a["onset_time_s"], b["onset_time_s"]])
    assert b["onset_time_s"] == pytest.approx(a["onset_time_s"], rel=1e-9)
    for r, e in a["energy_J"].items():
        assert b["energy_J"][r] == pytest.approx(e, rel=1e-9), r
    assert again["abuse"]["events"] == first["abuse"]["events"]


def ecm_short_reference(n_par: int, R_ext: float, R_ic: float, t_end: float, soc0: float = 0.9,
                        T0: float = 298.15, mcp: float | None = None):
    """Independent Radau (rtol 1e-10) of n_par identical LG M50 ECM cells in parallel shorted
    through R_ext (+ the interconnect R_ic in series): I = (OCV - sum V_rc) / (R0 / n + R_ic + R_ext),
    each cell carrying I / n, its RC pairs dV/dt = (R_k I/n - V)/tau_k, SOC by coulomb counting,
    its temperature heated by (I/n)(R0 I/n + sum V_rc) (adiabatic over the second: the
    convective loss of 10 W/m^2/K moves T by < 1e-4 K). Returns the current as a function of t."""
    from busbarfem.case.cells import CellModel
    from busbarfem.cells import ecm

    p = ecm.CellParameters(CellModel(preset="LG_M50", initial_soc=soc0), 1)
    cap = p.cell.capacity

    def current(z):
        soc, T, vrc = z[0:1], z[1], z[2:]
        return n_par * (p.ocv(soc, T)[0] - vrc.sum()) / (p.R0(soc, T)[0] + n_par * (R_ic + R_ext))

    def f(t, z):
        soc, T, vrc = z[0:1], z[1], z[2:]
        i = current(z) / n_par
        heat = i * (p.R0(soc, T)[0] * i + vrc.sum())
        return np.concatenate([[-i / (3600 * cap), heat / mcp], (p.rc_R(soc, T)[0] * i - vrc) / p.rc_tau])

    ref = solve_ivp(f, (0, t_end), np.concatenate([[soc0, T0], np.zeros(p.n_rc)]), method="Radau",
                    rtol=1e-10, atol=1e-12, dense_output=True)
    assert ref.success
    return lambda t: current(ref.sol(t)), p


def _mid(cols):
    """Mid-step times of the recorded steps (the quasi-static solve of a step is at its middle)."""
    t = np.asarray(cols["time [s]"])
    return 0.5 * (t[1:] + t[:-1]), slice(1, None)


CELL_SHORT = SHORT.replace("parallel: 2", "parallel: 1").replace(
    "- {type: internal_short, cell: cell_1_1, resistance: 0.05, at_time: 0.0}",
    "- {type: external_short, cell: cell_1_1, resistance: 0.02}").replace(
    "t_end: 0.02, dt: 0.01", "t_end: 1.0, dt: 0.05")


def test_external_short_of_one_cell_matches_the_ecm(tmp_path, record_property):
    """External short (R_ext = 20 mOhm across the cell's two potentials) of one LG M50 21700 in
    3D at SOC 0.9: the short current of every step over the first second equals (OCV -
    polarisation) / (R0 + R_ext) of the lumped ECM (independent Radau) within 1 %; over the
    event the books close to 1e-6: thermal (Joule + reaction heat = stored + removed) and
    electrical (the cell's electrochemical energy = the energy into the short resistor + the
    heat generated in the model less the reaction heat)."""
    summary, cols, vol, _ = run_3d(tmp_path, CELL_SHORT)
    from busbarfem.case.cells import CellModel

    cm = CellModel.model_validate({"preset": "LG_M50", "initial_soc": 0.9})
    I_ref, _ = ecm_short_reference(1, 0.02, 0.0, 1.0, mcp=cm.rho * cm.cp * vol)
    tm, sl = _mid(cols)
    i3d = np.abs(np.asarray(cols["short_1_cell_1_1_current [A]"])[sl])
    ir = np.array([I_ref(t) for t in tm])
    err = float(np.max(np.abs(i3d - ir) / ir))
    record_property("cell external short 3D current at 0.025 / 0.975 s [A]", [float(i3d[0]), float(i3d[-1])])
    record_property("cell external short ECM current at 0.025 / 0.975 s [A]", [float(ir[0]), float(ir[-1])])
    record_property("cell external short max rel current error, first second", err)
    assert err < 0.01
    e = summary["energy"]
    sh = summary["abuse"]["shorts"][0]
    reaction = sum(summary["abuse"]["cells"]["cell_1_1"]["energy_J"].values())
    record_property("thermal residual rel", e["thermal_residual_rel"])
    assert abs(e["heat_generated_J"] - e["heat_stored_J"] - e["heat_removed_J"]) < 1e-6 * e["heat_generated_J"]
    electrical = e["electrochemical_energy_J"] - e["electrical_energy_out_J"]
    book = sh["energy_J"] + e["heat_generated_J"] - reaction
    record_property("short resistor energy [J]", sh["energy_J"])
    record_property("electrical book rel", abs(electrical - book) / electrical)
    assert electrical == pytest.approx(book, rel=1e-6)


MODULE_SHORT = SHORT.replace(
    "- {type: internal_short, cell: cell_1_1, resistance: 0.05, at_time: 0.0}",
    "- {type: external_short, module: true, resistance: 0.02}").replace(
    "t_end: 0.02, dt: 0.01", "t_end: 1.0, dt: 0.05").replace(
    # the short pulls the cells below the load's default 3 V limit (which would stop the run)
    "current: 0.0}", "current: 0.0, minimum_cell_voltage: 1.0}")


def interconnect_resistance(tmp_path, text) -> float:
    """Terminal-to-terminal resistance of the 3D module with its cells' transfer resistance
    removed (the cells' g = 1/(R Vol) scaled by 1e9, so each cell body is an ideal source
    between its two collector networks): the path of collector foils, tabs, welds and plates
    that the lumped ECM network does not have. From the conductance dI/dV of one solve of
    the same mesh (no run), written here independently of the short."""
    from busbarfem.api import _source_of, case_from_dict
    from busbarfem.coupling import Simulation

    case, src = _source_of(case_from_dict(yaml.safe_load(text), tmp_path))
    with Simulation(case, src, MPI.COMM_SELF, outdir=tmp_path / "ic") as sim:
        sim.setup()
        el = sim.model.electrical
        el.g.x.array[:] *= 1e9
        sol = el.solve("voltage", 0.0)
        return -1.0 / sol.conductance  # discharge-positive: a source has dI/dV < 0


def test_external_short_of_the_module_terminals(tmp_path, record_property):
    """1s2p LG M50 module (SOC 0.9), a 20 mOhm resistor across its terminals from t = 0 (the
    ``resistance`` terminal mode): the module current over the first second equals the lumped
    ECM network of the two cells in parallel with the interconnect resistance of the 3D
    geometry (tabs, welds, plates; from a passive conduction solve of the same mesh) in series,
    within 1 %; the energy into the short resistor is the terminal energy V^2/R, and the books
    close to 1e-6 (thermal; electrochemical = short resistor + electrical heat)."""
    summary, cols, vol, _ = run_3d(tmp_path, MODULE_SHORT)
    from busbarfem.case.cells import CellModel

    cm = CellModel.model_validate({"preset": "LG_M50", "initial_soc": 0.9})
    R_ic = interconnect_resistance(tmp_path, MODULE_SHORT)
    record_property("module interconnect resistance from the 3D geometry [ohm]", R_ic)
    assert 0.0 < R_ic < 1e-3
    I_ref, _ = ecm_short_reference(2, 0.02, R_ic, 1.0, mcp=cm.rho * cm.cp * vol)
    I_ideal, _ = ecm_short_reference(2, 0.02, 0.0, 1.0, mcp=cm.rho * cm.cp * vol)
    tm, sl = _mid(cols)
    i3d = np.asarray(cols["current [A]"])[sl]
    ir = np.array([I_ref(t) for t in tm])
    err = float(np.max(np.abs(i3d - ir) / ir))
    record_property("module short 3D current at 0.025 / 0.975 s [A]", [float(i3d[0]), float(i3d[-1])])
    record_property("module short network current at 0.025 / 0.975 s [A]", [float(ir[0]), float(ir[-1])])
    record_property("module short ideal-busbar network at 0.025 s [A]", float(I_ideal(tm[0])))
    record_property("module short max rel current error, first second", err)
    assert err < 0.01
    V = np.asarray(cols["voltage [V]"])[sl]
    assert np.asarray(cols["short_1_module_current [A]"])[sl] == pytest.approx(V / 0.02, rel=1e-9)
    assert i3d == pytest.approx(V / 0.02, rel=1e-6)  # the terminal solve honours I = V / R
    e = summary["energy"]
    sh = summary["abuse"]["shorts"][0]
    assert sh["energy_J"] == pytest.approx(e["electrical_energy_out_J"], rel=1e-9)
    reaction = sum(c["energy_total_J"] for c in summary["abuse"]["cells"].values())
    record_property("module short resistor energy [J]", sh["energy_J"])
    assert abs(e["heat_generated_J"] - e["heat_stored_J"] - e["heat_removed_J"]) < 1e-6 * e["heat_generated_J"]
    electrical = e["electrochemical_energy_J"]
    book = sh["energy_J"] + e["heat_generated_J"] - reaction
    record_property("module electrical book rel", abs(electrical - book) / electrical)
    assert electrical == pytest.approx(book, rel=1e-6)


def oven_case(T_oven: float, dt: float, max_change: float, t_end: float) -> str:
    """The single 18650 (k = 30, conductors without heat capacity) from 25 C in an oven at
    ``T_oven`` [K] (h = 7.17 W/m^2/K, emissivity 0.8 on every exterior facet, Hatchard's data)."""
    return SINGLE.replace("initial_temperature: 403.15", "initial_temperature: 298.15").replace(
        "ambient_temperature: 403.15", "ambient_temperature: 298.15").replace(
        "    - {type: convection, regions: [cell_1_1], h: 2.0}\n", "").replace("boundaries:\n", "boundaries: []\n").replace(
        "t_end: 1500.0, dt: 20.0, max_temperature_change: 0.5",
        f"t_end: {t_end}, dt: {dt}, max_temperature_change: {max_change}").replace(
        "stop: {all_onset: true}}",
        f"stop: {{all_onset: true}}, triggers: [{{type: oven, temperature: {T_oven}, h: 7.17, emissivity: 0.8}}]}}")


def oven_reference(A_per_V: float, T_oven: float, t_end: float):
    """Radau (rtol 1e-8) of the lumped cell in the oven from 25 C: rho cp dT/dt = q(T, y) +
    (A/V) (h (T_oven - T) + eps sigma (T_oven^4 - T^4)); onset at q/(rho cp) = 1 K/s."""
    heat = kim_heat
    sig = 5.670374419e-8

    def f(t, y):
        q, r = heat(y)
        loss = A_per_V * (7.17 * (T_oven - y[0]) + 0.8 * sig * (T_oven**4 - y[0]**4))
        return [(q + loss) / (RHO * CP), -r[0], -r[1], r[1], r[2], -r[3]]

    def onset(t, y):
        return heat(y)[0] / (RHO * CP) - 1.0

    onset.direction = 1
    onset.terminal = True  # (past onset the consumed species only slow Radau down)
    sol = solve_ivp(f, (0, t_end), [298.15] + KIM["y0"], method="Radau", rtol=1e-8, atol=1e-10,
                    dense_output=True, events=onset)
    assert sol.success
    return sol, (float(sol.t_events[0][0]) if sol.t_events[0].size else np.nan)


def test_oven_heats_the_cell_as_its_energy_book_says(tmp_path, record_property):
    """The first 5 minutes in a 150 C oven (radiation linearised about the iterate, so the oven's
    h changes every step): the thermal book closes to 2e-9 and the cell-mean temperature follows
    the lumped cell of the same volume and exterior area (Radau) within the backward-Euler lag of
    10 s steps (< 2 K; before the fix that re-assembles the operator each step it ran 13 K ahead)."""
    summary, cols, vol, area = run_3d(tmp_path, oven_case(423.15, 10.0, 1.0, 300.0), area_of="exterior")
    # the book's own floor, not the solver's: 7.7e-10 (MUMPS LU), 1.03e-9 (Cholesky, the
    # default since session 13), 9.1e-10 to 9.9e-10 with one or two steps of iterative
    # refinement of either (a solve error would have shrunk under refinement)
    assert summary["energy"]["thermal_residual_rel"] < 2e-9
    ref, _ = oven_reference(area / vol, 423.15, 300.0)
    t, T = np.asarray(cols["time [s]"]), np.asarray(cols["abuse_T_cell_1_1 [K]"])
    err = float(np.max(np.abs(T - ref.sol(t)[0])))
    record_property("oven 150 C, max |T_3D - T_lumped| over 300 s [K]", err)
    assert err < 2.0


@pytest.mark.slow
def test_oven_onset_3d_matches_the_lumped_cell(tmp_path, record_property):
    """The 3D 18650 in the 150 and 155 C ovens (10 s steps, 0.5 K per step) against the lumped
    cell with the 3D cell's volume and exterior area (can, caps and busbar plates: A/V 38 %
    above the bare cylinder's). Near the critical oven temperature the onset time is
    ill-conditioned (15 min per K at 150 C), so the agreement is asserted in oven temperature:
    the 3D onset lies between the lumped onsets of ovens 0.25 K hotter and 0.25 K colder. Both
    run away (the papers: not at 150 C); the critical oven temperature of this geometry is
    149.4 C (lumped, bisection; 145.6 C for the bare cylinder; see docs/abuse.md)."""
    for T_oven in (423.15, 428.15):
        summary, cols, vol, area = run_3d(tmp_path / f"oven{T_oven}", oven_case(T_oven, 10.0, 0.5, 5400.0),
                                          area_of="exterior")
        t_ref = [oven_reference(area / vol, T_oven + d, 5400.0)[1] for d in (0.25, 0.0, -0.25)]
        t3 = summary["abuse"]["cells"]["cell_1_1"]["onset_time_s"]
        record_property(f"oven {T_oven - 273.15:.0f} C onset 3D [min]", t3 / 60)
        record_property(f"oven {T_oven - 273.15:.0f} C onset lumped at +0.25 / 0 / -0.25 K [min]",
                        [x / 60 for x in t_ref])
        assert summary["energy"]["thermal_residual_rel"] < 1e-9
        assert t_ref[0] <= t3 <= t_ref[2]
