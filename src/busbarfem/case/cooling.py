"""The ``cooling:`` section of a case file: cold plates, their channels, coolant circuits, interface layers.

A cold plate is a box (``origin``, ``size``, ``thickness``, ``material``) with channels cut along
centre-lines (``path`` points, or a ``serpentine``) of circular or rectangular section. A circuit
feeds one channel, or several channels in parallel (a manifold: the flow splits so that their
pressure drops are equal), from one inlet with a mass or volume flow rate and an inlet
temperature, each constant or a table ``[[t, value], ...]`` in time. Interface layers (gap pads,
thermal interface materials) sit between the cells and a plate, given as a layer (thickness,
conductivity) or a contact conductance. Correlations, validity ranges and sources:
docs/cooling.md. SI units.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from busbarfem.case.base import StrictModel

Vector3 = tuple[float, float, float]
TimeTable = list[tuple[float, float]]
CoolantName = Literal["water", "ethylene_glycol_50", "air", "silicone_oil"]


def _check_table(v, what: str):
    if isinstance(v, list):
        if len(v) < 1:
            raise ValueError(f"{what}: a table needs at least one row [t, value]")
        ts = [r[0] for r in v]
        if any(b <= a for a, b in zip(ts, ts[1:])):
            raise ValueError(f"{what}: table times must increase, e.g. [[0, 1.0e-4], [600, 2.0e-4]]")
        if any(not (r[1] > 0) for r in v):
            raise ValueError(f"{what}: table values must be > 0")
    elif not (v > 0):
        raise ValueError(f"{what} must be > 0")
    return v


class Serpentine(StrictModel):
    """A serpentine centre-line: ``passes`` straight runs joined by U-turns."""

    start: Vector3 = Field(description="First point (inlet) [m].")
    run_length: float = Field(gt=0, description="Length of each straight run [m].")
    pitch: float = Field(gt=0, description="Distance between neighbouring runs [m].")
    passes: int = Field(ge=1, le=200, description="Number of straight runs.")
    along: Literal["x", "y", "-x", "-y"] = Field("x", description="Direction of the first run.")
    across: Literal["x", "y", "-x", "-y"] = Field("y", description="Direction in which the runs step.")

    def points(self) -> list[Vector3]:
        """The centre-line points."""
        vec = {"x": (1.0, 0.0, 0.0), "-x": (-1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "-y": (0.0, -1.0, 0.0)}
        a, c = vec[self.along], vec[self.across]
        pts = [tuple(self.start)]
        p = list(self.start)
        for i in range(self.passes):
            s = 1 if i % 2 == 0 else -1
            p = [p[j] + s * a[j] * self.run_length for j in range(3)]
            pts.append(tuple(p))
            if i < self.passes - 1:
                p = [p[j] + c[j] * self.pitch for j in range(3)]
                pts.append(tuple(p))
        return pts

    @model_validator(mode="after")
    def _perpendicular(self):
        if self.along.strip("-") == self.across.strip("-"):
            raise ValueError(f"serpentine: across ({self.across}) must be perpendicular to along ({self.along})")
        return self


class CoolantChannel(StrictModel):
    """One channel of a cold plate."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="Channel name (letters, digits, '_').")
    path: list[Vector3] | None = Field(None, min_length=2, description="Centre-line points, inlet first [m].")
    serpentine: Serpentine | None = Field(None, description="A serpentine centre-line instead of path.")
    shape: Literal["circular", "rectangular"] = Field("circular", description="Cross-section shape.")
    diameter: float | None = Field(None, gt=0, description="Circular section diameter [m].")
    width: float | None = Field(None, gt=0, description="Rectangular section width, in the plate plane [m].")
    height: float | None = Field(None, gt=0, description="Rectangular section height, along z [m].")
    segments_per_run: int = Field(4, ge=1, le=200, description="1D segments per straight run of the centre-line.")
    bend_loss: float = Field(0.0, ge=0, description="Loss coefficient K at each corner (a U-turn has two) [-].")
    roughness: float = Field(0.0, ge=0, description="Absolute wall roughness [m].")
    development: Literal["fully_developed", "developing"] = Field(
        "fully_developed", description="Laminar Nusselt number: fully developed, or Hausen's thermal entry.")
    wall_condition: Literal["temperature", "flux"] = Field(
        "temperature", description="Laminar fully developed Nu for uniform wall temperature (3.66) or flux (4.36).")
    friction: Literal["haaland", "colebrook"] = Field("haaland", description="Turbulent friction factor.")
    h: float | None = Field(None, gt=0, description="Heat transfer coefficient override [W/m^2/K].")

    @model_validator(mode="after")
    def _geometry(self):
        if (self.path is None) == (self.serpentine is None):
            raise ValueError(f"channel {self.name!r}: give exactly one of path or serpentine")
        if self.shape == "circular" and (self.diameter is None or self.width or self.height):
            raise ValueError(f"channel {self.name!r}: a circular channel needs diameter (and no width/height)")
        if self.shape == "rectangular" and (self.width is None or self.height is None or self.diameter):
            raise ValueError(f"channel {self.name!r}: a rectangular channel needs width and height (and no diameter)")
        pts = self.points()
        if any(math.dist(a, b) <= 0 for a, b in zip(pts, pts[1:])):
            raise ValueError(f"channel {self.name!r}: consecutive path points must differ")
        return self

    def points(self) -> list[Vector3]:
        """The centre-line points (from path or serpentine)."""
        return list(self.path) if self.path is not None else self.serpentine.points()


class ColdPlate(StrictModel):
    """A cold plate: a box with coolant channels cut out of it."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="Region name of the plate volume.")
    material: str = Field(description="Plate material (library or materials: name).")
    origin: Vector3 = Field(description="Lower corner (x, y, z) [m].")
    size: tuple[float, float] = Field(description="Footprint (lx, ly) [m].")
    thickness: float = Field(gt=0, description="Thickness along z [m].")
    channels: list[CoolantChannel] = Field(min_length=1, description="The channels.")

    @field_validator("size")
    @classmethod
    def _positive(cls, v):
        if any(not (x > 0) for x in v):
            raise ValueError("plate size (lx, ly) must be > 0")
        return v

    @model_validator(mode="after")
    def _unique_channels(self):
        names = [c.name for c in self.channels]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"plate {self.name!r}: channel names used twice: {', '.join(dup)}")
        return self


class CoolantInlet(StrictModel):
    """Flow and temperature at a circuit's inlet (each constant or a [[t, value], ...] table)."""

    temperature: float | TimeTable = Field(description="Inlet temperature [K].")
    mass_flow: float | TimeTable | None = Field(None, description="Mass flow rate [kg/s].")
    volume_flow: float | TimeTable | None = Field(None, description="Volume flow rate at the inlet temperature [m^3/s].")

    @model_validator(mode="after")
    def _one_flow(self):
        if (self.mass_flow is None) == (self.volume_flow is None):
            raise ValueError("give exactly one of mass_flow [kg/s] or volume_flow [m^3/s]")
        _check_table(self.temperature, "temperature")
        _check_table(self.mass_flow if self.mass_flow is not None else self.volume_flow,
                     "mass_flow" if self.mass_flow is not None else "volume_flow")
        return self


class CoolantCircuit(StrictModel):
    """One inlet feeding one channel, or parallel channels (a manifold), of one plate."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="Circuit name (output keys).")
    coolant: CoolantName = Field(description="Coolant from the library (docs/cooling.md).")
    plate: str = Field(description="Name of the cold plate.")
    channels: list[str] = Field(min_length=1, description="Channels fed in parallel from this inlet.")
    inlet: CoolantInlet


class InterfaceLayer(StrictModel):
    """A thermal interface material or gap pad between the cells and a plate.

    Either a layer (``thickness``, ``conductivity``) or a ``conductance``; meshed as a layer of
    ``model_thickness`` whose conductivity gives the same conductance per area.
    """

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="Region name of the layer.")
    plate: str = Field(description="The cold plate it lies on (covers the plate's top face).")
    thickness: float | None = Field(None, gt=0, description="Layer thickness [m].")
    conductivity: float | None = Field(None, gt=0, description="Layer conductivity [W/m/K].")
    conductance: float | None = Field(None, gt=0, description="Contact conductance instead of a layer [W/m^2/K].")
    model_thickness: float | None = Field(None, gt=0, description="Thickness of the meshed layer [m]; "
                                          "default: the layer thickness (or 0.5 mm for a conductance).")
    rho: float = Field(2500.0, gt=0, description="Density [kg/m^3] (default: a filled-silicone gap pad).")
    cp: float = Field(1000.0, gt=0, description="Specific heat [J/kg/K] (default: a filled-silicone gap pad).")

    @model_validator(mode="after")
    def _layer_or_conductance(self):
        layer = self.thickness is not None and self.conductivity is not None
        if layer == (self.conductance is not None) or (not layer and (self.thickness or self.conductivity)):
            raise ValueError(f"interface {self.name!r}: give thickness and conductivity, or conductance")
        return self


class Cooling(StrictModel):
    """Cold plates with coolant channels, the circuits that feed them and interface layers."""

    plates: list[ColdPlate] = Field(min_length=1, description="The cold plates.")
    circuits: list[CoolantCircuit] = Field(min_length=1, description="Coolant circuits (one inlet each).")
    interfaces: list[InterfaceLayer] = Field(default_factory=list, description="Gap pads / TIMs on the plates.")
    tolerance: float = Field(1e-7, gt=0, description="Picard tolerance of the coolant coupling: stop when the "
                             "coolant temperatures change by <= tolerance (1 K + their spread) [-].")
    max_iterations: int = Field(100, ge=1, description="Picard iteration limit per thermal step.")

    @model_validator(mode="after")
    def _unique_plates(self):
        names = [p.name for p in self.plates]
        if len(set(names)) != len(names):
            raise ValueError("cooling.plates: plate names must be unique")
        return self

    def reference_errors(self) -> list[tuple[str, str]]:
        """(key relative to ``cooling``, message) for every circuit/interface naming a missing plate or channel
        or a channel fed twice (checked by the loader so the error points at the key's line)."""
        plates = {p.name: p for p in self.plates}
        used: dict[tuple[str, str], str] = {}
        out = []
        for i, c in enumerate(self.circuits):
            if c.plate not in plates:
                out.append((f"circuits.{i}.plate", f"{c.plate!r} is not a plate; valid: {', '.join(plates)}"))
                continue
            names = [ch.name for ch in plates[c.plate].channels]
            for j, ch in enumerate(c.channels):
                if ch not in names:
                    out.append((f"circuits.{i}.channels.{j}",
                                f"{ch!r} is not a channel of plate {c.plate!r}; valid: {', '.join(names)}"))
                elif (c.plate, ch) in used:
                    out.append((f"circuits.{i}.channels.{j}",
                                f"channel {ch!r} is already fed by circuit {used[(c.plate, ch)]!r}"))
                else:
                    used[(c.plate, ch)] = c.name
        for i, layer in enumerate(self.interfaces):
            if layer.plate not in plates:
                out.append((f"interfaces.{i}.plate", f"{layer.plate!r} is not a plate; valid: {', '.join(plates)}"))
        return out
