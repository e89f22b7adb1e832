"""The ``abuse:`` section of a case file: cell thermal-runaway kinetics, triggers, criteria.

Kinetics are a bundled, cited parameter set (``busbarfem/data/abuse/<name>.yaml``, e.g.
``Kim2007``) or an inline mapping ``{model, parameters}``; they are evaluated lumped per
``cell`` or per mesh ``node``. Triggers start the event: a heater on a named cell, an oven
(ambient temperature and h as functions of time), an internal short (a resistance between
the cell's two potentials) or an external short (across a cell's or the module's
terminals). Cells are named by their region, ``cell_<stage>_<parallel>`` (1-based).
Venting and gas release are out of scope. ``busbarfem run`` solves the section in a 3D
transient (:mod:`busbarfem.physics.abuse`); the lumped runner
:func:`busbarfem.cells.abuse_lumped.run_case_lumped` solves it without a mesh.

Example::

    abuse:
      kinetics: Kim2007
      evaluation: cell
      triggers:
        - {type: heater, cell: cell_1_1, power: 30.0, until_temperature: 473.15}
        - {type: internal_short, cell: cell_1_1, resistance: 0.05, at_temperature: 423.15}
      onset: {rate: 1.0, temperature: 473.15}
      stop: {halt_rate: 0.01, halt_time: 600.0}
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import Field, ValidationError, field_validator, model_validator

from busbarfem.case.base import StrictModel

TimeTable = list[tuple[float, float]]
"""A time profile ``[[t, value], ...]``, t strictly increasing from >= 0 (linear in between)."""

_CELL = re.compile(r"^cell_[1-9][0-9]*_[1-9][0-9]*$")
_MODELS = ("four_equation", "one_equation", "tabulated")


def _check_table(table: TimeTable, what: str, positive: bool) -> TimeTable:
    if len(table) < 1:
        raise ValueError(f"{what}: a profile table needs at least one row [t, value]")
    ts = [r[0] for r in table]
    if ts[0] < 0 or any(b <= a for a, b in zip(ts, ts[1:])):
        raise ValueError(f"{what}: times must start at >= 0 and increase strictly, got {ts}")
    if positive and any(not r[1] > 0 for r in table):
        raise ValueError(f"{what}: values must be > 0")
    return table


def _check_cell(name: str) -> str:
    if not _CELL.match(name):
        raise ValueError(f"cell {name!r} is not a cell region name; write cell_<stage>_<parallel>, "
                         "e.g. cell_1_1")
    return name


class InlineKinetics(StrictModel):
    """Kinetics given in the case file instead of a bundled set."""

    model: Literal["four_equation", "one_equation", "tabulated"] = Field(
        description="four_equation (Hatchard 2001 / Kim 2007), one_equation (lumped Arrhenius) or "
        "tabulated (heat rate against temperature or time since trigger).")
    parameters: dict = Field(description="Model parameters in SI units, as in the bundled files "
                             "(busbarfem/data/abuse/*.yaml); checked when the model is built.")
    source: str | None = Field(None, description="Where the numbers come from (citation).")

    @model_validator(mode="after")
    def _buildable(self):
        from busbarfem.cells.abuse import kinetics_from_dict

        try:
            kinetics_from_dict(self.model, self.parameters)
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"{self.model} parameters: {exc}") from None
        return self


class HeaterTrigger(StrictModel):
    """A heater patch on one cell: ``power`` until the cell reaches ``until_temperature`` or
    for ``duration`` (whichever ends it first; at least one is needed)."""

    type: Literal["heater"]
    cell: str = Field(description="Cell region name, cell_<stage>_<parallel>.")
    power: float = Field(gt=0, description="Heater power [W].")
    start: float = Field(0.0, ge=0, description="Switch-on time [s].")
    until_temperature: float | None = Field(None, gt=0, description="Switch off when the cell reaches this [K].")
    duration: float | None = Field(None, gt=0, description="Switch off after this long [s].")

    @field_validator("cell")
    @classmethod
    def _cell_name(cls, v):
        return _check_cell(v)

    @model_validator(mode="after")
    def _an_end(self):
        if self.until_temperature is None and self.duration is None:
            raise ValueError("a heater needs until_temperature [K] or duration [s] (e.g. until_temperature: 473.15)")
        return self


class OvenTrigger(StrictModel):
    """An oven: ambient temperature and heat transfer coefficient as functions of time
    (a number or a table ``[[t, value], ...]``), applied to every cell surface."""

    type: Literal["oven"]
    temperature: float | TimeTable = Field(description="Oven temperature [K]: a number or [[t, T], ...].")
    h: float | TimeTable = Field(description="Heat transfer coefficient [W/m^2/K]: a number or [[t, h], ...].")
    emissivity: float = Field(0.0, ge=0, le=1, description="Surface emissivity for radiation to the oven [-].")

    @field_validator("temperature", "h")
    @classmethod
    def _profile(cls, v, info):
        if isinstance(v, list):
            return _check_table(v, info.field_name, positive=True)
        if not v > 0:
            raise ValueError(f"{info.field_name} must be > 0")
        return v


class InternalShortTrigger(StrictModel):
    """A nail / internal short: a resistance between the cell's two potentials, switched on
    at a time or when the cell reaches a separator-failure temperature."""

    type: Literal["internal_short"]
    cell: str = Field(description="Cell region name, cell_<stage>_<parallel>.")
    resistance: float = Field(gt=0, description="Short resistance [ohm].")
    at_time: float | None = Field(None, ge=0, description="Switch-on time [s].")
    at_temperature: float | None = Field(None, gt=0, description="Switch on at this cell temperature [K] "
                                         "(separator failure).")

    @field_validator("cell")
    @classmethod
    def _cell_name(cls, v):
        return _check_cell(v)

    @model_validator(mode="after")
    def _a_switch(self):
        if self.at_time is None and self.at_temperature is None:
            raise ValueError("an internal short needs at_time [s] or at_temperature [K]")
        return self


class ExternalShortTrigger(StrictModel):
    """An external short: a resistance across one cell's two potentials, or across the module's
    terminals (in the 3D run a resistor load replacing the case's load while it is on),
    switched on at a time or a temperature (at t = 0 when neither is given)."""

    type: Literal["external_short"]
    cell: str | None = Field(None, description="Cell region name (cell_<stage>_<parallel>); omit with module: true.")
    module: bool = Field(False, description="Short the module terminals instead of one cell.")
    resistance: float = Field(gt=0, description="Short resistance [ohm].")
    at_time: float | None = Field(None, ge=0, description="Switch-on time [s] (0 when at_temperature is not given either).")
    at_temperature: float | None = Field(None, gt=0, description="Switch on when this cell's mean temperature "
                                         "(module: the hottest cell's) reaches this [K].")

    @field_validator("cell")
    @classmethod
    def _cell_name(cls, v):
        return v if v is None else _check_cell(v)

    @model_validator(mode="after")
    def _one_target(self):
        if (self.cell is None) == (not self.module):
            raise ValueError("an external short needs exactly one of cell: cell_<s>_<p> or module: true")
        if self.at_time is None and self.at_temperature is None:
            self.__dict__["at_time"] = 0.0  # on from the start (no re-validation loop)
        return self


Trigger = Annotated[Union[HeaterTrigger, OvenTrigger, InternalShortTrigger, ExternalShortTrigger],
                    Field(discriminator="type")]


class OnsetCriteria(StrictModel):
    """When a cell (node) counts as in thermal runaway."""

    rate: float = Field(1.0, gt=0, description="Onset when the heating rate first exceeds this [K/s].")
    basis: Literal["reaction", "total"] = Field("reaction", description="Which heating rate: the cell's own "
                                                "reaction (self-heating) rate, or the total dT/dt (which also "
                                                "counts heat conducted in from a neighbour in runaway).")
    temperature: float | None = Field(None, gt=0, description="Also report when T first exceeds this [K].")


class AbuseStop(StrictModel):
    """Stop conditions besides the end time."""

    halt_rate: float = Field(0.01, gt=0, description="Reaction heating rate below which a cell is quiet [K/s].")
    halt_time: float = Field(600.0, gt=0, description="Stop when all cells have been quiet this long after "
                             "an onset (propagation halted, or all consumed) [s].")
    all_onset: bool = Field(False, description="Stop as soon as every cell has had its onset.")


class Abuse(StrictModel):
    """Cell thermal runaway: kinetics, where they are evaluated, triggers, criteria."""

    kinetics: str | InlineKinetics = Field("Kim2007", description="A bundled kinetics set name (e.g. Kim2007) "
                                           "or an inline {model, parameters} mapping.")
    evaluation: Literal["cell", "node"] = Field("cell", description="Lumped per cell (driven by the cell-mean "
                                                "temperature), or per mesh node of the cell bodies (3D run).")
    triggers: list[Trigger] = Field(default_factory=list, description="What starts the event, applied together.")
    onset: OnsetCriteria = Field(default_factory=OnsetCriteria)
    stop: AbuseStop = Field(default_factory=AbuseStop)
    rtol: float = Field(1e-5, gt=0, lt=1, description="Relative tolerance of the stiff kinetics integrator [-].")

    @field_validator("kinetics", mode="before")
    @classmethod
    def _inline(cls, v):
        # a mapping is an inline model: report its own error, not "should be a valid string"
        if isinstance(v, dict):
            try:
                return InlineKinetics.model_validate(v)
            except ValidationError as err:
                e = err.errors()[0]
                where = ".".join(str(x) for x in e["loc"])
                raise ValueError(f"inline kinetics{'.' + where if where else ''}: {e['msg']}") from None
        return v

    @field_validator("kinetics")
    @classmethod
    def _known_set(cls, v):
        if isinstance(v, str):
            from busbarfem.cells.abuse import available_sets

            names = available_sets()
            if v not in names:
                raise ValueError(f"unknown abuse kinetics set {v!r}; valid sets: {', '.join(names)} "
                                 "(or an inline mapping {model: four_equation, parameters: {...}})")
        return v

    @model_validator(mode="after")
    def _one_oven(self):
        if sum(isinstance(t, OvenTrigger) for t in self.triggers) > 1:
            raise ValueError("at most one oven trigger")
        return self

    def build_kinetics(self):
        """The :class:`busbarfem.cells.abuse.Kinetics` this section names."""
        from busbarfem.cells.abuse import kinetics_from_dict, kinetics_from_set

        if isinstance(self.kinetics, str):
            return kinetics_from_set(self.kinetics)
        return kinetics_from_dict(self.kinetics.model, self.kinetics.parameters)
