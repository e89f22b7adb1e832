"""Coolant properties and the 1D channel-flow model against handbook values and closed forms.

References: Incropera & DeWitt, Fundamentals of Heat and Mass Transfer (Tables A.4, A.6, 8.1),
the ASHRAE Handbook Fundamentals ch. 31 density table of ethylene glycol solutions,
Hagen-Poiseuille, Colebrook-White (Moody chart), and an independent ODE integration (scipy).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from busbarfem.errors import CaseError
from busbarfem.physics import channelflow as cf
from busbarfem.physics.coolant import COOLANTS, Coolant, coolant

LB_FT3 = 16.018463  # kg/m^3 per lb/ft^3


def constant_fluid(rho=1000.0, cp=4000.0, k=0.6, mu=1e-3) -> Coolant:
    """A coolant with temperature-independent properties (for closed-form checks)."""
    return Coolant("const", ((250.0, rho, cp, k, mu), (450.0, rho, cp, k, mu)), "test")


# ------------------------------------------------------------------ properties

@pytest.mark.parametrize("name, T, ref", [
    # Incropera Table A.6, saturated water at 300 K: v_f = 1.003e-3 m^3/kg, cp 4.179 kJ/kg/K,
    # mu 855e-6 N s/m^2, k 613e-3 W/m/K
    ("water", 300.0, (1 / 1.003e-3, 4179.0, 0.613, 855e-6)),
    ("water", 350.0, (1 / 1.027e-3, 4195.0, 0.668, 365e-6)),
    # Incropera Table A.4, air at 1 atm, 300 K: cp 1.007 kJ/kg/K, mu 184.6e-7, k 26.3e-3; its
    # density (1.1614) is 1.3 % below p/(R T) = 1.1766, so air density is checked against the
    # ideal-gas law (R = 287.05 J/kg/K) instead
    ("air", 300.0, (101325 / (287.05 * 300.0), 1007.0, 0.0263, 184.6e-7)),
    ("air", 400.0, (101325 / (287.05 * 400.0), 1014.0, 0.0338, 230.1e-7)),
])
def test_properties_match_incropera_tables(name, T, ref):
    """Tabulated water and air agree with Incropera's appendix tables to 1 % (air density: ideal gas)."""
    c = COOLANTS[name]
    got = (c.rho(T), c.cp(T), c.k(T), c.mu(T))
    for g, r, what in zip(got, ref, ("rho", "cp", "k", "mu")):
        # Incropera's older air conductivity is 1.0 % above Lemmon & Jacobsen's at 400 K
        assert g == pytest.approx(r, rel=0.015 if what == "k" else 0.01), (name, T, what, g, r)


@pytest.mark.parametrize("T_F, rho_lbft3", [(0.0, 67.90), (70.0, 67.05), (150.0, 65.53), (200.0, 64.27)])
def test_glycol_density_matches_ashrae_table(T_F, rho_lbft3):
    """50 % (by volume) ethylene glycol density vs the ASHRAE Fundamentals table to 0.3 %."""
    T = (T_F - 32) / 1.8 + 273.15
    assert COOLANTS["ethylene_glycol_50"].rho(T) == pytest.approx(rho_lbft3 * LB_FT3, rel=3e-3)


def test_glycol_and_oil_are_plausible():
    """50/50 glycol: cp ~3.3 kJ/kg/K, mu ~4 mPa s at 20 C; silicone oil: k ~0.11, rho ~850 at 25 C."""
    g, o = COOLANTS["ethylene_glycol_50"], COOLANTS["silicone_oil"]
    assert 3.1e3 < g.cp(293.15) < 3.5e3 and 3e-3 < g.mu(293.15) < 5e-3
    assert 0.09 < o.k(298.15) < 0.13 and 820 < o.rho(298.15) < 880
    # liquid viscosity falls with T, gas viscosity rises
    assert all(COOLANTS[n].mu(COOLANTS[n].T_min) > COOLANTS[n].mu(COOLANTS[n].T_max)
               for n in ("water", "ethylene_glycol_50", "silicone_oil"))
    assert COOLANTS["air"].mu(250.0) < COOLANTS["air"].mu(450.0)


def test_interpolation_between_table_points_matches_coolprop():
    """Mid-points between table rows vs the formulations the tables came from (CoolProp) to 0.5 %."""
    CP = pytest.importorskip("CoolProp.CoolProp")
    fluids = {"water": "Water", "ethylene_glycol_50": "INCOMP::AEG[0.5]", "air": "Air", "silicone_oil": "INCOMP::XLT"}
    for name, fl in fluids.items():
        c = COOLANTS[name]
        T = 0.5 * (np.asarray(c.table)[:-1, 0] + np.asarray(c.table)[1:, 0])
        for Ti in T[::5]:
            for p, fn in zip("DCLV", (c.rho, c.cp, c.k, c.mu)):
                ref = CP.PropsSI(p, "T", float(Ti), "P", 101325.0, fl)
                assert fn(Ti) == pytest.approx(ref, rel=5e-3), (name, Ti, p)


def test_out_of_range_and_unknown_coolant_are_located_errors():
    """A temperature outside the range names coolant, value, range and key; a bad name gets choices."""
    with pytest.raises(CaseError) as e:
        COOLANTS["water"].cp(380.0, key="cooling.circuits.0.inlet_temperature")
    msg = str(e.value)
    assert "cooling.circuits.0.inlet_temperature" in msg and "380" in msg and "275-370 K" in msg
    with pytest.raises(CaseError) as e:
        coolant("watr", key="cooling.coolant")
    assert "did you mean 'water'" in str(e.value)


# ------------------------------------------------------------------ heat transfer

def straight(D=4e-3, L=0.5, n=1, K=0.0) -> cf.Channel:
    """A straight round tube of n equal segments."""
    sec = cf.CircularSection(D)
    return cf.Channel("c1", cf.polyline_segments([(0, 0, 0), (L, 0, 0)], sec, K, n_sub=n))


@pytest.mark.parametrize("n", [1, 7, 40])
def test_uniform_wall_outlet_equals_exponential(n):
    """Laminar FD (Nu = 3.66) tube in a wall at uniform T: T_out = T_w - (T_w - T_in) exp(-hPL/(m cp)), 1e-12."""
    fl = constant_fluid()
    D, L, m, Tin, Tw = 4e-3, 0.5, 2e-3, 293.15, 323.15
    sol = cf.solve_channel(straight(D, L, n), fl, m, Tin, Tw)
    Re = m * D / (math.pi * D**2 / 4 * 1e-3)
    assert Re < 2300
    h = 3.66 * 0.6 / D
    ref = Tw - (Tw - Tin) * math.exp(-h * math.pi * D * L / (m * 4000.0))
    assert sol.outlet_temperature == pytest.approx(ref, rel=1e-12)
    assert abs(sol.outlet_temperature - ref) < 0.01 * (ref - Tin)  # the 1 % on the rise
    assert sol.heat_removed == pytest.approx(m * 4000.0 * (ref - Tin), rel=1e-12)


def test_upwind_march_is_monotone_for_any_peclet():
    """Very long / very short segments: T rises monotonically, never past the wall temperature."""
    fl = constant_fluid()
    for m in (1e-6, 1e-4, 1e-2):
        sol = cf.solve_channel(straight(n=25), fl, m, 293.15, 313.15)
        T = np.concatenate([[293.15], sol.T_out])
        assert np.all(np.diff(T) >= 0) and T.max() <= 313.15 + 1e-12
        assert np.all((sol.T_f >= sol.T_in) & (sol.T_f <= sol.T_out))


def test_water_channel_with_varying_wall_matches_ode_integration():
    """Water, wall T rising along the tube, T-dependent properties: 200 segments vs solve_ivp to 0.05 % of the rise."""
    w = COOLANTS["water"]
    D, L, m, Tin = 4e-3, 1.0, 3e-3, 293.15

    def Twall(x):
        return 303.15 + 20.0 * x / L

    n = 200
    ch = straight(D, L, n)
    xm = (np.arange(n) + 0.5) * L / n
    sol = cf.solve_channel(ch, w, m, Tin, Twall(xm))

    def rhs(x, T):
        h = 3.66 * w.k(T[0]) / D
        return [h * math.pi * D * (Twall(x) - T[0]) / (m * w.cp(T[0]))]

    ref = solve_ivp(rhs, (0, L), [Tin], rtol=1e-11, atol=1e-11).y[0, -1]
    assert abs(sol.outlet_temperature - ref) < 5e-4 * (ref - Tin)


def test_developing_flow_segment_means_are_consistent():
    """Hausen: one-segment mean Nu = length-weighted mean of n segments; > 3.66, -> 3.66 for long tubes."""
    sec = cf.CircularSection(4e-3)
    Re, Pr, L = 1000.0, 6.0, 0.3
    one = cf.segment_nusselt(0.0, L, Re, Pr, sec, "temperature", True)
    xs = np.linspace(0, L, 11)
    parts = [cf.segment_nusselt(a, b, Re, Pr, sec, "temperature", True) for a, b in zip(xs[:-1], xs[1:])]
    assert one == pytest.approx(np.mean(parts), rel=1e-12)
    assert one > 3.66 and parts[-1] < parts[0]
    assert cf.segment_nusselt(0.0, 1e4, Re, Pr, sec, "temperature", True) == pytest.approx(3.66, rel=2e-3)


def test_rectangular_duct_values_match_shah_london_table():
    """Shah & London polynomials vs Incropera Table 8.1 (b/a = 1, 2, 4, 8, inf): f Re, Nu_T, Nu_H to 1 %."""
    table = {1.0: (56.92, 2.98, 3.61), 2.0: (62.20, 3.39, 4.12), 4.0: (72.92, 4.44, 5.33),
             8.0: (82.34, 5.60, 6.49), 1e6: (96.00, 7.54, 8.23)}
    for ratio, (fre, nut, nuh) in table.items():
        sec = cf.RectangularSection(1e-3 * ratio, 1e-3)
        assert sec.friction_reynolds() == pytest.approx(fre, rel=0.01)
        assert sec.nusselt_fd("temperature") == pytest.approx(nut, rel=0.01)
        assert sec.nusselt_fd("flux") == pytest.approx(nuh, rel=0.01)


def test_gnielinski_against_dittus_boelter_in_its_range():
    """Gnielinski vs Dittus-Boelter 0.023 Re^0.8 Pr^0.4 at Re = 1e4..3e4, Pr = 0.7..10: within 12 %
    (Incropera: Dittus-Boelter errors up to 25 %; measured deviation at most 11 %)."""
    for Re in (1e4, 3e4):
        for Pr in (0.7, 1.0, 3.0, 10.0):
            db = 0.023 * Re**0.8 * Pr**0.4
            assert cf.gnielinski(Re, Pr) == pytest.approx(db, rel=0.12)


# ------------------------------------------------------------------ pressure drop

def test_laminar_pressure_drop_is_hagen_poiseuille():
    """Isothermal laminar tube: dp = 128 mu L Q / (pi D^4) to 1e-12 relative (any segmentation)."""
    w = COOLANTS["water"]
    D, L, m, T = 3e-3, 0.7, 1.5e-3, 300.0
    for n in (1, 13):
        sol = cf.solve_channel(straight(D, L, n), w, m, T, T)
        assert sol.Re.max() < 2300
        Q = m / w.rho(T)
        ref = 128 * w.mu(T) * L * Q / (math.pi * D**4)
        assert sol.pressure_drop == pytest.approx(ref, rel=1e-12)


def _colebrook_fixed_point(Re, rr):
    x = 8.0
    for _ in range(200):
        x = -2.0 * math.log10(rr / 3.7 + 2.51 * x / Re)
    return 1 / x**2


@pytest.mark.parametrize("Re, rr", [(1e4, 0.0), (1e5, 0.0), (1e5, 1e-3), (1e6, 1e-4)])
def test_turbulent_friction_matches_haaland_and_colebrook(Re, rr):
    """Turbulent tube: dp gives f = Haaland to 1e-12; Haaland within 1.5 % and the colebrook option
    within 1e-9 of Colebrook-White solved independently (fixed point)."""
    w = constant_fluid(mu=1e-3)
    D, L = 0.01, 1.0
    m = Re * math.pi * D * 1e-3 / 4
    ch = straight(D, L, 3)
    ch.roughness = rr * D
    sol = cf.solve_channel(ch, w, m, 300.0, 300.0)
    V = m / (1000.0 * math.pi * D**2 / 4)
    f = sol.pressure_drop / (L / D * 1000.0 * V**2 / 2)
    haaland = (-1.8 * math.log10((rr / 3.7) ** 1.11 + 6.9 / Re)) ** -2
    cw = _colebrook_fixed_point(Re, rr)
    assert f == pytest.approx(haaland, rel=1e-12)
    assert haaland == pytest.approx(cw, rel=0.015)
    ch.friction = "colebrook"
    sol = cf.solve_channel(ch, w, m, 300.0, 300.0)
    assert sol.pressure_drop / (L / D * 1000.0 * V**2 / 2) == pytest.approx(cw, rel=1e-9)
    if rr == 0.0 and Re == 1e5:
        assert cw == pytest.approx(0.0180, abs=1e-4)  # Moody chart, smooth pipe at Re = 1e5


def test_bend_losses_add_k_dynamic_pressure():
    """Serpentine with K = 1.5 per corner: dp = laminar friction + n_corners K rho V^2/2 (1e-12)."""
    fl = constant_fluid()
    sec = cf.CircularSection(4e-3)
    pts = [(0, 0, 0), (0.1, 0, 0), (0.1, 0.02, 0), (0, 0.02, 0), (0, 0.04, 0)]
    ch = cf.Channel("s", cf.polyline_segments(pts, sec, 1.5, n_sub=2))
    m = 1e-3
    sol = cf.solve_channel(ch, fl, m, 300.0, 300.0)
    V = m / (1000.0 * sec.area)
    L = 0.1 + 0.02 + 0.1 + 0.02
    ref = 128 * 1e-3 * L * (m / 1000.0) / (math.pi * 4e-3**4) + 3 * 1.5 * 1000.0 * V**2 / 2
    assert sol.pressure_drop == pytest.approx(ref, rel=1e-12)


def test_manifold_split_balances_pressure_drops():
    """Two parallel laminar tubes L and 2L: flow splits 2:1 exactly (linear resistances); a turbulent
    manifold of unequal tubes has equal dp per branch (1e-9) and the flows add up."""
    fl = constant_fluid()
    a, b = straight(4e-3, 0.5, 2), straight(4e-3, 1.0, 3)
    sol = cf.solve_circuit([a, b], fl, 3e-3, 300.0, [300.0, 300.0])
    m = [c.m_dot for c in sol.channels]
    assert m[0] == pytest.approx(2e-3, rel=1e-9) and m[1] == pytest.approx(1e-3, rel=1e-9)
    c, d = straight(8e-3, 0.5, 2), straight(6e-3, 0.8, 2)
    sol = cf.solve_circuit([c, d], fl, 0.2, 300.0, [300.0, 300.0])
    dps = [s.pressure_drop for s in sol.channels]
    assert dps[0] == pytest.approx(dps[1], rel=1e-9)
    assert min(s.Re.min() for s in sol.channels) > 4000
    assert sum(s.m_dot for s in sol.channels) == pytest.approx(0.2, rel=1e-14)
    assert sol.pumping_power == pytest.approx(sol.pressure_drop * 0.2 / 1000.0, rel=1e-12)
