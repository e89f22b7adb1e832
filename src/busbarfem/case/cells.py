"""The ``cell:`` section of a case file: the equivalent-circuit cell model.

Every cell in the module shares these parameters; per-cell spread (capacity, R0) is
given by ``variation``. Tables are ``[[soc, value], ...]`` with SOC in [0, 1] strictly
increasing. A ``preset`` loads a bundled, cited parameter file
(``busbarfem/data/cells/<preset>.yaml``); any field given alongside it overrides the
preset's value.

Example::

    cell:
      preset: LG_M50
      initial_soc: 0.9
      variation: {capacity_std: 0.02, R0_std: 0.05, seed: 1}

A PyBaMM electrochemical model per cell instead of the ECM (``busbarfem[pybamm]``, 3D)::

    cell:
      model: pybamm
      pybamm: {model: SPMe, parameter_set: Chen2020}
      preset: LG_M50        # only its thermal and collector properties are used
      initial_soc: 0.9
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from busbarfem.case.base import StrictModel

SocTable = list[tuple[float, float]]
"""A table ``[[soc, value], ...]``; SOC strictly increasing within [0, 1]."""

Vector3 = tuple[float, float, float]

_PRESET_PACKAGE = "busbarfem"
_PRESET_DIR = ("data", "cells")


def available_presets() -> list[str]:
    """Names of the bundled cell parameter files (without ``.yaml``)."""
    folder = resources.files(_PRESET_PACKAGE).joinpath(*_PRESET_DIR)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


@lru_cache(maxsize=16)
def _read_preset(name: str) -> dict:
    folder = resources.files(_PRESET_PACKAGE).joinpath(*_PRESET_DIR)
    return _parse_cell_yaml(folder.joinpath(f"{name}.yaml").read_text(encoding="utf-8"), f"{name}.yaml")


def _parse_cell_yaml(text: str, where: str):
    """A cell file read as the case files are (YAML 1.2 core schema: ``1.58e6`` and ``1e-3``
    are numbers, PyYAML's own YAML 1.1 reader makes them strings).

    Raises:
        ValueError: a YAML error, naming the file and line.
    """
    from busbarfem.case.loader import parse_yaml

    try:
        return parse_yaml(text)[0]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ValueError(f"cell file {where}{line}: {getattr(exc, 'problem', None) or exc}") from None


def load_preset(name: str, case_dir: str | Path | None = None) -> dict:
    """Return the bundled preset file as a dict (keys ``name``, ``sources``, ``cell``).

    A name ending in ``.yaml``/``.yml`` is a cell file path (relative to ``case_dir``),
    e.g. one written by ``busbarfem fit-ecm``.

    Raises:
        ValueError: unknown preset; the message lists the valid names.
    """
    if name.endswith((".yaml", ".yml")):
        path = Path(name) if case_dir is None else Path(case_dir) / name
        try:
            data = _parse_cell_yaml(path.read_text(encoding="utf-8"), str(path))
        except OSError as exc:
            raise ValueError(f"cell file {str(path)!r} cannot be read ({exc.strerror}); give a "
                             f"bundled preset ({', '.join(available_presets())}) or a cell file "
                             "path relative to the case file") from None
        if not isinstance(data, dict) or not isinstance(data.get("cell"), dict):
            raise ValueError(f"cell file {str(path)!r} needs a 'cell:' mapping (as written by "
                             "`busbarfem fit-ecm`)")
        return data
    names = available_presets()
    if name not in names:
        raise ValueError(f"unknown cell preset {name!r}; valid presets: {', '.join(names)}")
    return _read_preset(name)


def check_soc_table(table: SocTable, what: str, *, positive: bool = False,
                    increasing: bool = False) -> SocTable:
    """Validate a ``[[soc, value], ...]`` table; raise ValueError saying what is valid.

    Args:
        table: the rows.
        what: the quantity, for the message (``"ocv [V]"``).
        positive: values must be > 0.
        increasing: values must be non-decreasing with SOC (OCV).
    """
    if len(table) < 2:
        raise ValueError(f"{what}: a table needs at least 2 rows [[soc, value], ...], got {len(table)}")
    soc = np.array([r[0] for r in table], dtype=float)
    val = np.array([r[1] for r in table], dtype=float)
    if not np.all(np.isfinite(soc)) or not np.all(np.isfinite(val)):
        raise ValueError(f"{what}: table entries must be finite numbers")
    if soc.min() < 0.0 or soc.max() > 1.0:
        raise ValueError(f"{what}: SOC must lie in [0, 1]; found {soc.min():g}..{soc.max():g}")
    bad = np.nonzero(np.diff(soc) <= 0.0)[0]
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{what}: SOC must be strictly increasing; row {i + 1} has soc={soc[i]:g} "
            f"and row {i + 2} has soc={soc[i + 1]:g}"
        )
    if positive and np.any(val <= 0.0):
        i = int(np.nonzero(val <= 0.0)[0][0])
        raise ValueError(f"{what}: values must be > 0; row {i + 1} has {val[i]:g}")
    if increasing:
        dec = np.nonzero(np.diff(val) < 0.0)[0]
        if dec.size:
            i = int(dec[0])
            raise ValueError(
                f"{what}: must not decrease with SOC; row {i + 1} ({val[i]:g}) > "
                f"row {i + 2} ({val[i + 1]:g})"
            )
    return table


def _positive_scalar_or_table(value: float | SocTable, what: str) -> float | SocTable:
    if isinstance(value, (int, float)):
        if value <= 0.0:
            raise ValueError(f"{what}: must be > 0 (a number or a [[soc, value], ...] table), got {value}")
        return value
    return check_soc_table(value, what, positive=True)


class RCPair(StrictModel):
    """One parallel resistor-capacitor pair of the ECM (``C = tau / R``)."""

    R: float | SocTable = Field(
        description="Resistance [ohm]: a number or a [[soc, ohm], ...] table.")
    tau: float = Field(gt=0.0, description="Time constant R*C [s].")
    activation_energy: float = Field(
        0.0, ge=0.0, description="Arrhenius activation energy of R [J/mol] (0: no T effect); "
        "R(T) = R exp(Ea/R_gas (1/T - 1/T_ref)), tau kept (C scales as 1/R).")

    @field_validator("R")
    @classmethod
    def _check_r(cls, v):
        return _positive_scalar_or_table(v, "R [ohm]")


class Diffusion(StrictModel):
    """Solid-diffusion lag of the ECM: the OCV is taken at a surface SOC that trails the
    bulk SOC, ``SOC_s = SOC - x`` with ``dx/dt = (lag_1C I / Q - x) / tau`` (I in A, Q in
    Ah, so a constant 1C current settles at ``x = lag_1C``). It gives the knee of a
    high-rate discharge that SOC-table resistances cannot follow."""

    tau: float = Field(gt=0.0, description="Time constant of the surface-SOC lag [s].")
    lag_1C: float = Field(gt=0.0, lt=1.0, description="Steady surface-SOC lag at a constant 1C [-].")


class Kinetics(StrictModel):
    """Butler-Volmer (asinh) charge-transfer overpotential of the ECM, in series with R0:
    ``eta = R(SOC, T) I_s(T) asinh(I / I_s(T))`` with ``R(T) = R exp(Ea/R_gas (1/T - 1/T_ref))``
    and ``I_s(T) = current_scale / exp(...)`` (the exchange current scales inversely to R).
    Linear (``R I``) for ``|I| << I_s``, logarithmic above: the effective resistance falls
    with the current, as an electrochemical model's does."""

    R: float | SocTable = Field(
        description="Small-current charge-transfer resistance [ohm]: a number or [[soc, ohm], ...].")
    current_scale: float = Field(gt=0.0, description="Current scale I_s = 2 x exchange current at T_ref [A].")
    activation_energy: float = Field(0.0, ge=0.0, description="Arrhenius activation energy of R [J/mol].")

    @field_validator("R")
    @classmethod
    def _check_r(cls, v):
        return _positive_scalar_or_table(v, "kinetics.R [ohm]")


class CellVariation(StrictModel):
    """Cell-to-cell spread for parallel-imbalance studies.

    Either a seeded random spread (``capacity_std``, ``R0_std``: relative standard
    deviations of a normal distribution around 1) or explicit per-cell factors in
    (stage, parallel) order: ``cell_1_1, cell_1_2, ..., cell_2_1, ...``.
    """

    capacity_std: float = Field(0.0, ge=0.0, lt=0.5,
                                description="Relative std of the capacity factor [-].")
    R0_std: float = Field(0.0, ge=0.0, lt=0.5, description="Relative std of the R0 factor [-].")
    seed: int = Field(0, description="Seed of the random spread (same seed, same cells).")
    capacity_factors: list[float] | None = Field(
        None, description="Explicit capacity factor per cell [-], (stage, parallel) order.")
    R0_factors: list[float] | None = Field(
        None, description="Explicit R0 factor per cell [-], (stage, parallel) order.")

    @model_validator(mode="after")
    def _check(self):
        for name in ("capacity_factors", "R0_factors"):
            vals = getattr(self, name)
            if vals is not None and any(v <= 0.0 for v in vals):
                raise ValueError(f"{name}: every factor must be > 0")
        if self.capacity_factors is not None and self.capacity_std > 0.0:
            raise ValueError("give either capacity_factors or capacity_std, not both")
        if self.R0_factors is not None and self.R0_std > 0.0:
            raise ValueError("give either R0_factors or R0_std, not both")
        return self

    def factors(self, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
        """Capacity and R0 factors for ``n_cells`` cells in (stage, parallel) order.

        Raises:
            ValueError: an explicit list has the wrong length.
        """
        rng = np.random.default_rng(self.seed)
        # Draw both streams always, so changing one std does not reshuffle the other.
        z_cap = rng.standard_normal(n_cells)
        z_r0 = rng.standard_normal(n_cells)
        out = []
        for name, std, z in (("capacity_factors", self.capacity_std, z_cap),
                             ("R0_factors", self.R0_std, z_r0)):
            given = getattr(self, name)
            if given is not None:
                if len(given) != n_cells:
                    raise ValueError(f"variation.{name}: needs {n_cells} values (one per cell, "
                                     f"(stage, parallel) order), got {len(given)}")
                out.append(np.asarray(given, dtype=float))
            else:
                out.append(np.clip(1.0 + std * z, 0.2, None))
        return out[0], out[1]


PRESET_PROVIDES = ("capacity", "ocv", "R0")
"""Fields required in a ``cell:`` section unless a ``preset`` supplies them."""


def _cell_json_schema(schema: dict) -> None:
    """JSON Schema of ``cell:`` as validation sees it: a preset supplies the required fields.

    The preset is merged in before field validation, so ``capacity``, ``ocv`` and ``R0``
    are required only without one; the preset name must be a bundled one.
    """
    schema["required"] = [k for k in schema.get("required", []) if k not in PRESET_PROVIDES]
    schema["properties"]["preset"]["anyOf"] = [{"enum": available_presets()},
                                                {"type": "string", "pattern": r"\.ya?ml$"}, {"type": "null"}]
    schema["anyOf"] = [
        {"required": ["preset"], "properties": {"preset": {"type": "string"}}},
        {"required": list(PRESET_PROVIDES)},
        {"required": ["model", "pybamm"], "properties": {"model": {"const": "pybamm"}}},
    ]
    for key in PRESET_PROVIDES:  # optional in the data model (a PyBaMM cell has none of them)
        prop = schema["properties"][key]
        prop.pop("default", None)
        alts = [a for a in prop.pop("anyOf", [prop.copy()]) if a.get("type") != "null"]
        for k in [k for k in prop if k not in ("description", "title")]:
            prop.pop(k)
        prop.update(alts[0] if len(alts) == 1 else {"anyOf": alts})


ECM_ONLY = ("capacity", "ocv", "R0", "R0_activation_energy", "rc_pairs", "kinetics", "diffusion",
            "entropic_coefficient")
"""ECM fields a preset does not pass on to a ``model: pybamm`` cell (its thermal and
collector properties it does)."""

PYBAMM_INSTALL = "install busbarfem[pybamm] (pip install 'busbarfem[pybamm]')"


def import_pybamm():
    """PyBaMM, or ValueError naming the extra that installs it."""
    import os

    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
    try:
        import pybamm
    except ImportError:
        raise ValueError(f"cell model 'pybamm' needs PyBaMM, which is not installed; {PYBAMM_INSTALL}") from None
    return pybamm


def pybamm_model_options(options: dict) -> dict:
    """PyBaMM model options from the case (a list value becomes a tuple, e.g. per electrode)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


class PyBaMMCell(StrictModel):
    """A PyBaMM electrochemical model for every cell (``cell.model: pybamm``).

    Each cell's model is advanced over each thermal step with the current the 3D solve
    gives it and its 3D mean temperature (the PyBaMM model is isothermal at that
    temperature; the 3D heat equation is the thermal model). Needs ``busbarfem[pybamm]``.
    """

    model: Literal["SPM", "SPMe", "DFN"] = Field(
        "SPMe", description="PyBaMM lithium-ion model: SPM, SPMe or DFN.")
    parameter_set: str = Field(
        "Chen2020", description="PyBaMM parameter set (pybamm.parameter_sets, e.g. Chen2020 for the LG M50).")
    options: dict[str, str | list[str]] = Field(
        default_factory=dict, description="PyBaMM model options (e.g. {'SEI': 'reaction limited'}); the "
        "model stays isothermal ('thermal' must be 'isothermal').")
    rtol: float = Field(1e-8, gt=0.0, lt=1e-2, description="Relative tolerance of the cell integrator.")
    atol: float = Field(1e-8, gt=0.0, lt=1e-2, description="Absolute tolerance of the cell integrator.")
    current_perturbation: float = Field(
        1e-3, gt=0.0, le=1.0, description="Current step dI [A] of the per-step linearisation (E, R).")

    @field_validator("parameter_set")
    @classmethod
    def _check_set(cls, v):
        names = sorted(import_pybamm().parameter_sets)
        if v not in names:
            raise ValueError(f"unknown PyBaMM parameter set {v!r}; valid: {', '.join(names)}")
        return v

    @field_validator("options")
    @classmethod
    def _check_options(cls, v):
        pybamm = import_pybamm()
        try:
            opts = pybamm.BatteryModelOptions(pybamm_model_options(v))
        except pybamm.OptionError as exc:
            raise ValueError(f"invalid PyBaMM option: {exc}") from None
        if opts["thermal"] != "isothermal":
            raise ValueError(f"thermal: {opts['thermal']!r} is not allowed; the 3D heat equation is the "
                             "thermal model (the PyBaMM cell is isothermal at its 3D mean temperature)")
        if opts["dimensionality"] != 0 or opts["current collector"] != "uniform":
            raise ValueError("the 3D mesh models the current collectors; keep 'dimensionality' 0 and "
                             "'current collector' 'uniform'")
        return v

    def pybamm_options(self) -> dict:
        """The options as PyBaMM takes them (lists as tuples)."""
        return pybamm_model_options(self.options)

    def nominal_capacity(self) -> float:
        """The parameter set's nominal capacity [Ah]."""
        return float(import_pybamm().ParameterValues(self.parameter_set)["Nominal cell capacity [A.h]"])


class CellModel(StrictModel):
    """Equivalent-circuit cell: OCV(SOC, T), R0(SOC, T), RC pairs, capacity, properties.

    ``OCV(SOC, T) = OCV_ref(SOC) + (T - T_ref) dU/dT(SOC)``;
    ``R0(SOC, T) = R0_ref(SOC) exp(Ea/R_gas (1/T - 1/T_ref))``.
    """

    model_config = ConfigDict(json_schema_extra=_cell_json_schema)

    model: Literal["ecm", "pybamm"] = Field(
        "ecm", description="Cell model: 'ecm' (this equivalent circuit) or 'pybamm' (a PyBaMM "
        "electrochemical model per cell, section 'pybamm', 3D only; needs PyBaMM, the pybamm extra).")
    pybamm: PyBaMMCell | None = Field(
        None, description="The PyBaMM model, parameter set and options (cell.model: pybamm).")
    preset: str | None = Field(
        None, description="Bundled parameter set to start from (e.g. 'LG_M50'), or a cell "
        "file path ending in .yaml (relative to the case file; e.g. written by `busbarfem "
        "fit-ecm`); fields given alongside override it.")
    capacity: Annotated[float, Field(gt=0.0)] | None = Field(
        None, description="Capacity Q [Ah] (1C = Q amperes); required for an ECM (or from a preset); "
        "a PyBaMM cell defaults to its parameter set's nominal capacity.")
    ocv: SocTable | None = Field(None, description="Open-circuit voltage at T_ref [[soc, V], ...] (ECM).")
    entropic_coefficient: SocTable = Field(
        default_factory=lambda: [(0.0, 0.0), (1.0, 0.0)],
        description="Entropic coefficient dU/dT [[soc, V/K], ...].")
    R0: float | SocTable | None = Field(
        None, description="Series resistance at T_ref [ohm]: a number or [[soc, ohm], ...] (ECM).")
    R0_activation_energy: float = Field(
        0.0, ge=0.0, description="Arrhenius activation energy of R0 [J/mol] (0: no T effect).")
    T_ref: float = Field(298.15, gt=0.0, description="Reference temperature of the data [K].")
    rc_pairs: list[RCPair] = Field(
        default_factory=list, description="RC pairs (any number): R [ohm] and tau [s].")
    kinetics: Kinetics | None = Field(
        None, description="Optional Butler-Volmer (asinh) charge-transfer overpotential in series "
        "with R0 (None: none; R0 and the RC pairs alone).")
    diffusion: Diffusion | None = Field(
        None, description="Optional solid-diffusion lag: the OCV at a surface SOC trailing the "
        "bulk SOC by a first-order lag of the current (None: OCV at the bulk SOC).")
    initial_soc: float = Field(1.0, ge=0.0, le=1.0, description="Initial state of charge [-].")
    sigma_pos: float | Vector3 = Field(
        1.0e6, description="Effective positive-collector conductivity in the cell volume "
        "[S/m]: a number or [sx, sy, sz].")
    sigma_neg: float | Vector3 = Field(
        1.0e6, description="Effective negative-collector conductivity in the cell volume "
        "[S/m]: a number or [sx, sy, sz].")
    alpha_pos: float = Field(
        0.0, ge=0.0, le=0.1, description="Temperature coefficient of sigma_pos [1/K]: sigma_pos(T) = "
        "sigma_pos / (1 + alpha_pos (T - T_ref)); aluminium foil ~0.0043 (0: constant).")
    alpha_neg: float = Field(
        0.0, ge=0.0, le=0.1, description="Temperature coefficient of sigma_neg [1/K] (copper foil ~0.0039; "
        "0: constant).")
    k: float | Vector3 = Field(
        1.0, description="Thermal conductivity [W/m/K]: a number or [kx, ky, kz].")
    rho: float = Field(2800.0, gt=0.0, description="Density [kg/m^3].")
    cp: float = Field(1100.0, gt=0.0, description="Specific heat capacity [J/kg/K].")
    volume: float | None = Field(
        None, gt=0.0, description="Cell volume [m^3], for the Python lumped API only (3D and "
        "`run --lumped` take the cell body of geometry.module).")
    surface_area: float | None = Field(
        None, gt=0.0, description="Cooled surface area [m^2], for the Python lumped "
        "API only (3D and `run --lumped` take the cell body of geometry.module).")
    variation: CellVariation | None = Field(
        None, description="Cell-to-cell spread of capacity and R0.")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or data.get("preset") is None:
            return data
        preset = load_preset(str(data["preset"]), (info.context or {}).get("case_dir"))
        merged = dict(preset.get("cell", {}))
        if data.get("model") == "pybamm":  # a PyBaMM cell takes only thermal/collector values
            merged = {k: v for k, v in merged.items() if k not in ECM_ONLY}
        merged.update(data)
        name = str(data["preset"])
        case_dir = (info.context or {}).get("case_dir")
        if name.endswith((".yaml", ".yml")) and case_dir is not None:
            merged["preset"] = str((Path(case_dir) / name).resolve())  # for preset_sources
        return merged

    @model_validator(mode="after")
    def _check_model(self):
        if self.model == "ecm":
            missing = [k for k in PRESET_PROVIDES if getattr(self, k) is None]
            if missing:
                raise ValueError(f"required key(s) missing: {', '.join(missing)} (an ECM cell needs "
                                 "capacity, ocv and R0, or a preset; or set model: pybamm)")
            if self.pybamm is not None:
                raise ValueError("a 'pybamm' section needs model: pybamm")
            return self
        if self.pybamm is None:
            raise ValueError("model: pybamm needs a 'pybamm' section, e.g. pybamm: {model: SPMe, "
                             "parameter_set: Chen2020}")
        given = [k for k in ("ocv", "R0", "kinetics", "diffusion") if getattr(self, k) is not None]
        given += [k for k in ("rc_pairs",) if getattr(self, k)]
        if given:
            raise ValueError(f"{', '.join(given)}: ECM parameters do not apply to model: pybamm (its "
                             "electrochemistry comes from cell.pybamm)")
        if self.variation is not None:
            raise ValueError("variation: per-cell spread is not supported for model: pybamm")
        if self.capacity is None:
            self.__dict__["capacity"] = self.pybamm.nominal_capacity()
        return self

    @field_validator("model")
    @classmethod
    def _check_pybamm_installed(cls, v):
        if v == "pybamm":
            import_pybamm()
        return v

    @field_validator("ocv")
    @classmethod
    def _check_ocv(cls, v):
        if v is None:
            return v
        return check_soc_table(v, "ocv [V]", positive=True, increasing=True)

    @field_validator("entropic_coefficient")
    @classmethod
    def _check_ent(cls, v):
        return check_soc_table(v, "entropic_coefficient [V/K]")

    @field_validator("R0")
    @classmethod
    def _check_r0(cls, v):
        return v if v is None else _positive_scalar_or_table(v, "R0 [ohm]")

    @field_validator("sigma_pos", "sigma_neg", "k")
    @classmethod
    def _check_positive_tensor(cls, v, info):
        vals = [v] if isinstance(v, (int, float)) else list(v)
        if any(x <= 0.0 for x in vals):
            raise ValueError(f"{info.field_name}: every component must be > 0, got {v}")
        return v

    def preset_sources(self) -> list[dict]:
        """The ``sources`` list of the preset or cell file (empty when none is used)."""
        return list(load_preset(self.preset).get("sources", [])) if self.preset else []
