r"""The physics-contribution protocol: how a new physics plugs into the coupled model.

A *contribution* owns some state (per battery cell, per region, or global) and adds
terms to the coupled electro-thermal problem. The coupled model
(:class:`busbarfem.coupling.model.CoupledModel`) asks every registered contribution that
applies to a case, in this order:

set-up (once)
    1. ``electrical_elements(model)``: extra :class:`Conductance` terms between the two
       potentials (only ``model.bundle``, ``model.case`` and the temperature
       ``model.thermal.T_k`` exist yet; the electrical forms are compiled after this);
    2. ``setup(model)``: create the state and whatever it needs from the electrical
       problem (``model.electrical``) and the temperature;
    3. ``heat_sources()``: named volumetric heat sources (UFL, W/m^3), summed into the
       heat equation and reported per region and source in ``summary.json`` (the names in
       ``non_electrical_heat`` are kept out of the electrical energy book);
       ``heat_support()`` names the regions outside which a source is exactly zero (it is
       then integrated over those only);
    4. ``robin_terms()``: extra :class:`RobinTerm` conditions on tagged facets
       (``h``/``T_ref`` may be Functions the contribution updates between steps; the heat
       is booked as convection, or as coolant heat with ``heat="coolant"``).

every step of length ``dt`` (the solve may be repeated: step rejection, event location)
    * ``prepare(dt, current_start)`` before the electrical solve (write coefficients for
      the step from the state at its start);
    * ``measure()`` after the electrical solve (read back what it needs, e.g. currents);
    * ``thermal_solve(thermal, dt, step)``: a contribution whose Robin coefficients depend
      on the temperature (a coolant channel) may take over the thermal solve and iterate
      it with its own coefficients (return the KSP iterations; None: not taken; at most one
      contribution takes it);
    * ``advance(t, dt, T, solution)`` after the thermal solve: integrate the state over
      the step (sub-stepping is the contribution's business); ``snapshot()`` and
      ``restore(snap)`` undo it when the step is retried;
    * ``terminal_target(t, target)``: the terminal target at ``t`` (the load's, or a
      replacement, e.g. a ``"resistance"`` target while an external short of the module
      terminals is on);
    * ``max_dt(t)`` before the step is proposed: the longest step the contribution's
      physics allows from ``t`` [s] (default inf), e.g. a stiff reaction near onset or
      the time to a scheduled switch; the stepper cuts the proposed step to the smallest
      (not below ``solver.dt_min``), without changing its planned ``dt``;
    * ``conditions(t)``: threshold events it watches, as typed
      :class:`busbarfem.events.Condition` records: the stepper locates their crossing
      within ``solver.event_tolerance``; once the step that reaches one is accepted it is
      recorded in the run's events, and ``stop=True`` ends the run (a non-stop "switch"
      condition must stop being reached once the contribution has acted on it, e.g. in
      ``after_step``);
    * ``after_step(t, dt, flows)`` once the step is accepted: may return a
      :class:`ContributionEvent` (e.g. the runaway monitor's stop).

output and restart
    * ``columns(heat)``: entries of the time-series row (``"name [unit]": value``);
    * ``summary(heat)``: a mapping merged into ``summary.json`` under the contribution's
      :attr:`summary_key` (None: nothing);
    * ``state_dict()`` / ``load_state_dict(state)``: JSON-able state for checkpoints;
    * ``write_outputs(outdir, summary)``: its own result files (e.g. the coolant's
      ``cooling_channels.csv``), on rank 0 after ``summary.json`` is written.

A contribution that models the battery cells (``provides_cells = True``) also exposes
``names``, ``stages``, ``n_series``, ``n_parallel``, ``current``, ``cell_voltages()``,
``soc`` and ``capacity_Ah`` for the load controller; at most one may apply.

Registration: :func:`register` records a factory ``factory(case, bundle) -> Contribution
| None`` under a name (None: does not apply to this case). A new physics is one module
that defines its contribution and calls ``register`` at import, plus its import in
:data:`BUILTIN_MODULES`. See docs/architecture.md for the ECM cells as the worked example.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class RobinTerm:
    """``-K grad T . n = h (T - T_ref)`` on ``facets`` (local facet indices).

    ``h`` [W/m^2/K] and ``T_ref`` [K] are floats or UFL coefficients (DG0/P1 Functions the
    contribution updates in ``prepare``/``advance``); the heat they remove is counted in
    the energy balance as ``heat``: ``"convection"`` (default) or ``"coolant"``
    (``HeatFlows.coolant``: heat taken up by coolant channels).
    """

    facets: np.ndarray
    h: Any
    T_ref: Any
    heat: str = "convection"


@dataclass
class Conductance:
    """An electrical element between the two potentials: ``j = g (phi1 - phi2)``.

    ``conductance`` is a DG0 Function [S/m^3], zero outside the region it acts in (e.g. an
    internal short through a cell volume).
    """

    conductance: Any


@dataclass
class ContributionEvent:
    """Something a contribution reports after an accepted step.

    Attributes:
        reason: human-readable text (becomes the stop reason or the event's reason).
        stop: end the run.
        runaway: the stop is a thermal runaway (reported as a result with its place).
    """

    reason: str
    stop: bool = True
    runaway: bool = False


class Contribution:
    """Base class of a physics contribution; every hook defaults to "nothing to add".

    Subclasses set :attr:`name` and override what they need (see the module docstring
    for the order in which the coupled model calls the hooks).
    """

    #: registry name, also the key of its state in a checkpoint.
    name: str = ""
    #: it models the battery cells (the load controller reads its cell values).
    provides_cells: bool = False
    #: key of its block in summary.json (None: it adds none).
    summary_key: str | None = None
    #: names of its heat sources that do not come from the electrical solve (e.g. reaction
    #: heat, a heater): they are left out of the electrical energy book.
    non_electrical_heat: tuple[str, ...] = ()

    def electrical_elements(self, model) -> list[Conductance]:
        """Extra electrical elements (asked before the electrical problem is built)."""
        return []

    def setup(self, model) -> None:
        """Create state and coefficients; ``model.electrical`` and ``model.thermal`` exist."""

    def heat_sources(self) -> dict:
        """Named volumetric heat sources [W/m^3] (UFL)."""
        return {}

    def heat_support(self) -> dict:
        """``{heat source name: volume region names}`` for sources that are exactly zero outside
        those regions (a cell's Bernardi heat outside its body); the heat equation and the
        per-region heat book then integrate them there only. A source not named: anywhere."""
        return {}

    def robin_terms(self) -> list[RobinTerm]:
        """Extra Robin conditions on tagged facets."""
        return []

    def terminal_target(self, t: float, target):
        """The terminal target at ``t`` given the load's (:class:`busbarfem.loads.Target`);
        a contribution may replace it (e.g. an external short of the module: a ``"resistance"``
        target). Default: unchanged."""
        return target

    def prepare(self, dt: float, current_start=None) -> None:
        """Before the electrical solve of a step of ``dt`` (0: instantaneous)."""

    def measure(self) -> None:
        """After the electrical solve."""

    def thermal_solve(self, thermal, dt: float | None, step: int | None) -> int | None:
        """Solve the thermal step (``dt``; None: steady) itself, coupled with its own
        coefficients; return the KSP iterations, or None to leave it to the model."""
        return None

    def advance(self, t: float, dt: float, T=None, solution=None) -> None:
        """Integrate the state from ``t`` over ``dt`` (after the thermal solve)."""

    def max_dt(self, t: float) -> float:
        """Longest step from ``t`` this physics allows [s] (inf: no limit)."""
        return float("inf")

    def conditions(self, t: float) -> list:
        """Threshold conditions (:class:`busbarfem.events.Condition`) at the current state."""
        return []

    def after_step(self, t: float, dt: float, flows) -> ContributionEvent | None:
        """After an accepted step ending at ``t``; may stop the run."""
        return None

    def snapshot(self):
        """The state at the start of a step (for a retried step)."""
        return None

    def restore(self, snap) -> None:
        """Return to :meth:`snapshot`'s state."""

    def state_dict(self):
        """JSON-able state for a checkpoint (None: stateless)."""
        return None

    def load_state_dict(self, state) -> None:
        """Restore :meth:`state_dict`'s state."""

    def columns(self, heat: dict) -> dict:
        """Time-series entries of the current state (``heat``: per-region heat by source [W])."""
        return {}

    def summary(self, heat: dict) -> dict:
        """The summary.json block at the last recorded time."""
        return {}

    def write_outputs(self, outdir, summary: dict) -> None:
        """Write its own result files into ``outdir`` from the written ``summary`` (the whole
        summary.json content). Called on rank 0 only, after summary.json: must not communicate."""


Factory = Callable[[Any, Any], "Contribution | None"]
_REGISTRY: dict[str, Factory] = {}

#: modules whose import registers the built-in contributions (in registration order,
#: which is the order their hooks are called in).
BUILTIN_MODULES = ("busbarfem.physics.cells", "busbarfem.physics.pybamm_cells", "busbarfem.analysis.runaway",
                   "busbarfem.physics.abuse", "busbarfem.physics.cooling")


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator: register ``factory(case, bundle) -> Contribution | None`` under ``name``."""
    def deco(factory: Factory) -> Factory:
        _REGISTRY[name] = factory
        return factory

    return deco


def registered() -> dict[str, Factory]:
    """The registered factories by name (importing the built-in modules first)."""
    for mod in BUILTIN_MODULES:
        importlib.import_module(mod)
    return dict(_REGISTRY)


def contributions_for(case, bundle) -> list[Contribution]:
    """Every registered contribution that applies to ``case`` on ``bundle``, in order.

    Raises:
        ValueError: more than one contribution models the battery cells.
    """
    out = [c for f in registered().values() if (c := f(case, bundle)) is not None]
    cells = [c.name for c in out if c.provides_cells]
    if len(cells) > 1:
        raise ValueError(f"more than one contribution models the cells: {cells}")
    return out
