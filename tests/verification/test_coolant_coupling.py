"""Conjugate coolant channels: a 3D cold plate coupled to the 1D channel model.

References: the exponential outlet temperature of a tube in an isothermal wall
(T_out = T_w - (T_w - T_in) exp(-h P L / (m cp)), Nu = 3.66), the heat supplied (energy
balance), and the serial run under ``mpirun -n 2``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

import coolant_fixture as fx
from busbarfem.geometry.coldplate import ChannelPath, ColdPlateSpec, mesh_cold_plate
from busbarfem.physics import channelflow as cf
from busbarfem.physics.coolant import COOLANTS
from busbarfem.physics.cooling import Circuit, CoolantContribution, FlowInlet, solve_coupled
from busbarfem.physics.thermal import ThermalProblem

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def straight_plate():
    """The heated high-k plate with one straight channel, solved serially."""
    return fx.run(MPI.COMM_SELF)


def test_energy_balance_is_exact(straight_plate):
    """Heat removed by the coolant = m cp (T_out - T_in) = heat conducted into the walls = heat
    supplied on top, each to 1e-6 relative (the construction makes the first two identical)."""
    r = straight_plate
    Q = fx.FLUX * fx.LX * fx.LY
    assert r["flux_in"] == pytest.approx(Q, rel=1e-12)
    assert abs(r["heat_removed"] - r["enthalpy_rise"]) <= 1e-12 * Q
    assert abs(r["wall_heat"] - r["heat_removed"]) <= 1e-9 * Q
    assert abs(r["robin_3d"] - r["heat_removed"]) <= 1e-9 * Q
    assert abs(r["heat_removed"] - Q) <= 1e-6 * Q
    assert abs(r["residual"]) <= 1e-6 * Q


def test_outlet_matches_exponential_for_isothermal_wall(straight_plate):
    """High-k plate (wall spread < 0.01 K): outlet vs T_w - (T_w - T_in) exp(-h P L/(m cp)) with
    h = 3.66 k/D, within 1 % of the coolant temperature rise; laminar flow."""
    r = straight_plate
    w = COOLANTS["water"]
    Tw = float(np.sum(np.multiply(r["T_wall"], r["area"])) / np.sum(r["area"]))
    assert np.ptp(r["T_wall"]) < 0.01
    Tm = 0.5 * (fx.T_IN + r["outlet"])
    h = 3.66 * w.k(Tm) / fx.D
    ref = Tw - (Tw - fx.T_IN) * math.exp(-h * math.pi * fx.D * fx.LX / (fx.M_DOT * w.cp(Tm)))
    rise = ref - fx.T_IN
    assert rise > 2.0
    assert abs(r["outlet"] - ref) <= 0.01 * rise
    Re = 4 * fx.M_DOT / (math.pi * fx.D * w.mu(Tm))
    assert Re < 2300
    # laminar pressure drop of the same tube (Hagen-Poiseuille at the mean properties), 1 %
    dp = 128 * w.mu(Tm) * fx.LX * (fx.M_DOT / w.rho(Tm)) / (math.pi * fx.D**4)
    assert r["pressure_drop"] == pytest.approx(dp, rel=0.01)
    assert r["pumping_power"] == pytest.approx(r["pressure_drop"] * fx.M_DOT / w.rho(fx.T_IN), rel=1e-12)


def test_serpentine_glycol_plate_energy_and_bends():
    """Rectangular serpentine (two U-turns, K = 1.5 per corner) in aluminium, 50/50 glycol, heat
    flux on top: coolant heat = supplied heat to 1e-6; coolant T rises monotonically along the
    channel; the wall area per length is the rectangle's perimeter; dp exceeds the straight-run friction."""
    w, hgt = 0.006, 0.003
    z = 0.004
    pts = [(0.0, 0.01, z), (0.09, 0.01, z), (0.09, 0.025, z), (0.01, 0.025, z), (0.01, 0.04, z), (0.1, 0.04, z)]
    spec = ColdPlateSpec("cp", "aluminium", (0.0, 0.0, 0.0), (0.1, 0.05), 0.008,
                         [ChannelPath("s1", pts, "rectangular", width=w, height=hgt)])
    bundle = mesh_cold_plate(spec, MPI.COMM_SELF, 0.006, 0.003)
    sec = cf.RectangularSection(w, hgt)
    ch = cf.Channel("s1", cf.polyline_segments(pts, sec, bend_loss=1.5, n_sub=2))
    glycol = COOLANTS["ethylene_glycol_50"]
    cool = CoolantContribution([Circuit("loop", glycol, [ch], ["cp_s1_wall"],
                                        FlowInlet(temperature=298.15, volume_flow=[(0.0, 2e-6), (10.0, 4e-6)]))])
    robin = cool.build(bundle)
    q = 1.0e4
    thermal = ThermalProblem(bundle, {"cp": ((237.0,) * 3, 2702.0, 903.0)},
                             [("heat_flux", bundle.facets_of("cp_top"), {"flux": q})], source=0.0,
                             T0=298.15, solver="lu", prefix="cool_serp_", robin_terms=robin)
    cool.attach(thermal)
    cool.set_time(5.0)  # volume flow 3e-6 m^3/s from the table
    solve_coupled(thermal, cool, None, tol=1e-11)
    Q = q * 0.1 * 0.05
    out = cool.outputs()["loop"]
    assert abs(out["heat_removed"] - Q) <= 1e-6 * Q
    assert abs(thermal.heat_flows().coolant - Q) <= 1e-6 * Q
    assert out["mass_flow"] == pytest.approx(3e-6 * glycol.rho(298.15), rel=1e-12)
    T = np.asarray(out["channels"]["s1"]["temperature"])
    assert np.all(np.diff(T) > 0)
    assert sum(cool.area) == pytest.approx(sec.perimeter * ch.length, rel=1e-9)
    s = cool.solutions[0].channels[0]
    friction = sum(cf.friction_factor(Re, sec) * seg.length / sec.hydraulic_diameter * 0.5 * s.m_dot**2
                   / (glycol.rho(Tf) * sec.area**2) for Re, seg, Tf in zip(s.Re, ch.segments, s.T_f))
    bends = 4 * 1.5 * 0.5 * s.m_dot**2 / (np.mean([glycol.rho(t) for t in s.T_f]) * sec.area**2)
    assert out["pressure_drop"] == pytest.approx(friction + bends, rel=2e-3)


@pytest.mark.mpi
@pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="starts its own mpirun; run it serially")
def test_two_ranks_equal_serial(straight_plate):
    """The same coupled plate under mpirun -n 2: outlet T, heat, dp and wall T per segment to 1e-6."""
    mpirun = ROOT / ".venv" / "bin" / "mpirun"
    if not mpirun.exists():
        mpirun = Path(sys.executable).parent / "mpirun"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([str(mpirun), "-n", "2", sys.executable, str(ROOT / "tests" / "coolant_fixture.py")],
                         capture_output=True, text=True, timeout=300, env=env, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    par = json.loads(res.stdout.strip().splitlines()[-1])
    ser = straight_plate
    for key in ("outlet", "heat_removed", "pressure_drop", "T_max"):
        assert par[key] == pytest.approx(ser[key], rel=1e-6), key
    np.testing.assert_allclose(par["T_wall"], ser["T_wall"], rtol=1e-6)
    np.testing.assert_allclose(par["area"], ser["area"], rtol=1e-6)


def test_gap_pad_as_equivalent_layer_gives_the_contact_temperature_jump():
    """A contact conductance h_c = 3000 W/m^2/K meshed as a 0.5 mm layer (k = h_c t): the mean
    temperature drop across it under a uniform flux q equals q / h_c to 1 %; heat balance 1e-6."""
    from busbarfem.case.cooling import InterfaceLayer
    from busbarfem.physics.cooling import InterfaceConductance

    pad = InterfaceConductance.from_case(InterfaceLayer(name="pad", plate="plate", conductance=3000.0))
    assert pad.model_thickness == 5e-4 and pad.conductivity == pytest.approx(1.5)
    path = [(0.0, fx.LY / 2, fx.TH / 2), (fx.LX, fx.LY / 2, fx.TH / 2)]
    spec = ColdPlateSpec("plate", "aluminium", (0.0, 0.0, 0.0), (fx.LX, fx.LY), fx.TH,
                         [ChannelPath("c1", path, "circular", diameter=fx.D)])
    bundle = mesh_cold_plate(spec, MPI.COMM_SELF, 0.004, 0.001, layers=[(pad.name, pad.model_thickness)])
    ch = cf.Channel("c1", cf.polyline_segments(path, cf.CircularSection(fx.D), n_sub=4))
    cool = CoolantContribution([Circuit("loop", COOLANTS["water"], [ch], ["plate_c1_wall"],
                                        FlowInlet(temperature=fx.T_IN, mass_flow=fx.M_DOT))])
    robin = cool.build(bundle)
    q = 5.0e3
    thermal = ThermalProblem(bundle, {"plate": ((1.0e4,) * 3, 2700.0, 900.0),
                                      "pad": ((pad.conductivity,) * 3, 2000.0, 1000.0)},
                             [("heat_flux", bundle.facets_of("pad_top"), {"flux": q})], source=0.0,
                             T0=fx.T_IN, solver="lu", prefix="cool_pad_", robin_terms=robin)
    cool.attach(thermal)
    solve_coupled(thermal, cool, None, tol=1e-11)
    import ufl
    from dolfinx import fem
    ds = ufl.Measure("ds", domain=bundle.mesh, subdomain_data=bundle.facet_tags)
    dS = ufl.Measure("dS", domain=bundle.mesh, subdomain_data=bundle.facet_tags)
    A = fx.LX * fx.LY
    top = fem.assemble_scalar(fem.form(thermal.T * ds(bundle.tags["pad_top"]))) / A
    interface = fem.assemble_scalar(fem.form(ufl.avg(thermal.T) * dS(bundle.tags["plate_top"]))) / A
    assert top - interface == pytest.approx(q / pad.conductance, rel=0.01)
    assert cool.heat_removed() == pytest.approx(q * A, rel=1e-6)


def test_transient_steps_keep_the_balance_and_reuse_the_operator():
    """Backward Euler, inlet temperature ramp (table): every step closes supplied = stored + removed
    (1e-6 of the supplied heat) with removed = the coolant's enthalpy rise (1e-9); h is frozen within
    a step, so the thermal operator is re-assembled at most once per step; few Picard iterations."""
    from busbarfem.physics.cooling import solve_coupled as step_coupled

    thermal, cool = fx.build(MPI.COMM_SELF, k_plate=237.0, n_segments=4, size=0.004, wall_size=0.001,
                             inlet={"temperature": [[0.0, 293.15], [20.0, 303.15]], "mass_flow": fx.M_DOT})
    Q = fx.FLUX * fx.LX * fx.LY
    dt, t = 5.0, 0.0
    iterations, refreshes = [], []
    assembled = []
    for n in range(4):
        t += dt
        cool.set_time(t)
        before = cool.h_refreshes
        out = step_coupled(thermal, cool, dt, tol=1e-10, step=n)
        flows = thermal.heat_flows()
        assert abs(flows.flux_in - Q) <= 1e-12 * Q
        assert abs(flows.residual) <= 1e-6 * Q, flows
        assert abs(flows.coolant - cool.heat_removed()) <= 1e-9 * Q
        assert 0.0 < flows.stored < Q
        iterations.append(out.iterations)
        refreshes.append(cool.h_refreshes - before)
        assembled.append(thermal.robin_version)
        thermal.advance()
    assert max(refreshes) <= 1 and max(iterations) <= 6, (iterations, refreshes)
    assert cool.outputs()["loop1"]["channels"]["c1"]["temperature"][0] == pytest.approx(293.15 + 10.0, abs=1e-12)
