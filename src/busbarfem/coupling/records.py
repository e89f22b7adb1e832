"""What one accepted step produced (:class:`StepRecord`), and the per-cell names and
values shared by the 3D and the lumped outputs (one spelling of every column)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def cell_columns(name: str, current, voltage, soc, T_mean, q_irr, q_rev) -> dict[str, float]:
    """The time-series columns of one battery cell (``timeseries.csv``, 3D and lumped)."""
    return {f"I_{name} [A]": current, f"V_{name} [V]": voltage, f"SOC_{name} [-]": soc,
            f"T_mean_{name} [K]": T_mean, f"q_irr_{name} [W]": q_irr, f"q_rev_{name} [W]": q_rev}


def cell_summary(current, voltage, soc, T_mean, q_irr, q_rev, R0, heat_total, joule=None) -> dict:
    """One battery cell's final values in ``summary.json`` (``joule``: collector Joule heat, 3D only)."""
    out = {"current_A": float(current), "voltage_V": float(voltage), "soc": float(soc), "T_mean_K": float(T_mean),
           "heat_irreversible_W": float(q_irr), "heat_reversible_W": float(q_rev)}
    if joule is not None:
        out["heat_joule_W"] = float(joule)
    out["heat_W"] = float(heat_total)
    out["R0_ohm"] = float(R0)
    return out


@dataclass
class StepRecord:
    """One recorded time: what the writers (time series, fields, summary) are fed.

    Attributes:
        t: time [s]; step: step index (0 = initial state); dt: length of the step just taken.
        solution: the terminal solution at ``t``.
        flows: heat flows of the step just taken (:class:`busbarfem.physics.thermal.HeatFlows`).
        heat: heat per source and region of the step [W] (``{"joule": {region: W}, ..., "total": ...}``).
        row: the time-series row (``"name [unit]": value``).
        event: the load event that ended this step, if any (``Event.to_dict()``).
    """

    t: float
    step: int
    dt: float
    solution: Any
    flows: Any
    heat: dict
    row: dict = field(default_factory=dict)
    event: dict | None = None
