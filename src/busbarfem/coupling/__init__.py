"""The coupled electro-thermal solver, one job per module.

* :mod:`~busbarfem.coupling.model`: :class:`CoupledModel`, physics state and step primitives
  (the thermal problem owns the temperature);
* :mod:`~busbarfem.coupling.contributions`: the physics-contribution protocol and registry
  (ECM cells + Bernardi heat, runaway monitor, ...);
* :mod:`~busbarfem.coupling.steady`: Anderson-accelerated Picard to a steady state;
* :mod:`~busbarfem.coupling.stepper`: the one transient stepper and its step-size
  controller, shared with the lumped circuit;
* :mod:`~busbarfem.coupling.transient`: the 3D model as a stepped system (operator splitting);
* :mod:`~busbarfem.coupling.state`: the run state of checkpoints;
* :mod:`~busbarfem.coupling.outputs`, :mod:`~busbarfem.coupling.records`: writers fed from step records;
* :mod:`~busbarfem.coupling.simulation`: the :class:`Simulation` facade.

Electrical transients (micro- to milliseconds) are far faster than thermal ones (seconds
to hours), so inside each thermal step the potential problem is solved quasi-statically:

1. electrical solve with sigma(T^n) and the cell states at t_n (the load controller gives
   the terminal target: current, voltage or power);
2. heat sources q (Joule + the contributions', e.g. Bernardi);
3. backward-Euler thermal step to T^{n+1};
4. optionally Picard-iterate 1-3 on sigma(T) to a tolerance;
5. contribution states (cell SOC, RC voltages) advance with the cell currents.

The steady mode iterates 1-3 (Anderson-accelerated Picard) to a fixed point. A fixed point
that is not physical (temperature below every boundary temperature, or a negative
conductivity) or a temperature past ``runaway_temperature`` means no steady state exists:
thermal runaway, reported as a result with its place and region.
"""

__all__ = ["CoupledModel", "Runaway", "Simulation", "locate"]

_LAZY = {"CoupledModel": "busbarfem.coupling.model", "locate": "busbarfem.coupling.model",
         "Simulation": "busbarfem.coupling.simulation", "Runaway": "busbarfem.events"}


def __getattr__(name: str):
    # lazy, so that the lumped path (stepper, records, contributions) imports no DOLFINx
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'busbarfem.coupling' has no attribute {name!r}")
