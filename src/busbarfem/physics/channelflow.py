r"""1D coolant flow along channel centre-lines: temperature, wall heat transfer, pressure drop.

A channel is a chain of segments ``i = 1..n`` along its centre-line (straight runs, bends,
U-turns), each with a cross-section (circular or rectangular), a length ``L_i`` and a wall
area ``A_i`` (``P L_i``, or the meshed wall area when coupled to a solid). Along the channel
the coolant temperature obeys (axial conduction neglected, Pe >> 1)::

    m cp dT_c/ds = h P (T_wall - T_c)

With the wall temperature constant over a segment (``T_w,i``, the area mean of the solid's
wall temperature) this integrates exactly over the segment (an upwind, exponentially fitted
finite volume: the outflow depends only on upstream values, monotone and stable for any
Peclet number and any segment length)::

    T_out,i  = T_w,i - (T_w,i - T_in,i) exp(-a_i),           a_i = h_i A_i / (m cp_i)
    T_f,i    = T_w,i - (T_w,i - T_in,i) (1 - exp(-a_i)) / a_i   (segment-mean coolant T)
    Q_i      = h_i A_i (T_w,i - T_f,i) = m cp_i (T_out,i - T_in,i)

so the heat the solid gives through the Robin term ``h_i (T - T_f,i)`` over the segment's
wall equals the coolant's enthalpy rise exactly. For a uniform wall temperature the outlet is
``T_w - (T_w - T_in) exp(-h P L/(m cp))`` for any number of segments.

Heat transfer ``h = Nu k / D_h``:

* laminar (Re < 2300), fully developed: circular Nu = 3.66 (uniform wall T) or 4.36
  (uniform flux); rectangular ducts by the Shah & London (1978) polynomials in the aspect
  ratio (Incropera Table 8.1 values);
* laminar, thermally developing (``development="developing"``): Hausen's mean Nusselt number
  ``Nu_m = Nu_fd + 0.0668 Gz / (1 + 0.04 Gz^(2/3))``, ``Gz = Re Pr D_h / x`` (Hausen 1943;
  Incropera ch. 8), the segment's h being the exact mean of the local h between its ends;
* turbulent (Re >= 4000): Gnielinski ``Nu = (f/8)(Re - 1000) Pr / (1 + 12.7 sqrt(f/8) (Pr^(2/3) - 1))``
  with the Petukhov smooth-tube f (Gnielinski 1976; Incropera ch. 8), valid 3000 <= Re <= 5e6, 0.5 <= Pr <= 2000;
  2300 < Re < 4000 blends laminar and turbulent values linearly in Re.

Pressure drop (Darcy-Weisbach): ``dp_i = (f_i L_i / D_h + K_i) rho V^2 / 2`` with laminar
``f = (f Re) / Re`` (64 circular; Shah & London's polynomial for rectangles) and turbulent
Haaland ``1/sqrt(f) = -1.8 log10((eps/D_h/3.7)^1.11 + 6.9/Re)`` or Colebrook-White (solved
with brentq); ``K_i`` is the loss coefficient of the bend or U-turn that ends the segment.

Parallel channels fed from one inlet (a manifold) share the flow so that their pressure drops
are equal (nested brentq: each branch's flow at a given dp, then the dp that carries the
total flow).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from busbarfem.errors import CaseError
from busbarfem.physics.coolant import Coolant


def brentq(*args, **kwargs):
    """scipy.optimize.brentq, imported on first use (scipy.optimize costs ~0.4 s to import, and
    every run imports this module through the contribution registry, cooled or not)."""
    from scipy.optimize import brentq as _brentq

    return _brentq(*args, **kwargs)


RE_LAMINAR = 2300.0
RE_TURBULENT = 4000.0


# ------------------------------------------------------------------ cross-sections

@dataclass(frozen=True)
class CircularSection:
    """A round channel of diameter ``diameter`` [m]."""

    diameter: float

    @property
    def area(self) -> float:
        """Flow area [m^2]."""
        return math.pi * self.diameter**2 / 4

    @property
    def perimeter(self) -> float:
        """Wetted perimeter [m]."""
        return math.pi * self.diameter

    @property
    def hydraulic_diameter(self) -> float:
        """``4 A / P`` [m]."""
        return self.diameter

    def friction_reynolds(self) -> float:
        """Laminar fully developed ``f Re`` (Darcy): 64."""
        return 64.0

    def nusselt_fd(self, wall: str = "temperature") -> float:
        """Laminar fully developed Nu: 3.66 (uniform wall T) or 4.36 (uniform flux)."""
        return 3.66 if wall == "temperature" else 4.36


@dataclass(frozen=True)
class RectangularSection:
    """A rectangular channel ``width`` x ``height`` [m]."""

    width: float
    height: float

    @property
    def area(self) -> float:
        """Flow area [m^2]."""
        return self.width * self.height

    @property
    def perimeter(self) -> float:
        """Wetted perimeter [m]."""
        return 2 * (self.width + self.height)

    @property
    def hydraulic_diameter(self) -> float:
        """``4 A / P`` [m]."""
        return 4 * self.area / self.perimeter

    @property
    def aspect(self) -> float:
        """Short over long side, in (0, 1]."""
        return min(self.width, self.height) / max(self.width, self.height)

    def friction_reynolds(self) -> float:
        """Shah & London (1978) laminar ``f Re`` (Darcy): 96 (1 - 1.3553 a + ... - 0.2537 a^5)."""
        a = self.aspect
        return 96.0 * (1 - 1.3553 * a + 1.9467 * a**2 - 1.7012 * a**3 + 0.9564 * a**4 - 0.2537 * a**5)

    def nusselt_fd(self, wall: str = "temperature") -> float:
        """Shah & London (1978) fully developed Nu_T (uniform wall T) or Nu_H1 (uniform flux)."""
        a = self.aspect
        if wall == "temperature":
            return 7.541 * (1 - 2.610 * a + 4.970 * a**2 - 5.119 * a**3 + 2.702 * a**4 - 0.548 * a**5)
        return 8.235 * (1 - 2.0421 * a + 3.0853 * a**2 - 2.4765 * a**3 + 1.0578 * a**4 - 0.1861 * a**5)


Section = CircularSection | RectangularSection


# ------------------------------------------------------------------ correlations

def haaland(Re: float, rel_roughness: float = 0.0) -> float:
    """Haaland (1983) turbulent Darcy friction factor."""
    return (-1.8 * math.log10((rel_roughness / 3.7) ** 1.11 + 6.9 / Re)) ** -2


def colebrook(Re: float, rel_roughness: float = 0.0) -> float:
    """Colebrook-White Darcy friction factor (implicit; solved for 1/sqrt(f) with brentq)."""
    def g(x):
        return x + 2.0 * math.log10(rel_roughness / 3.7 + 2.51 * x / Re)
    x = brentq(g, 1.0, 50.0, xtol=1e-14, rtol=1e-14)
    return 1.0 / x**2


def friction_factor(Re: float, section: Section, rel_roughness: float = 0.0, model: str = "haaland") -> float:
    """Darcy friction factor: laminar ``fRe/Re`` below 2300, Haaland/Colebrook above 4000, linear blend between."""
    lam = section.friction_reynolds() / Re
    if Re <= RE_LAMINAR:
        return lam
    turb_fn = colebrook if model == "colebrook" else haaland
    turb = turb_fn(max(Re, RE_LAMINAR), rel_roughness)
    if Re >= RE_TURBULENT:
        return turb
    g = (Re - RE_LAMINAR) / (RE_TURBULENT - RE_LAMINAR)
    return (1 - g) * lam + g * turb


def gnielinski(Re: float, Pr: float) -> float:
    """Gnielinski Nusselt number with Petukhov's smooth-tube friction factor."""
    f = (0.790 * math.log(Re) - 1.64) ** -2
    return (f / 8) * (Re - 1000.0) * Pr / (1 + 12.7 * math.sqrt(f / 8) * (Pr ** (2 / 3) - 1))


def laminar_mean_nusselt(x: float, Re: float, Pr: float, Dh: float, nu_fd: float, developing: bool) -> float:
    """Mean laminar Nu over the first ``x`` metres: Hausen's thermal-entry formula or the FD value."""
    if not developing or x <= 0:
        return nu_fd
    gz = Re * Pr * Dh / x
    return nu_fd + 0.0668 * gz / (1 + 0.04 * gz ** (2 / 3))


def segment_nusselt(x0: float, x1: float, Re: float, Pr: float, section: Section, wall: str,
                    developing: bool) -> float:
    """Mean Nu over ``[x0, x1]`` of the channel (exact mean of the local value from the mean correlation)."""
    Dh = section.hydraulic_diameter
    nu_fd = section.nusselt_fd(wall)

    def lam() -> float:
        if not developing:
            return nu_fd
        # mean over [x0, x1] of the local value = (x1 Nu_m(x1) - x0 Nu_m(x0)) / (x1 - x0)
        hi = x1 * laminar_mean_nusselt(x1, Re, Pr, Dh, nu_fd, True)
        lo = x0 * laminar_mean_nusselt(x0, Re, Pr, Dh, nu_fd, True) if x0 > 0 else 0.0
        return (hi - lo) / (x1 - x0)

    if Re <= RE_LAMINAR:
        return lam()
    turb = gnielinski(max(Re, RE_TURBULENT), Pr)
    if Re >= RE_TURBULENT:
        return turb
    g = (Re - RE_LAMINAR) / (RE_TURBULENT - RE_LAMINAR)
    return (1 - g) * lam() + g * turb


# ------------------------------------------------------------------ channels

@dataclass(frozen=True)
class Segment:
    """One piece of a channel centre-line.

    Attributes:
        length: centre-line length [m].
        section: cross-section.
        loss_coefficient: minor loss K of the bend/U-turn that ends this segment [-].
        start, end: centre-line end points [m] (used to assign wall facets to segments).
    """

    length: float
    section: Section
    loss_coefficient: float = 0.0
    start: tuple[float, float, float] | None = None
    end: tuple[float, float, float] | None = None


@dataclass
class Channel:
    """A chain of segments from an inlet to an outlet.

    Attributes:
        name: the channel's name (output keys, wall-region names).
        segments: the chain, upstream first.
        roughness: absolute wall roughness [m].
        wall: ``temperature`` (Nu_T, default) or ``flux`` (Nu_H) for the laminar Nusselt number.
        development: ``fully_developed`` or ``developing`` (Hausen thermal entry).
        friction: ``haaland`` or ``colebrook``.
        h_override: user heat transfer coefficient [W/m^2/K] replacing the correlation.
    """

    name: str
    segments: list[Segment]
    roughness: float = 0.0
    wall: str = "temperature"
    development: str = "fully_developed"
    friction: str = "haaland"
    h_override: float | None = None

    @property
    def length(self) -> float:
        """Total centre-line length [m]."""
        return sum(s.length for s in self.segments)


def polyline_segments(points, section: Section, bend_loss: float = 0.0, n_sub: int = 1) -> list[Segment]:
    """Segments along a polyline: each straight run split into ``n_sub`` pieces; the last piece
    before a corner carries the corner's loss coefficient ``bend_loss``."""
    pts = np.asarray(points, float)
    out = []
    for j in range(len(pts) - 1):
        a, b = pts[j], pts[j + 1]
        for i in range(n_sub):
            p0 = a + (b - a) * i / n_sub
            p1 = a + (b - a) * (i + 1) / n_sub
            K = bend_loss if (i == n_sub - 1 and j < len(pts) - 2) else 0.0
            out.append(Segment(float(np.linalg.norm(p1 - p0)), section, K, tuple(p0), tuple(p1)))
    return out


@dataclass
class ChannelSolution:
    """The 1D solution of one channel at one mass flow.

    Attributes (per segment unless said): T_in, T_out, T_f (segment-mean coolant T) [K], h
    [W/m^2/K], Re, heat [W] (into the coolant), dp [Pa]; m_dot [kg/s]; dp_total [Pa].
    """

    m_dot: float
    T_in: np.ndarray
    T_out: np.ndarray
    T_f: np.ndarray
    h: np.ndarray
    Re: np.ndarray
    heat: np.ndarray
    dp: np.ndarray
    cp: np.ndarray
    rho_in: float = 0.0

    @property
    def outlet_temperature(self) -> float:
        """Coolant temperature at the outlet [K]."""
        return float(self.T_out[-1])

    @property
    def heat_removed(self) -> float:
        """Enthalpy rise of the coolant, sum of m cp_i (T_out,i - T_in,i) [W]."""
        return float(np.sum(self.heat))

    @property
    def pressure_drop(self) -> float:
        """Inlet-to-outlet pressure drop [Pa]."""
        return float(np.sum(self.dp))


def solve_channel(channel: Channel, coolant: Coolant, m_dot: float, T_inlet: float, T_wall,
                  wall_area=None, key: str | None = None, property_iterations: int = 3,
                  h_segments=None) -> ChannelSolution:
    """March the coolant along ``channel`` (upwind, exact per segment for its wall temperature).

    Args:
        channel: the segments.
        coolant: properties.
        m_dot: mass flow [kg/s] (> 0).
        T_inlet: inlet temperature [K].
        T_wall: wall temperature per segment [K] (scalar = uniform).
        wall_area: wall area per segment [m^2]; default ``P L``.
        key: case key named in property-range errors.
        property_iterations: fixed-point passes for the segment-mean property temperature.
        h_segments: heat transfer coefficient per segment [W/m^2/K] to use instead of the
            correlation (a coupled solver freezes h within a step); None = correlation.
    """
    n = len(channel.segments)
    if not (m_dot > 0):
        raise CaseError(f"channel {channel.name!r}: mass flow must be > 0, got {m_dot!r} kg/s", key=key)
    Tw = np.broadcast_to(np.asarray(T_wall, float), (n,))
    A = (np.array([s.section.perimeter * s.length for s in channel.segments]) if wall_area is None
         else np.asarray(wall_area, float))
    sol = {k: np.zeros(n) for k in ("T_in", "T_out", "T_f", "h", "Re", "heat", "dp", "cp")}
    x = 0.0
    T = float(T_inlet)
    coolant.check(T, key)
    for i, seg in enumerate(channel.segments):
        sec = seg.section
        Dh = sec.hydraulic_diameter
        Tp = T
        for _ in range(property_iterations):
            rho, cp, k, mu = (coolant.rho(Tp, key), coolant.cp(Tp, key), coolant.k(Tp, key), coolant.mu(Tp, key))
            Re = m_dot * Dh / (sec.area * mu)
            if h_segments is not None:
                h = float(h_segments[i])
            elif channel.h_override is not None:
                h = channel.h_override
            else:
                Nu = segment_nusselt(x, x + seg.length, Re, mu * cp / k, sec, channel.wall,
                                     channel.development == "developing")
                h = Nu * k / Dh
            a = h * A[i] / (m_dot * cp)
            frac = -math.expm1(-a)  # 1 - exp(-a)
            T_out = Tw[i] - (Tw[i] - T) * (1 - frac)
            T_f = Tw[i] - (Tw[i] - T) * (frac / a if a > 0 else 1.0)
            Tp = T_f
        coolant.check(T_out, key)
        V = m_dot / (rho * sec.area)
        f = friction_factor(Re, sec, channel.roughness / Dh, channel.friction)
        sol["T_in"][i], sol["T_out"][i], sol["T_f"][i] = T, T_out, T_f
        sol["h"][i], sol["Re"][i], sol["cp"][i] = h, Re, cp
        sol["heat"][i] = m_dot * cp * (T_out - T)
        sol["dp"][i] = (f * seg.length / Dh + seg.loss_coefficient) * rho * V**2 / 2
        T = T_out
        x += seg.length
    return ChannelSolution(m_dot=m_dot, rho_in=coolant.rho(float(T_inlet), key), **sol)


@dataclass
class CircuitSolution:
    """One inlet feeding one or more parallel channels (a manifold), all to one outlet.

    Attributes:
        channels: per-channel solutions (same order as the circuit's channels).
        pressure_drop: the common inlet-to-outlet pressure drop [Pa].
        m_dot: total mass flow [kg/s].
        rho_in: coolant density at the inlet [kg/m^3].
    """

    channels: list[ChannelSolution]
    pressure_drop: float
    m_dot: float
    rho_in: float

    @property
    def outlet_temperature(self) -> float:
        """Mixing-cup outlet temperature, ``sum m_i cp_i T_i / sum m_i cp_i`` [K]."""
        w = np.array([c.m_dot * c.cp[-1] for c in self.channels])
        T = np.array([c.outlet_temperature for c in self.channels])
        return float(np.sum(w * T) / np.sum(w))

    @property
    def heat_removed(self) -> float:
        """Heat taken up by the coolant of all channels [W]."""
        return float(sum(c.heat_removed for c in self.channels))

    @property
    def pumping_power(self) -> float:
        """``dp V_dot`` at inlet density [W]."""
        return self.pressure_drop * self.m_dot / self.rho_in


def solve_circuit(channels: list[Channel], coolant: Coolant, m_total: float, T_inlet: float,
                  T_walls: list, wall_areas: list | None = None, key: str | None = None,
                  rtol: float = 1e-12, h_segments: list | None = None) -> CircuitSolution:
    """Split ``m_total`` over parallel ``channels`` so their pressure drops are equal, and solve each.

    A single channel takes the whole flow. Otherwise each channel's flow at a trial pressure
    drop is found with brentq (dp increases with flow), and the outer brentq finds the pressure
    drop at which the flows add up to ``m_total``.
    """
    areas = wall_areas or [None] * len(channels)
    hs = h_segments or [None] * len(channels)
    if not (m_total > 0):
        raise CaseError(f"mass flow must be > 0, got {m_total!r} kg/s", key=key)

    def solve(i, m):
        return solve_channel(channels[i], coolant, m, T_inlet, T_walls[i], areas[i], key, h_segments=hs[i])

    if len(channels) == 1:
        s = solve(0, m_total)
        return CircuitSolution([s], s.pressure_drop, m_total, s.rho_in)

    def flow_at(i, dp):
        def g(m):
            return solve(i, m).pressure_drop - dp
        hi = m_total
        while g(hi) < 0:
            hi *= 2
        return brentq(g, m_total * 1e-12, hi, xtol=m_total * 1e-15, rtol=rtol)

    dps = [solve(i, m_total / len(channels)).pressure_drop for i in range(len(channels))]
    lo, hi = min(dps) * 1e-6, max(dps) * len(channels) ** 2 * 4

    def excess(dp):
        return sum(flow_at(i, dp) for i in range(len(channels))) - m_total

    dp = brentq(excess, lo, hi, xtol=1e-14 * hi, rtol=rtol)
    flows = np.array([flow_at(i, dp) for i in range(len(channels))])
    flows *= m_total / flows.sum()  # remove the last rounding so the flows add up exactly
    sols = [solve(i, m) for i, m in enumerate(flows)]
    return CircuitSolution(sols, float(np.mean([s.pressure_drop for s in sols])), m_total, sols[0].rho_in)
