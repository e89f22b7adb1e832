"""The case file as pydantic models: the single source of truth for every input key.

A case file (YAML) has these top-level sections, each mirrored by one model here or in a
sibling module: ``materials`` (:class:`Material`), ``geometry`` and ``mesh``
(:mod:`busbarfem.case.geometry`), ``cell`` (:mod:`busbarfem.case.cells`), ``load``
(:mod:`busbarfem.case.loads`), ``cooling`` (:mod:`busbarfem.case.cooling`), ``thermal`` (:class:`Thermal`), ``solver``
(:class:`SolverSettings`), ``output`` (:class:`OutputSettings`). SI units throughout.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, PrivateAttr, field_validator, model_validator

from busbarfem.case.abuse import Abuse
from busbarfem.case.base import StrictModel
from busbarfem.case.cells import CellModel
from busbarfem.case.cooling import Cooling
from busbarfem.case.geometry import Geometry, MeshOptions
from busbarfem.case.loads import Load

Vector3 = tuple[float, float, float]


class Material(StrictModel):
    """A solid: ``sigma(T) = sigma_ref / (1 + alpha (T - T_ref))`` plus thermal properties."""

    sigma_ref: float = Field(ge=0, description="Electrical conductivity at T_ref [S/m]; 0 = insulator.")
    alpha: float = Field(0.0, ge=0, description="Temperature coefficient of resistivity [1/K].")
    T_ref: float = Field(293.15, gt=0, description="Reference temperature of sigma_ref [K].")
    k: float | Vector3 = Field(description="Thermal conductivity [W/m/K]; scalar or (kx, ky, kz).")
    rho: float = Field(gt=0, description="Density [kg/m^3].")
    cp: float = Field(gt=0, description="Specific heat capacity [J/kg/K].")
    source: str | None = Field(None, description="Where the numbers come from (citation).")

    @field_validator("k")
    @classmethod
    def _positive_k(cls, v):
        vals = v if isinstance(v, tuple) else (v,)
        if any(not (x > 0) for x in vals):
            raise ValueError("thermal conductivity must be > 0")
        return v


class _BoundarySelection(StrictModel):
    """The facets a thermal boundary condition acts on: ``regions`` minus ``exclude``."""

    exclude: list[str] = Field(default_factory=list, description="Surface or volume names whose facets are "
                               "taken out of 'regions' (e.g. regions exterior, exclude terminal_pos and "
                               "terminal_neg: all faces but the terminals).")


class ConvectionBC(_BoundarySelection):
    """Convective cooling ``-k dT/dn = h (T - T_amb)`` on the listed surfaces."""

    type: Literal["convection"]
    regions: list[str] = Field(min_length=1, description="Surface names, volume names (their exterior faces) or 'exterior'.")
    h: float = Field(gt=0, description="Heat transfer coefficient [W/m^2/K].")
    T_amb: float | None = Field(None, gt=0, description="Ambient temperature [K]; default thermal.ambient_temperature.")


class TemperatureBC(_BoundarySelection):
    """Fixed temperature (e.g. a cold plate) on the listed surfaces."""

    type: Literal["temperature"]
    regions: list[str] = Field(min_length=1, description="Surface names, volume names or 'exterior'.")
    T: float = Field(gt=0, description="Prescribed temperature [K].")


class HeatFluxBC(_BoundarySelection):
    """Prescribed heat flux into the solid on the listed surfaces."""

    type: Literal["heat_flux"]
    regions: list[str] = Field(min_length=1, description="Surface names, volume names or 'exterior'.")
    flux: float = Field(description="Heat flux into the body [W/m^2] (negative = extraction).")


class RadiationBC(_BoundarySelection):
    """Grey-body radiation ``eps sigma_SB (T^4 - T_amb^4)`` (linearised about the last iterate)."""

    type: Literal["radiation"]
    regions: list[str] = Field(min_length=1, description="Surface names, volume names or 'exterior'.")
    emissivity: float = Field(gt=0, le=1, description="Surface emissivity [-].")
    T_amb: float | None = Field(None, gt=0, description="Surroundings temperature [K]; default thermal.ambient_temperature.")


ThermalBC = Annotated[
    Union[ConvectionBC, TemperatureBC, HeatFluxBC, RadiationBC], Field(discriminator="type")
]


class Thermal(StrictModel):
    """Heat equation settings: initial state and boundary conditions.

    Where two boundary conditions list the same facet, the later one in the list wins;
    facets named by no condition are adiabatic.
    """

    initial_temperature: float = Field(298.15, gt=0, description="Initial (and steady-state first guess) temperature [K].")
    ambient_temperature: float = Field(298.15, gt=0, description="Default ambient temperature for convection/radiation [K].")
    boundaries: list[ThermalBC] = Field(default_factory=list, description="Thermal boundary conditions, applied in order.")

    def ambient_of(self, bc) -> float | None:
        """The ambient temperature a convection/radiation condition uses [K]: its own
        ``T_amb`` or ``ambient_temperature`` (None for conditions without one). The one
        place this default is resolved (3D set-up, steady bounds, ``--lumped``)."""
        if not hasattr(bc, "T_amb"):
            return None
        return bc.T_amb if bc.T_amb is not None else self.ambient_temperature


class Picard(StrictModel):
    """Fixed-point coupling of sigma(T) (and cell R0(T)) with the temperature."""

    tolerance: float = Field(1e-6, gt=0, description="Stop when max|T_new - T_old| <= tolerance * (1 K + max temperature rise) [-].")
    max_iterations: int = Field(60, ge=1, description="Iteration limit; exceeding it is a reported failure.")
    anderson_depth: int = Field(3, ge=0, description="Anderson acceleration depth (0 = plain Picard).")


class ReducedElectrical(StrictModel):
    """Reduced electrical step of module cases (MSMD cells): a cell-port basis, rebuilt on demand."""

    enabled: bool = Field(False, description="Answer the electrical solves of a module from a basis of N + 1 "
                          "fields (V = 1, and a unit EMF per cell) computed at one operator; exact while sigma(T) "
                          "and the cells' R0 are unchanged, a Galerkin projection on the basis otherwise "
                          "(docs/performance.md). Needs cell bodies.")
    tol: float = Field(1e-7, gt=0, lt=1, description="Rebuild the basis when the true relative residual "
                       "||b - A phi|| / ||b|| of a reduced solve exceeds this [-].")
    coefficient_tol: float | None = Field(None, gt=0, description="Also rebuild when an operator coefficient "
                                          "(sigma per field, the cells' g = 1/(R0 Vol), contact conductances) moved "
                                          "by more than this fraction of its largest value since the basis was built "
                                          "[-]; null (default): the residual check alone decides.")


class ElectricalSettings(StrictModel):
    """Options of the electrical solve."""

    reduced: ReducedElectrical = Field(default_factory=ReducedElectrical)


class SolverSettings(StrictModel):
    """What to solve and how: steady state or a transient with operator splitting."""

    analysis: Literal["steady", "transient"] = Field("steady", description="Steady state (Picard on sigma(T)) or transient.")
    t_end: float | None = Field(None, gt=0, description="End time of a transient [s].")
    dt: float = Field(1.0, gt=0, description="(Initial) thermal time step [s].")
    dt_min: float = Field(1e-3, gt=0, description="Smallest time step the adaptive stepper may take [s].")
    dt_max: float | None = Field(None, gt=0, description="Largest time step [s]; default: dt.")
    adaptive: bool = Field(False, description="Grow/cut the time step from the temperature and SOC change per step.")
    max_temperature_change: float = Field(2.0, gt=0, description="Adaptive target: max temperature change per step [K].")
    event_tolerance: float = Field(0.5, gt=0, description="Load events (voltage, SOC, current limits) are located to within this time [s].")
    picard: Picard = Field(default_factory=Picard)
    coupled_iterations: bool = Field(False, description="Transient: Picard-iterate sigma(T) within each step (else explicit in T^n).")
    electrical_solver: Literal["auto", "lu", "gamg"] = Field("auto", description="Electrical linear solver: direct LU (MUMPS), CG+GAMG, or auto by size.")
    electrical: ElectricalSettings = Field(default_factory=ElectricalSettings)
    thermal_solver: Literal["auto", "lu", "gamg"] = Field("auto", description="Thermal linear solver.")
    rtol: float = Field(1e-10, gt=0, lt=1, description="Relative tolerance of iterative linear solves [-].")
    temperature_limit: float | None = Field(None, gt=0, description="Stop when the maximum temperature exceeds this [K].")
    runaway_temperature: float = Field(1273.15, gt=0, description="Temperature above which growth is declared thermal runaway [K].")


class OutputSettings(StrictModel):
    """What is written to the output folder."""

    every: int = Field(1, ge=1, description="Write fields every N time steps (the last step is always written).")
    report: bool = Field(True, description="Write report.md/report.html at the end of the run.")


class Case(StrictModel):
    """A complete busbarfem case file."""

    name: str = Field("case", description="Case name, used in reports and as the default output folder "
                      "under results/: a plain folder name (no path separators, '..' or absolute path).")
    description: str = Field("", description="Free text shown in the report.")
    allow_external_paths: bool = Field(False, description="Allow data files outside the case file's folder "
                                       "(absolute paths or '..').")
    materials: dict[str, Material] = Field(default_factory=dict, description="Extra or overriding materials by name.")
    conductivity_factors: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="Scale the electrical conductivity of named conductor regions "
        "of the mesh (e.g. weld_3: 0.1 for a poor weld, 1.0e-6 for an open one); heat conduction is "
        "unchanged. Used by 'busbarfem faults'.")
    geometry: Geometry
    mesh: MeshOptions = Field(default_factory=MeshOptions)
    cell: CellModel | None = Field(None, description="Cell model for every cell body (module cases).")
    load: Load
    thermal: Thermal = Field(default_factory=Thermal)
    cooling: Cooling | None = Field(None, description="Cold plates with coolant channels and interface layers (docs/cooling.md), solved by run conjugate with the heat equation.")
    solver: SolverSettings = Field(default_factory=SolverSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)
    abuse: Abuse | None = Field(None, description="Cell thermal runaway: abuse kinetics, triggers, onset and stop criteria (solved by `busbarfem run` in a 3D transient, docs/abuse.md; also by busbarfem.cells.abuse_lumped.run_case_lumped).")
    # where the keys came from (file, lines), set by the loader; not part of the schema
    _source: object | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _contact_materials(self) -> Case:
        """Add the derived layer material of every geometry contact (busbarfem.geometry.contact)."""
        if self.geometry.contacts:
            from busbarfem.geometry.contact import contact_materials
            from busbarfem.materials import resolve_materials

            user = {k: v for k, v in self.materials.items() if not k.startswith("contact.")}
            derived = contact_materials(self.geometry, resolve_materials(user))
            # no validated assignment: it would run this validator again
            self.__dict__["materials"] = {**user, **derived}
        return self

    @field_validator("name")
    @classmethod
    def _plain_folder_name(cls, v: str) -> str:
        # the default output folder is results/<name>: the case file must not pick a place
        # outside results/ (absolute paths, '..', separators)
        bad = (not v.strip() or v in (".", "..") or any(c in v for c in "/\\\0") or v.startswith("~")
               or ":" in v or any(ord(c) < 32 for c in v))
        if bad:
            raise ValueError(f"name {v!r} must be a plain folder name (letters, digits, '_', '-', '.', spaces; "
                             "no '/', '\\', ':', '..', '~' or absolute path), e.g. name: busbar_run1")
        return v
