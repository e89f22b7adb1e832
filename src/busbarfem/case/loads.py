"""The ``load:`` section of a case file: module electrical load, limits and step sequences.

Two ways to say what drives the module terminals (both compile to the same typed
:class:`Step` list that :class:`busbarfem.loads.LoadController` runs):

1. The keys of AcuSolve's BATTERY_MODULE command: ``electrical_input_type`` (current,
   c_rate, voltage, power, standard_charge_profile), ``current_type`` / ``c_rate_type`` /
   ``power_type`` (constant | const | piecewise_linear | linear | cubic_spline | spline),
   the value or a ``*_curve_fit_values`` table ``[[t, value], ...]`` or a two-column
   ``*_curve_fit_file`` (path relative to the case file), ``charging_profile_type``
   (cccv | cpcv and long names), ``cut_off_current_percent`` and cell limits.
2. ``steps``: PyBaMM-style strings ("Discharge at 1C until 2.5 V") or mappings with the
   same fields as :class:`Step`.

Conventions: positive current = discharge. Currents and powers are *module terminal*
values; C-rates refer to the module capacity (n_parallel x cell capacity); voltages in
stop conditions and limits are *cell* voltages (highest cell when charging, lowest when
discharging); ``Hold at X V`` holds the module so that its cells sit at X V
(``voltage_basis: module`` takes X as the module terminal voltage instead).
``cut_off_current_percent`` is a fraction of the 1C current (0.01 = 1 %), as in AcuSolve.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from busbarfem.case.base import StrictModel
from busbarfem.errors import CaseError

ProfileType = Literal["constant", "const", "piecewise_linear", "linear", "cubic_spline", "spline"]
ChargingProfile = Literal["none", "constant_current_constant_voltage", "cccv",
                          "constant_power_constant_voltage", "cpcv"]
TimeTable = list[tuple[float, float]]

_CANONICAL = {"const": "constant", "linear": "piecewise_linear", "spline": "cubic_spline",
              "cccv": "constant_current_constant_voltage",
              "cpcv": "constant_power_constant_voltage"}

STEP_EXAMPLES = (
    "Discharge at 1C until 2.5 V",
    "Charge at 2 A until 4.2 V",
    "Hold at 4.2 V until C/50",
    "Rest for 30 minutes",
    "Discharge at 20 W for 10 minutes",
    "Charge at 1C for 1 hour or until 4.1 V",
    "Discharge at C/3 until 10% SOC",
    "Discharge at 2C until 45 degC",
)


def canonical(name: str | None) -> str | None:
    """Long name of a profile/charging-type alias (``linear`` -> ``piecewise_linear``)."""
    return None if name is None else _CANONICAL.get(name, name)


class Step(StrictModel):
    """One step of a load sequence (what a step string parses to).

    ``kind`` sets the sign: discharge > 0, charge < 0; give magnitudes. A step ends at
    the first of ``duration`` or any ``until_*`` condition; the load's limits always apply.
    """

    kind: Literal["discharge", "charge", "hold", "rest", "profile"] = Field(
        description="discharge | charge (current, c_rate or power), hold (voltage), rest, "
        "or profile (a signed table in time).")
    current: float | None = Field(None, gt=0.0, description="Module current magnitude [A].")
    c_rate: float | None = Field(None, gt=0.0, description="C-rate magnitude [1/h] of the module capacity.")
    power: float | None = Field(None, gt=0.0, description="Module power magnitude [W].")
    voltage: float | None = Field(None, gt=0.0, description="Hold voltage [V] (see voltage_basis).")
    voltage_basis: Literal["cell", "module"] = Field(
        "cell", description="Hold voltage per cell (default) or at the module terminals.")
    profile_quantity: Literal["current", "c_rate", "power"] | None = Field(
        None, description="What a profile step prescribes (signed, + discharge).")
    profile: TimeTable | None = Field(
        None, description="Profile table [[t_since_step_start [s], value], ...].")
    profile_interpolation: Literal["piecewise_linear", "cubic_spline"] = Field(
        "piecewise_linear", description="Interpolation of the profile table.")
    duration: float | None = Field(None, gt=0.0, description="Step length [s].")
    until_voltage: float | None = Field(
        None, gt=0.0, description="End when a cell voltage reaches this [V] (lowest cell on "
        "discharge, highest on charge).")
    until_current: float | None = Field(
        None, gt=0.0, description="End when |module current| falls to this [A].")
    until_c_rate: float | None = Field(
        None, gt=0.0, description="End when |module current| falls to this C-rate [1/h].")
    until_soc: float | None = Field(
        None, ge=0.0, le=1.0, description="End when a cell SOC reaches this [-] (lowest on "
        "discharge, highest on charge).")
    until_temperature: float | None = Field(
        None, gt=0.0, description="End when the maximum temperature reaches this [K].")
    description: str | None = Field(None, description="Free text (the original step string).")

    @model_validator(mode="after")
    def _check_kind(self):
        drive = [n for n in ("current", "c_rate", "power") if getattr(self, n) is not None]
        if self.kind in ("discharge", "charge"):
            if len(drive) != 1 or self.voltage is not None:
                raise ValueError(f"a {self.kind} step needs exactly one of current [A], c_rate "
                                 f"[1/h] or power [W] (got {drive or 'none'})")
        elif self.kind == "hold":
            if self.voltage is None or drive:
                raise ValueError("a hold step needs voltage [V] and no current/c_rate/power")
        elif self.kind == "rest":
            if drive or self.voltage is not None:
                raise ValueError("a rest step takes no current/c_rate/power/voltage")
        elif self.kind == "profile":
            if self.profile is None or self.profile_quantity is None or drive:
                raise ValueError("a profile step needs profile_quantity and profile "
                                 "[[t, value], ...] (and no current/c_rate/power)")
            check_time_table(self.profile, "profile")
        return self

    def to_string(self) -> str:
        """Canonical step string; ``parse_step(s.to_string())`` gives back ``s``."""
        if self.kind == "profile":
            return f"{self.profile_quantity} profile ({len(self.profile or [])} points)"
        if self.kind == "rest":
            text = "Rest"
        elif self.kind == "hold":
            text = f"Hold at {_num(self.voltage)} V"
        else:
            if self.current is not None:
                amount = f"{_num(self.current)} A"
            elif self.c_rate is not None:
                amount = _rate(self.c_rate)
            else:
                amount = f"{_num(self.power)} W"
            text = f"{self.kind.capitalize()} at {amount}"
        conds = []
        if self.until_voltage is not None:
            conds.append(f"{_num(self.until_voltage)} V")
        if self.until_current is not None:
            conds.append(f"{_num(self.until_current)} A")
        if self.until_c_rate is not None:
            conds.append(_rate(self.until_c_rate))
        if self.until_soc is not None:
            conds.append(f"{_num(100.0 * self.until_soc)}% SOC")
        if self.until_temperature is not None:
            conds.append(f"{_num(self.until_temperature)} K")
        if self.duration is not None:
            text += f" for {_num(self.duration)} seconds"
            if conds:
                text += " or"
        if conds:
            text += " until " + " or ".join(conds)
        return text


def _rate(c: float) -> str:
    inv = 1.0 / c
    if c < 1.0 and abs(inv - round(inv)) < 1e-9:
        return f"C/{round(inv)}"
    return f"{_num(c)}C"


def _num(x: float) -> str:
    short = f"{x:g}"
    return short if float(short) == x else repr(float(x))


def check_time_table(table, what: str) -> None:
    """Validate a ``[[t, value], ...]`` table: >= 2 rows, finite, t strictly increasing."""
    arr = np.asarray(table, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 2:
        raise ValueError(f"{what}: needs at least 2 rows of [time [s], value]")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: entries must be finite numbers")
    bad = np.nonzero(np.diff(arr[:, 0]) <= 0.0)[0]
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{what}: time must be strictly increasing; row {i + 1} has "
                         f"t={arr[i, 0]:g}, row {i + 2} has t={arr[i + 1, 0]:g}")


# ---------------------------------------------------------------------------- step strings

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?"
_DURATION_UNITS = {"s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
                   "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
                   "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0}


def _step_error(text: str, why: str) -> CaseError:
    examples = "\n    ".join(STEP_EXAMPLES)
    return CaseError(f"cannot read step {text!r}: {why}\n  valid examples:\n    {examples}",
                     key="load.steps")


def _finite(value: float, token: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{token.strip()!r} is not a finite number")
    return value


def _parse_quantity(token: str) -> tuple[str, float]:
    """Return (unit class, SI value) of "1C", "C/50", "2 A", "500 mA", "20 W", "4.2 V", ..."""
    kind, value = _parse_quantity_raw(token)
    return kind, _finite(value, token)


def _parse_quantity_raw(token: str) -> tuple[str, float]:
    tok = token.strip().lower().replace("°c", "degc")
    m = re.fullmatch(r"c\s*/\s*(" + _NUM + r")", tok)
    if m:
        den = float(m.group(1))
        if not den > 0:
            raise ValueError(f"{token.strip()!r}: the C-rate divisor must be > 0 (e.g. C/50)")
        return "c_rate", 1.0 / den
    m = re.fullmatch(r"(" + _NUM + r")\s*(%\s*soc|%|soc|ma|a|c|mw|kw|w|mv|v|k|degc)", tok)
    if m:
        value, unit = float(m.group(1)), m.group(2).replace(" ", "")
        table = {"ma": ("current", 1e-3), "a": ("current", 1.0), "c": ("c_rate", 1.0),
                 "mw": ("power", 1e-3), "kw": ("power", 1e3), "w": ("power", 1.0),
                 "mv": ("voltage", 1e-3), "v": ("voltage", 1.0), "k": ("temperature", 1.0),
                 "%soc": ("soc", 0.01), "%": ("soc", 0.01)}
        if unit == "degc":
            return "temperature", value + 273.15
        if unit == "soc":
            return "soc", value
        kind, scale = table[unit]
        return kind, value * scale
    m = re.fullmatch(r"soc\s*(" + _NUM + r")\s*(%?)", tok)
    if m:
        return "soc", float(m.group(1)) * (0.01 if m.group(2) else 1.0)
    raise ValueError(f"cannot read the quantity {token.strip()!r}")


def _parse_duration(token: str) -> float:
    m = re.fullmatch(r"(" + _NUM + r")\s*([a-z]+)", token.strip().lower())
    if not m or m.group(2) not in _DURATION_UNITS:
        raise ValueError(f"cannot read the duration {token.strip()!r} (use e.g. '30 minutes', "
                         f"'1 hour', '90 s')")
    return _finite(float(m.group(1)) * _DURATION_UNITS[m.group(2)], token)


def parse_step(text: str) -> Step:
    """Parse a PyBaMM-style step string into a :class:`Step`.

    Raises:
        CaseError: the string cannot be read; the message lists valid examples.
    """
    if not isinstance(text, str) or not text.strip():
        raise _step_error(str(text), "empty step")
    s = " ".join(text.strip().rstrip(".").split())
    m = re.match(r"(?i)(discharge|charge|hold|rest)\b\s*(.*)$", s)
    if not m:
        raise _step_error(text, "a step starts with Discharge, Charge, Hold or Rest")
    kind, rest = m.group(1).lower(), m.group(2)
    fields: dict = {"kind": kind, "description": s}
    try:
        if kind != "rest":
            ma = re.match(r"(?i)at\s+(.+?)(?=\s+(?:for|until|or)\s|$)(.*)$", rest)
            if not ma:
                raise ValueError(f"'{kind.capitalize()}' needs 'at <value>' "
                                 f"(e.g. 'at 1C', 'at 2 A', 'at 20 W', 'at 4.2 V')")
            unit, value = _parse_quantity(ma.group(1))
            rest = ma.group(2)
            if kind == "hold":
                if unit != "voltage":
                    raise ValueError("Hold needs a voltage, e.g. 'Hold at 4.2 V'")
                fields["voltage"] = value
            else:
                if unit not in ("current", "c_rate", "power"):
                    raise ValueError(f"{kind.capitalize()} needs a current (A), C-rate (C) or "
                                     f"power (W), got {ma.group(1)!r}")
                if value <= 0:
                    raise ValueError("give a positive magnitude; Charge/Discharge sets the sign")
                fields[unit] = value
        _parse_clauses(rest, fields)
    except ValueError as exc:
        raise _step_error(text, str(exc)) from None
    if kind == "rest" and "duration" not in fields and not any(k.startswith("until") for k in fields):
        raise _step_error(text, "Rest needs 'for <duration>', e.g. 'Rest for 30 minutes'")
    try:
        return Step(**fields)
    except ValueError as exc:  # pydantic ValidationError is a ValueError
        raise _step_error(text, str(exc).splitlines()[-1]) from None


def _parse_clauses(rest: str, fields: dict) -> None:
    words = rest.split()
    i, mode = 0, None
    buf: list[str] = []

    def flush():
        if not buf:
            return
        token = " ".join(buf)
        buf.clear()
        if mode == "for":
            if "duration" in fields:
                raise ValueError("two durations given")
            fields["duration"] = _parse_duration(token)
        elif mode == "until":
            unit, value = _parse_quantity(token)
            key = {"voltage": "until_voltage", "current": "until_current",
                   "c_rate": "until_c_rate", "soc": "until_soc",
                   "temperature": "until_temperature"}.get(unit)
            if key is None:
                raise ValueError(f"cannot stop on {token!r}: use V, A, C-rate, % SOC or degC/K")
            fields[key] = value
        else:
            raise ValueError(f"unexpected text {token!r}")

    while i < len(words):
        w = words[i].lower()
        if w in ("for", "until"):
            flush()
            mode = w
        elif w == "or":
            flush()
            nxt = words[i + 1].lower() if i + 1 < len(words) else ""
            if nxt not in ("for", "until") and mode != "until":
                raise ValueError("'or' must be followed by 'for ...' or 'until ...'")
        else:
            if mode is None:
                raise ValueError(f"unexpected text {' '.join(words[i:])!r}")
            buf.append(words[i])
        i += 1
    flush()


# --------------------------------------------------------------------------- curve files

def read_curve_file(path: str | Path, *, key: str | None = None) -> np.ndarray:
    """Read a two-column ``time value`` text file (whitespace or comma separated).

    Blank lines and lines starting with ``#`` are skipped.

    Raises:
        CaseError: unreadable file, or a bad line (file and line number in the message).
    """
    from busbarfem.safeio import MAX_TABLE_BYTES, read_text

    path = Path(path)
    lines = read_text(path, "curve-fit file", max_bytes=MAX_TABLE_BYTES, key=key).splitlines()
    rows = []
    for n, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = [p for p in re.split(r"[,\s;]+", text) if p]
        try:
            if len(parts) != 2:
                raise ValueError
            t, v = float(parts[0]), float(parts[1])
            if not (math.isfinite(t) and math.isfinite(v)):
                raise ValueError
        except ValueError:
            raise CaseError(f"expected two numbers 'time value' per line, got {line.strip()!r}",
                            file=str(path), line=n, key=key) from None
        if rows and t <= rows[-1][0]:
            raise CaseError(f"time must increase: {t:g} s follows {rows[-1][0]:g} s",
                            file=str(path), line=n, key=key)
        rows.append((t, v))
    if len(rows) < 2:
        raise CaseError("a curve-fit file needs at least 2 lines 'time value'", file=str(path), key=key)
    return np.asarray(rows, dtype=float)


# --------------------------------------------------------------------------------- the load

_CLASSIC_KEYS = {
    "electrical_input_type", "current_type", "c_rate_type", "power_type", "voltage_type",
    "current", "c_rate", "voltage", "power", "charging_profile_type",
    "current_curve_fit_values", "current_curve_fit_file", "current_curve_fit_variable",
    "c_rate_curve_fit_values", "c_rate_curve_fit_file", "c_rate_curve_fit_variable",
    "power_curve_fit_values", "power_curve_fit_file", "power_curve_fit_variable",
}


class Load(StrictModel):
    """Module load: AcuSolve BATTERY_MODULE-style input type or a step sequence, plus limits.

    Validate with ``Load.model_validate(data, context={"case_dir": folder})`` so that
    ``*_curve_fit_file`` paths resolve relative to the case file.
    """

    electrical_input_type: Literal["current", "c_rate", "voltage", "power",
                                   "standard_charge_profile"] = Field(
        "current", description="What drives the module terminals.")
    current_type: ProfileType | None = Field(None, description="Current input type.")
    c_rate_type: ProfileType | None = Field(None, description="C-rate input type.")
    power_type: ProfileType | None = Field(None, description="Power input type.")
    voltage_type: Literal["constant", "const"] = Field("constant", description="Voltage input type.")
    current: float | None = Field(None, description="Constant module current [A] (+ discharge).")
    c_rate: float | None = Field(None, description="Constant C-rate [1/h] (+ discharge).")
    voltage: float | None = Field(None, gt=0.0, description="Constant module voltage [V].")
    power: float | None = Field(None, description="Constant module power [W] (+ discharge).")
    current_curve_fit_values: TimeTable | None = Field(None, description="[[t [s], A], ...].")
    current_curve_fit_file: str | None = Field(None, description="Two-column file 't A'.")
    current_curve_fit_variable: Literal["time"] = Field("time", description="Independent variable.")
    c_rate_curve_fit_values: TimeTable | None = Field(None, description="[[t [s], 1/h], ...].")
    c_rate_curve_fit_file: str | None = Field(None, description="Two-column file 't C'.")
    c_rate_curve_fit_variable: Literal["time"] = Field("time", description="Independent variable.")
    power_curve_fit_values: TimeTable | None = Field(None, description="[[t [s], W], ...].")
    power_curve_fit_file: str | None = Field(None, description="Two-column file 't W'.")
    power_curve_fit_variable: Literal["time"] = Field("time", description="Independent variable.")
    charging_profile_type: ChargingProfile = Field(
        "none", description="Standard charge profile: cccv or cpcv (long names accepted).")
    cut_off_current_percent: float = Field(
        0.01, gt=0.0, lt=1.0, description="CV ends when |I| falls to this fraction of 1C [-].")
    maximum_cell_voltage: float = Field(4.2, gt=0.0, description="Upper cell voltage limit [V].")
    minimum_cell_voltage: float = Field(3.0, gt=0.0, description="Lower cell voltage limit [V].")
    maximum_cell_state_of_charge: float = Field(0.95, ge=0.0, le=1.0, description="Upper SOC limit [-].")
    minimum_cell_state_of_charge: float = Field(0.05, ge=0.0, le=1.0, description="Lower SOC limit [-].")
    maximum_cell_temperature: float | None = Field(
        None, gt=0.0, description="Stop when any temperature reaches this [K].")
    steps: list[Step | str] | None = Field(
        None, description="Step sequence: strings ('Discharge at 1C until 2.5 V') or mappings.")

    _curves: dict = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _infer_input_type(cls, data):
        # Without electrical_input_type, the one quantity the user gave decides it
        # (``c_rate: 1`` means a C-rate load); AcuSolve's default 'current' otherwise.
        if not isinstance(data, dict) or "electrical_input_type" in data or "steps" in data:
            return data
        families = {q for q in ("current", "c_rate", "power", "voltage")
                    if any(k == q or k.startswith(q + "_") for k in data)}
        if len(families) == 1:
            data = {**data, "electrical_input_type": families.pop()}
        return data

    @field_validator("steps", mode="before")
    @classmethod
    def _parse_steps(cls, value):
        if value is None:
            return value
        if not isinstance(value, list) or not value:
            raise ValueError("steps: give a non-empty list of step strings or mappings")
        out = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                try:
                    out.append(parse_step(item))
                except CaseError as exc:
                    raise ValueError(f"steps[{i}]: {exc.message}") from None
            else:
                out.append(item)
        return out

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo):
        if self.minimum_cell_voltage >= self.maximum_cell_voltage:
            raise ValueError("minimum_cell_voltage must be below maximum_cell_voltage")
        if self.minimum_cell_state_of_charge >= self.maximum_cell_state_of_charge:
            raise ValueError("minimum_cell_state_of_charge must be below maximum_cell_state_of_charge")
        case_dir = Path((info.context or {}).get("case_dir", "."))
        for q in ("current", "c_rate", "power"):
            values = getattr(self, f"{q}_curve_fit_values")
            fname = getattr(self, f"{q}_curve_fit_file")
            if values is not None and fname is not None:
                raise ValueError(f"give {q}_curve_fit_values or {q}_curve_fit_file, not both")
            if values is not None:
                check_time_table(values, f"{q}_curve_fit_values")
                self._curves[q] = np.asarray(values, dtype=float)
            elif fname is not None:
                path = Path(fname) if Path(fname).is_absolute() else case_dir / fname
                self._curves[q] = read_curve_file(path, key=f"load.{q}_curve_fit_file")
        if self.steps is not None:
            given = _CLASSIC_KEYS & self.model_fields_set
            if given:
                raise ValueError(f"give either steps or the AcuSolve-style input keys "
                                 f"({', '.join(sorted(given))}), not both")
        self.compiled_steps()  # raises ValueError on missing inputs
        for i, step in enumerate(self.compiled_steps()):
            v = step.until_voltage
            if v is None:
                continue
            if step.kind == "discharge" and v < self.minimum_cell_voltage:
                raise ValueError(f"step {i + 1} ({step.to_string()}) goes below "
                                 f"minimum_cell_voltage {self.minimum_cell_voltage} V; set "
                                 f"minimum_cell_voltage: {v:g} or change the step")
            if step.kind == "charge" and v > self.maximum_cell_voltage:
                raise ValueError(f"step {i + 1} ({step.to_string()}) goes above "
                                 f"maximum_cell_voltage {self.maximum_cell_voltage} V; set "
                                 f"maximum_cell_voltage: {v:g} or change the step")
        return self

    def curve(self, quantity: str) -> np.ndarray | None:
        """The ``[[t, value]]`` table of ``quantity`` (inline or read from its file)."""
        return self._curves.get(quantity)

    def compiled_steps(self) -> list[Step]:
        """The load as a step list (AcuSolve-style input keys compiled to steps).

        Raises:
            ValueError: a required input is missing (message names the key).
        """
        if self.steps is not None:
            return [s if isinstance(s, Step) else parse_step(s) for s in self.steps]
        kind = self.electrical_input_type
        if kind == "voltage":
            if self.voltage is None:
                raise ValueError("electrical_input_type voltage needs 'voltage' [V] (module)")
            return [Step(kind="hold", voltage=self.voltage, voltage_basis="module",
                         description=f"module voltage {self.voltage:g} V")]
        if kind in ("current", "c_rate", "power"):
            return [self._drive_step(kind)]
        # standard_charge_profile
        profile = canonical(self.charging_profile_type)
        if profile == "constant_current_constant_voltage":
            if self.current is not None:
                cc = Step(kind="charge", current=abs(self.current))
            elif self.c_rate is not None:
                cc = Step(kind="charge", c_rate=abs(self.c_rate))
            else:
                raise ValueError("cccv charging needs 'current' [A] or 'c_rate' [1/h]")
        elif profile == "constant_power_constant_voltage":
            if self.power is None:
                raise ValueError("cpcv charging needs 'power' [W]")
            cc = Step(kind="charge", power=abs(self.power))
        else:
            raise ValueError("electrical_input_type standard_charge_profile needs "
                             "charging_profile_type: cccv or cpcv")
        if cc.current == 0 or cc.c_rate == 0 or cc.power == 0:
            raise ValueError("the charging current/power must be non-zero")
        cc = cc.model_copy(update={"until_voltage": self.maximum_cell_voltage,
                                   "description": f"{'CP' if cc.power else 'CC'} charge"})
        cv = Step(kind="hold", voltage=self.maximum_cell_voltage,
                  until_c_rate=self.cut_off_current_percent, description="CV charge")
        return [cc, cv]

    def _drive_step(self, quantity: str) -> Step:
        ptype = canonical(getattr(self, f"{quantity}_type"))
        table = self._curves.get(quantity)
        value = getattr(self, quantity)
        if ptype is None:
            ptype = "constant" if value is not None or table is None else "piecewise_linear"
        if ptype == "constant":
            if value is None:
                raise ValueError(f"electrical_input_type {quantity} with a constant "
                                 f"{quantity}_type needs '{quantity}'")
            if value == 0:
                return Step(kind="rest", description=f"{quantity} 0")
            return Step(kind="discharge" if value > 0 else "charge", **{quantity: abs(value)},
                        description=f"constant {quantity} {value:g}")
        if table is None:
            raise ValueError(f"{quantity}_type {ptype} needs {quantity}_curve_fit_values "
                             f"[[t, value], ...] or {quantity}_curve_fit_file")
        return Step(kind="profile", profile_quantity=quantity, profile=table.tolist(),
                    profile_interpolation=ptype, description=f"{quantity} profile")
