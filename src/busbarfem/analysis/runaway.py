r"""Thermal runaway: the critical current above which no steady state exists.

For a lumped conductor with ``R(T) = R0 (1 + alpha (T - T_amb))`` cooled by ``h A_s``,
the steady balance ``I^2 R0 (1 + alpha dT) = h A_s dT`` has the solution
``dT = I^2 R0 / (h A_s - I^2 R0 alpha)``, which exists (positive) only below
``I_crit = sqrt(h A_s / (R0 alpha))``. In 3D the same question is answered by the steady
solver: a physical fixed point exists below I_crit and not above it. :func:`critical_current`
brackets the load scale and bisects on that yes/no answer.

In a transient, runaway shows as heat generation that grows faster with temperature than
the heat removal does (d Q_gen / dT > d Q_loss / dT while heating), sustained over steps;
:class:`RunawayMonitor` applies that test to conductor-only cases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from busbarfem.coupling.contributions import Contribution, ContributionEvent, register


def lumped_critical_current(h: float, area: float, R0: float, alpha: float) -> float:
    """``sqrt(h A_s / (R0 alpha))`` [A] for a lumped conductor."""
    return math.sqrt(h * area / (R0 * alpha))


def lumped_steady_rise(current: float, h: float, area: float, R0: float, alpha: float) -> float:
    """Steady temperature rise ``I^2 R0 / (h A_s - I^2 R0 alpha)`` [K] (inf above I_crit)."""
    den = h * area - current**2 * R0 * alpha
    return math.inf if den <= 0 else current**2 * R0 / den


@dataclass
class RunawayMonitor:
    """Flags sustained super-linear heating in a transient.

    Args:
        persistence: consecutive steps the criterion must hold.
        min_rise: minimum mean-temperature increase per step [K] for a step to count.
    """

    persistence: int = 8
    min_rise: float = 1e-3
    _last: tuple[float, float, float] | None = None
    _count: int = 0
    history: list = field(default_factory=list)

    def update(self, T_mean: float, generated: float, removed: float) -> bool:
        """Feed one step; True once generation outgrows removal for ``persistence`` steps."""
        if self._last is not None:
            T0, g0, r0 = self._last
            dT = T_mean - T0
            if dT > self.min_rise and generated > removed:
                gslope, rslope = (generated - g0) / dT, (removed - r0) / dT
                self.history.append((T_mean, gslope, rslope))
                self._count = self._count + 1 if gslope > rslope else 0
            else:
                self._count = 0
        self._last = (T_mean, generated, removed)
        return self._count >= self.persistence

    def state_dict(self) -> dict:
        """The monitor's memory (last step, run length) for a checkpoint."""
        return {"last": list(self._last) if self._last else None, "count": self._count}

    def load_state_dict(self, state: dict | None) -> None:
        """Restore :meth:`state_dict`'s memory."""
        if state:
            self._last = tuple(state["last"]) if state["last"] else None
            self._count = int(state["count"])


class RunawayWatch(Contribution):
    """The transient runaway monitor as a physics contribution (conductor-only cases).

    After every accepted step it feeds :class:`RunawayMonitor` with the mean temperature
    and the generated and removed heat, and stops the run as a thermal runaway once
    generation outgrows removal for ``persistence`` steps.
    """

    name = "runaway_monitor"

    def __init__(self, monitor: RunawayMonitor | None = None):
        self.monitor = monitor or RunawayMonitor()
        self._T_mean_form = None
        self._volume = 1.0

    def setup(self, model) -> None:
        """Compile the mean-temperature integral on the model's mesh."""
        import dolfinx_solver  # noqa: F401
        import ufl
        from mpi4py import MPI

        from dolfinx import fem

        msh = model.bundle.mesh
        dx = ufl.dx(domain=msh)
        self._comm = msh.comm
        self._T_mean_form = fem.form(model.thermal.T * dx)
        self._volume = self._comm.allreduce(fem.assemble_scalar(fem.form(fem.Constant(msh, 1.0) * dx)), op=MPI.SUM)

    def after_step(self, t: float, dt: float, flows) -> ContributionEvent | None:
        """Feed the monitor; a runaway stop once it fires."""
        from mpi4py import MPI

        from dolfinx import fem

        T_mean = self._comm.allreduce(fem.assemble_scalar(self._T_mean_form), op=MPI.SUM) / self._volume
        if self.monitor.update(T_mean, flows.generated, flows.convection + flows.radiation + flows.fixed_temperature):
            return ContributionEvent(f"heat generation grows faster with temperature than heat removal "
                                     f"(sustained over {self.monitor.persistence} steps at t = {t:.6g} s): "
                                     "no steady state can be reached", stop=True, runaway=True)
        return None

    def state_dict(self) -> dict:
        """The monitor's memory."""
        return self.monitor.state_dict()

    def load_state_dict(self, state) -> None:
        """Restore the monitor's memory."""
        self.monitor.load_state_dict(state)


@register("runaway_monitor")
def _runaway_watch(case, bundle):
    """Transient conductor-only cases (cells have their own limits)."""
    has_cells = any(bundle.regions[n].kind == "cell" for n in bundle.volume_names())
    if has_cells or case.solver.analysis != "transient":
        return None
    return RunawayWatch()


@dataclass
class CriticalCurrentResult:
    """Outcome of :func:`critical_current`.

    Attributes:
        current: estimate of I_crit (midpoint of the final bracket) [A].
        bracket: (highest current with a steady state, lowest without) [A].
        T_max_stable: T_max at the highest stable current [K].
        curve: (current [A], T_max [K] or None for no steady state) for every solve.
    """

    current: float
    bracket: tuple[float, float]
    T_max_stable: float
    curve: list[tuple[float, float | None]]


def critical_current(steady_tmax, I_start: float, rtol: float = 0.005, max_solves: int = 40,
                     log=None) -> CriticalCurrentResult:
    """Find I_crit by bracketing and bisection on whether a steady state exists.

    Args:
        steady_tmax: callable(current) -> T_max [K] of the steady state, or None when there
            is none (runaway).
        I_start: first current to try [A] (> 0).
        rtol: relative width of the final bracket.
        max_solves: budget of steady solves.
        log: optional callable(str).

    Raises:
        RuntimeError: no bracket found within the budget.
    """
    curve: list[tuple[float, float | None]] = []

    def probe(I):
        T = steady_tmax(I)
        curve.append((I, T))
        if log:
            log(f"  I = {I:.6g} A: " + ("no steady state" if T is None else f"T_max = {T:.2f} K"))
        return T

    lo, hi, T_lo = 0.0, None, None
    I = I_start
    while len(curve) < max_solves:
        T = probe(I)
        if T is None:
            hi = I
            break
        lo, T_lo = I, T
        I *= 2.0
    if hi is None:
        raise RuntimeError(f"no runaway up to {I / 2:.6g} A: the case has no critical current in range")
    if lo == 0.0:
        I = hi / 2
        while len(curve) < max_solves:
            T = probe(I)
            if T is not None:
                lo, T_lo = I, T
                break
            hi = I
            I /= 2
    while (hi - lo) > rtol * hi and len(curve) < max_solves:
        mid = 0.5 * (lo + hi)
        T = probe(mid)
        if T is None:
            hi = mid
        else:
            lo, T_lo = mid, T
    return CriticalCurrentResult(current=0.5 * (lo + hi), bracket=(lo, hi), T_max_stable=float(T_lo or np.nan),
                                 curve=curve)
