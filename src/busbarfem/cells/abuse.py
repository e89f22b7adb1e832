r"""Cell thermal-abuse kinetics and their stiff integrator, vectorised over N points.

A point is a lumped cell or a mesh node; every array has one row per point. Three kinetics
models share one interface (:class:`Kinetics`): per point a reaction state ``y`` (n x k), the
rates ``dy/dt`` and the volumetric heat of each reaction [W/m^3] at temperature ``T``.

* :class:`FourEquation`: Hatchard et al., J. Electrochem. Soc. 148 (2001) A755 and Kim,
  Pesaran, Spotnitz, J. Power Sources 170 (2007) 476 (state ``c_sei, c_ne, t_sei, alpha, c_e``)::

      R_sei = A_sei e^{-Ea_sei/RT} c_sei^m                    dc_sei/dt = -R_sei
      R_ne  = A_ne e^{-t_sei/t_ref} e^{-Ea_ne/RT} c_ne^m      dc_ne/dt = -R_ne, dt_sei/dt = R_ne
      R_pe  = A_pe e^{-Ea_pe/RT} alpha^m1 (1 - alpha)^m2      dalpha/dt = R_pe
      R_e   = A_e e^{-Ea_e/RT} c_e^m                          dc_e/dt = -R_e
      q     = H_sei W_c R_sei + H_ne W_c R_ne + H_pe W_p R_pe + H_e W_e R_e

* :class:`OneEquation` (the lumped Arrhenius model of the commercial tools)::

      dalpha/dt = A e^{-Ea/RT} alpha^m (1 - alpha)^n,   q = H W dalpha/dt

* :class:`TabulatedHeatRelease`: a heat-rate table against temperature or against the time
  since a trigger temperature was first reached, up to a total energy ``E`` [J/m^3]
  (state: released fraction ``e``, and the time since trigger ``tau``)::

      de/dt = q(T or tau) / E * s(e),   s = clip((1 - e) / 1e-3, 0, 1)

The heat each reaction released over a step is taken from its conversion (``H W`` times
the drop of its reactant), so the energy books close exactly: with ``rho cp dT/dt = q + p``
integrated by a linear-invariant-preserving scheme, ``rho cp (T1 - T0) = sum released +
int p dt`` to rounding.

:func:`integrate` advances the stiff system over a given step ``[t, t + dt]`` with sub-steps
and per-point error control: the L-stable second-order Rosenbrock (W-)method with a
third-order error estimate of Shampine and Reichelt, SIAM J. Sci. Comput. 18 (1997) 1 (the
scheme of MATLAB's ode23s; d = 1/(2 + sqrt 2)), with a finite-difference Jacobian per point
(one batched evaluation). The explicit time dependence of the heat source is not put into
the Jacobian (the source is treated as frozen in time within a sub-step; the error control
sees the difference). The temperature is either integrated with the reactions under a heat-source callback
``p(t, T)`` [W/m^3] (lumped cells, the acceptance tests), or held frozen (operator splitting
inside a 3D thermal step: the thermal solver then receives ``released / dt``).

:class:`AbuseContribution` wraps a kinetics model and its per-point state for the 3D coupler:
``advance(t, dt, T)`` returns the mean volumetric heat over the step, the released energy
per reaction, the rates the step-size controller needs, and onset events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from typing import Callable

import numpy as np

R_GAS = 8.314462618  # J/mol/K
SIGMA_SB = 5.670374419e-8  # W/m^2/K^4

HeatSource = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``p(t, T, idx) -> W/m^3``: every non-reaction heat (losses negative) of the points ``idx``
at their times ``t`` and temperatures ``T`` (three arrays of the same length)."""


# ====================================================================== parameter sets

def available_sets() -> list[str]:
    """Names of the bundled abuse-kinetics parameter files (``data/abuse/*.yaml``)."""
    folder = resources.files("busbarfem").joinpath("data", "abuse")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


@lru_cache(maxsize=8)
def _read_set(name: str) -> dict:
    # the case files' YAML 1.2 core-schema reader: PyYAML's own (YAML 1.1) reads 1.667e15 or
    # 1e5 (an exponent without a sign or without a dot) as a string
    from busbarfem.case.loader import parse_yaml

    folder = resources.files("busbarfem").joinpath("data", "abuse")
    return parse_yaml(folder.joinpath(f"{name}.yaml").read_text(encoding="utf-8"))[0]


def load_set(name: str) -> dict:
    """The bundled parameter file ``name`` as a dict (``model``, ``parameters``, ``sources``).

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    names = available_sets()
    if name not in names:
        raise ValueError(f"unknown abuse kinetics set {name!r}; valid sets: {', '.join(names)}")
    return _read_set(name)


def kinetics_from_set(name: str) -> Kinetics:
    """Build the kinetics model of a bundled set (e.g. ``"Kim2007"``)."""
    data = load_set(name)
    return kinetics_from_dict(data["model"], data["parameters"], name=name)


#: parameter keys whose value is a word, not a number
_WORD_KEYS = frozenset({"against"})


def _check_numbers(value, where: str) -> None:
    """Every leaf of a parameter mapping is a finite real number (tables: lists of them).

    Raises:
        ValueError: naming the dotted key, e.g. ``parameters.sei.A = '1.667e15' is not a number``.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            _check_numbers(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_numbers(item, f"{where}[{i}]")
    elif isinstance(value, str) and where.rsplit(".", 1)[-1] in _WORD_KEYS:
        return
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} = {value!r} is not a number; write a plain number without quotes "
                         "(e.g. 1.667e15, 1e5 or 135080.0)")
    elif not math.isfinite(value):
        raise ValueError(f"{where} = {value!r} is not a finite number")


def kinetics_from_dict(model: str, parameters: dict, name: str = "inline") -> Kinetics:
    """Build a kinetics model from its ``model`` keyword and parameter mapping.

    Raises:
        ValueError: a parameter that is not a finite number (named by its dotted key), a
            missing one, or an unknown model.
    """
    if not isinstance(parameters, dict):
        raise ValueError(f"parameters must be a mapping of names to numbers, got {parameters!r}")
    _check_numbers(parameters, "parameters")
    if model == "four_equation":
        return FourEquation.from_dict(parameters, name=name)
    if model == "one_equation":
        return OneEquation(name=name, **parameters)
    if model == "tabulated":
        return TabulatedHeatRelease(name=name, **parameters)
    raise ValueError(f"unknown abuse model {model!r}; valid: four_equation, one_equation, tabulated")


def _arrhenius(A: float, Ea: float, T: np.ndarray) -> np.ndarray:
    return A * np.exp(-Ea / (R_GAS * T))


def _power(x: np.ndarray, m: float) -> np.ndarray:
    """``max(x, 0)^m`` (1 for m = 0): reactants never drive a rate below zero."""
    if m == 1.0:
        return np.maximum(x, 0.0)
    if m == 0.0:
        return np.ones_like(x)
    return np.maximum(x, 0.0) ** m


# ====================================================================== kinetics models

class Kinetics:
    """Interface of an abuse-kinetics model (see the module docstring).

    Attributes:
        name: parameter set name.
        species: names of the k state components.
        reactions: names of the reactions (columns of the heat arrays).
    """

    def initial_state(self, n: int) -> np.ndarray:
        """Fresh state, shape (n, k)."""
        raise NotImplementedError

    def rates(self, T: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(dy/dt (n, k), heat per reaction (n, n_reactions) [W/m^3])`` at ``T`` [K]."""
        raise NotImplementedError

    def released(self, y0: np.ndarray, y1: np.ndarray) -> np.ndarray:
        """Heat released per reaction between states ``y0`` and ``y1`` [J/m^3], (n, n_r)."""
        raise NotImplementedError

    def remaining(self, y: np.ndarray) -> np.ndarray:
        """Heat still available per reaction [J/m^3], (n, n_r)."""
        raise NotImplementedError

    def total_heat(self, T: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Total reaction heat [W/m^3] per point."""
        return self.rates(T, y)[1].sum(axis=1)


@dataclass(frozen=True)
class FourEquation(Kinetics):
    """Hatchard 2001 / Kim 2007 four-reaction model; SI parameters (H [J/kg], W [kg/m^3])."""

    name: str
    sei: dict
    negative: dict
    positive: dict
    electrolyte: dict
    species: tuple[str, ...] = ("c_sei", "c_ne", "t_sei", "alpha", "c_e")
    reactions: tuple[str, ...] = ("sei", "negative", "positive", "electrolyte")

    @classmethod
    def from_dict(cls, parameters: dict, name: str = "inline") -> FourEquation:
        """From the ``parameters`` mapping of a set file (keys sei/negative/positive/electrolyte)."""
        need = {"sei": ("A", "Ea", "H", "W", "c0"), "negative": ("A", "Ea", "H", "W", "c0", "t_sei0", "t_sei_ref"),
                "positive": ("A", "Ea", "H", "W", "alpha0"), "electrolyte": ("A", "Ea", "H", "W", "c0")}
        parts = {}
        for key, fields in need.items():
            if key not in parameters:
                raise ValueError(f"four_equation parameters need '{key}' (have {sorted(parameters)})")
            if not isinstance(parameters[key], dict):
                raise ValueError(f"four_equation '{key}' must be a mapping of its parameters (A, Ea, H, W, ...)")
            part = {k: float(v) for k, v in parameters[key].items()}
            missing = [f for f in fields if f not in part]
            if missing:
                raise ValueError(f"four_equation '{key}' needs {', '.join(missing)}")
            part.setdefault("m", 1.0)
            part.setdefault("m1", 1.0)
            part.setdefault("m2", 1.0)
            parts[key] = part
        return cls(name=name, **parts)

    def initial_state(self, n: int) -> np.ndarray:
        """``c_sei0, c_ne0, t_sei0, alpha0, c_e0`` on every point."""
        row = [self.sei["c0"], self.negative["c0"], self.negative["t_sei0"], self.positive["alpha0"],
               self.electrolyte["c0"]]
        return np.tile(np.asarray(row, dtype=float), (int(n), 1))

    @property
    def heat_per_conversion(self) -> np.ndarray:
        """``H W`` of each reaction [J/m^3]: the heat of converting all its reactant."""
        return np.array([p["H"] * p["W"] for p in (self.sei, self.negative, self.positive, self.electrolyte)])

    @cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # frequency factors, Ea/R and H W as arrays, once (rates() runs per sub-step)
        parts = (self.sei, self.negative, self.positive, self.electrolyte)
        return (np.array([p["A"] for p in parts]), np.array([p["Ea"] for p in parts]) / R_GAS,
                self.heat_per_conversion)

    def rates(self, T, y):
        """Reaction rates and heats (module docstring)."""
        A, Ea_R, hw = self._arrays
        T = np.asarray(T, dtype=float)
        k = A * np.exp(-Ea_R / T[:, None])  # (n, 4) Arrhenius factors
        ne, pe = self.negative, self.positive
        a = np.clip(y[:, 3], 0.0, 1.0)
        conc = np.empty_like(k)
        conc[:, 0] = _power(y[:, 0], self.sei["m"])
        conc[:, 1] = _power(y[:, 1], ne["m"]) * np.exp(-y[:, 2] / ne["t_sei_ref"])
        conc[:, 2] = _power(a, pe["m1"]) * _power(1.0 - a, pe["m2"])
        conc[:, 3] = _power(y[:, 4], self.electrolyte["m"])
        r = k * conc
        dydt = np.empty((r.shape[0], 5))
        dydt[:, 0] = -r[:, 0]
        dydt[:, 1] = -r[:, 1]
        dydt[:, 2] = r[:, 1]
        dydt[:, 3] = r[:, 2]
        dydt[:, 4] = -r[:, 3]
        return dydt, r * hw

    def released(self, y0, y1):
        """``H W`` times the conversion of each reaction between the two states."""
        conv = np.stack([y0[:, 0] - y1[:, 0], y0[:, 1] - y1[:, 1], y1[:, 3] - y0[:, 3],
                         y0[:, 4] - y1[:, 4]], axis=1)
        return conv * self.heat_per_conversion

    def remaining(self, y):
        """``H W`` times the reactant left: c_sei, c_ne, 1 - alpha, c_e."""
        left = np.stack([np.maximum(y[:, 0], 0), np.maximum(y[:, 1], 0), np.maximum(1.0 - y[:, 3], 0),
                         np.maximum(y[:, 4], 0)], axis=1)
        return left * self.heat_per_conversion


@dataclass(frozen=True)
class OneEquation(Kinetics):
    """``dalpha/dt = A exp(-Ea/RT) alpha^m (1-alpha)^n``, heat ``H W dalpha/dt``.

    Args:
        A: frequency factor [1/s]. Ea: activation energy [J/mol]. H: reaction heat [J/kg].
        W: specific content [kg/m^3]. m, n: exponents. alpha0: initial conversion (> 0 if m > 0).
    """

    name: str
    A: float
    Ea: float
    H: float
    W: float
    m: float = 0.0
    n: float = 1.0
    alpha0: float = 0.0
    species: tuple[str, ...] = ("alpha",)
    reactions: tuple[str, ...] = ("lumped",)

    def initial_state(self, n: int) -> np.ndarray:
        """``alpha0`` on every point."""
        return np.full((int(n), 1), float(self.alpha0))

    def rates(self, T, y):
        """Rate and heat of the single reaction."""
        a = np.clip(y[:, 0], 0.0, 1.0)
        r = _arrhenius(self.A, self.Ea, np.asarray(T, dtype=float)) * _power(a, self.m) * _power(1.0 - a, self.n)
        return r[:, None], (self.H * self.W * r)[:, None]

    def released(self, y0, y1):
        """``H W (alpha1 - alpha0)``."""
        return (self.H * self.W * (y1[:, 0] - y0[:, 0]))[:, None]

    def remaining(self, y):
        """``H W (1 - alpha)``."""
        return (self.H * self.W * np.maximum(1.0 - y[:, 0], 0.0))[:, None]


@dataclass(frozen=True)
class TabulatedHeatRelease(Kinetics):
    """Heat rate from a table until a total energy is released.

    Args:
        table: rows ``[x, q]``, q in W/m^3, x a temperature [K] (``against="temperature"``)
            or the time since trigger [s] (``against="time"``); linear, constant beyond the ends.
        total_energy: energy released in all [J/m^3].
        against: ``"temperature"`` or ``"time"``.
        trigger_temperature: for ``against="time"``: the clock starts when T first reaches it [K].
    """

    name: str
    table: tuple
    total_energy: float
    against: str = "temperature"
    trigger_temperature: float = 0.0
    species: tuple[str, ...] = ("released_fraction", "time_since_trigger")
    reactions: tuple[str, ...] = ("tabulated",)

    def __post_init__(self):
        arr = np.asarray(self.table, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 2 or np.any(np.diff(arr[:, 0]) <= 0):
            raise ValueError("tabulated heat release: table must be >= 2 rows [x, q] with x increasing")
        if self.against not in ("temperature", "time"):
            raise ValueError(f"tabulated heat release: against must be 'temperature' or 'time', got {self.against!r}")
        if not self.total_energy > 0:
            raise ValueError("tabulated heat release: total_energy must be > 0 [J/m^3]")

    def initial_state(self, n: int) -> np.ndarray:
        """Nothing released, clock not started."""
        return np.zeros((int(n), 2))

    def rates(self, T, y):
        """Table heat rate, ramped to zero over the last 0.1 % of the energy."""
        arr = np.asarray(self.table, dtype=float)
        T = np.asarray(T, dtype=float)
        if self.against == "temperature":
            q = np.interp(T, arr[:, 0], arr[:, 1])
            dtau = np.zeros_like(T)
        else:
            started = (y[:, 1] > 0.0) | (T >= self.trigger_temperature)
            dtau = started.astype(float)
            q = np.where(started, np.interp(y[:, 1], arr[:, 0], arr[:, 1]), 0.0)
        q = np.maximum(q, 0.0) * np.clip((1.0 - y[:, 0]) / 1e-3, 0.0, 1.0)
        return np.stack([q / self.total_energy, dtau], axis=1), q[:, None]

    def released(self, y0, y1):
        """``E (e1 - e0)``."""
        return (self.total_energy * (y1[:, 0] - y0[:, 0]))[:, None]

    def remaining(self, y):
        """``E (1 - e)``."""
        return (self.total_energy * np.maximum(1.0 - y[:, 0], 0.0))[:, None]


# ====================================================================== stiff integrator

_D = 1.0 / (2.0 + np.sqrt(2.0))  # Rosenbrock 2(3) of Shampine & Reichelt (MATLAB ode23s)
_E32 = 6.0 + np.sqrt(2.0)


@dataclass
class StepResult:
    """What :func:`integrate` returns for one step ``[t, t + dt]``.

    Attributes:
        y: new reaction state (n, k).
        T: new temperature (n,) [K] (unchanged when frozen).
        released: heat released per reaction over the step (n, n_r) [J/m^3].
        external: integral of the heat source ``p`` over the step (n,) [J/m^3] (0 when frozen).
        reaction_heating_rate: ``q / (rho cp)`` at the end of the step (n,) [K/s].
        heating_rate: ``(q + p) / (rho cp)`` at the end (n,) [K/s] (= reaction part when frozen).
        dt_next: the sub-step size the error control would take next (min over points) [s].
        n_substeps: accepted sub-steps of the point that needed most; n_rejected: rejections.
    """

    y: np.ndarray
    T: np.ndarray
    released: np.ndarray
    external: np.ndarray
    reaction_heating_rate: np.ndarray
    heating_rate: np.ndarray
    dt_next: float
    n_substeps: int
    n_rejected: int


def integrate(kinetics: Kinetics, y: np.ndarray, T, t: float, dt: float, rho_cp,
              source: HeatSource | None = None, frozen: bool = False, rtol: float = 1e-6,
              atol_species: float = 1e-9, atol_T: float = 1e-6, h0=None,
              max_substeps: int = 200000) -> StepResult:
    """Advance reactions (and temperature) of n points from ``t`` to ``t + dt``.

    Args:
        kinetics: the model.
        y: state (n, k) at ``t``.
        T: temperatures (n,) [K] at ``t``.
        t, dt: the step.
        rho_cp: volumetric heat capacity (n,) or scalar [J/m^3/K].
        source: ``p(t, T)`` [W/m^3] of every other heat (heater, losses, conduction); None: 0.
            It is evaluated at the sub-step stage times with the stage temperatures.
        frozen: hold T fixed over the step (operator splitting; ``source`` is ignored).
        rtol: relative tolerance; atol_species, atol_T: absolute tolerances [-], [K].
        h0: first sub-step per point (scalar or (n,)); default ``dt``.
        max_substeps: safety limit on sub-steps of any point.

    Returns:
        A :class:`StepResult`.

    Raises:
        RuntimeError: a point needed more than ``max_substeps`` sub-steps or its step
            collapsed below 1e-14 dt (the message gives the point and time).
    """
    y = np.array(y, dtype=float, copy=True)
    n, k = y.shape
    T = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()
    rho_cp = np.broadcast_to(np.asarray(rho_cp, dtype=float), (n,)).copy()
    y_start = y.copy()
    nz = k + 2  # species, T, external-energy quadrature
    z = np.concatenate([y, T[:, None], np.zeros((n, 1))], axis=1)
    atol = np.concatenate([np.full(k, atol_species), [atol_T], [np.inf]])
    t_end = t + dt
    tp = np.full(n, float(t))
    h = np.broadcast_to(np.asarray(dt if h0 is None else h0, dtype=float), (n,)).copy()
    h = np.clip(h, 1e-12 * max(dt, 1e-30), dt)
    steps = np.zeros(n, dtype=int)
    rejected = 0

    def rhs(ts, zz, idx):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            # a too-long trial step can leave the physical range (T <= 0, huge t_sei):
            # its non-finite stage values reject the step instead of raising
            return _rhs(ts, zz, idx)

    def _rhs(ts, zz, idx):
        yy, TT = zz[:, :k], zz[:, k]
        dydt, heat = kinetics.rates(TT, yy)
        q = heat.sum(axis=1)
        out = np.empty_like(zz)
        out[:, :k] = dydt
        ir = idx if rho_cp.size > 1 else np.zeros_like(idx)
        if frozen:
            out[:, k] = 0.0
            out[:, k + 1] = 0.0
        else:
            p = np.zeros_like(TT) if source is None else np.asarray(source(ts, TT, idx), dtype=float)
            out[:, k] = (q + p) / rho_cp[ir]
            out[:, k + 1] = p
        return out

    n_fd = k + (0 if frozen else 1)  # columns with a derivative (the quadrature has none)

    def rhs_and_jacobian(ts, zz, idx):
        # one batched call for f and the n_fd finite-difference columns: the cost is per
        # call, not per row, for the small n of a lumped model
        m = zz.shape[0]
        d = 1e-7 * np.maximum(np.abs(zz[:, :n_fd]), np.where(np.arange(n_fd) < k, 1e-3, 1.0))
        zb = np.repeat(zz[None], n_fd + 1, axis=0)
        for j in range(n_fd):
            zb[j + 1, :, j] += d[:, j]
        fb = rhs(np.tile(ts, n_fd + 1), zb.reshape(-1, nz), np.tile(idx, n_fd + 1)).reshape(n_fd + 1, m, nz)
        f0 = fb[0]
        J = np.zeros((m, nz, nz))
        J[:, :, :n_fd] = np.transpose((fb[1:] - f0[None]) / d.T[:, :, None], (1, 2, 0))
        return f0, J

    eye = np.eye(nz)
    active = tp < t_end - 1e-12 * max(abs(t_end), 1.0)
    while np.any(active):
        idx = np.nonzero(active)[0]
        h_want = h[idx]
        hh = np.minimum(h_want, t_end - tp[idx])
        zz = z[idx]
        ts = tp[idx]
        f0, J = rhs_and_jacobian(ts, zz, idx)
        W = eye[None] - _D * hh[:, None, None] * J
        k1 = np.linalg.solve(W, f0[..., None])[..., 0]
        f1 = rhs(ts + 0.5 * hh, zz + 0.5 * hh[:, None] * k1, idx)
        k2 = np.linalg.solve(W, (f1 - k1)[..., None])[..., 0] + k1
        z_new = zz + hh[:, None] * k2
        f2 = rhs(ts + hh, z_new, idx)
        k3 = np.linalg.solve(W, (f2 - _E32 * (k2 - f1) - 2.0 * (k1 - f0))[..., None])[..., 0]
        err = hh[:, None] / 6.0 * (k1 - 2.0 * k2 + k3)
        scale = atol + rtol * np.maximum(np.abs(zz), np.abs(z_new))
        en = np.max(np.abs(err) / scale, axis=1)
        en = np.where(np.all(np.isfinite(z_new), axis=1), en, np.inf)
        ok = en <= 1.0
        fac = np.where(np.isfinite(en), 0.9 * np.maximum(en, 1e-10) ** (-1.0 / 3.0), 0.2)
        fac = np.clip(fac, 0.2, 5.0)
        acc = idx[ok]
        z[acc] = z_new[ok]
        tp[acc] = ts[ok] + hh[ok]
        steps[acc] += 1
        rejected += int(np.count_nonzero(~ok))
        h_prop = hh * np.where(ok, fac, np.minimum(fac, 0.5))
        # a step cut short to land on t_end says nothing against the step wanted
        h[idx] = np.where(ok & (hh < h_want), np.maximum(h_prop, h_want), h_prop)
        bad = (h[idx] < 1e-14 * max(dt, 1e-30)) | (steps[idx] > max_substeps)
        if np.any(bad):
            i = int(idx[np.nonzero(bad)[0][0]])
            raise RuntimeError(f"abuse kinetics: sub-step collapsed at point {i}, t = {tp[i]:.6g} s "
                               f"(T = {z[i, k]:.1f} K, {steps[i]} sub-steps)")
        active = tp < t_end - 1e-12 * max(abs(t_end), 1.0)
    y_new = z[:, :k]
    T_new = z[:, k] if not frozen else T
    dydt, heat = kinetics.rates(T_new, y_new)
    q = heat.sum(axis=1)
    rate_r = q / rho_cp
    if frozen or source is None:
        rate = rate_r
    else:
        rate = (q + np.asarray(source(np.full(n, t_end), T_new, np.arange(n)), dtype=float)) / rho_cp
    return StepResult(y=y_new.copy(), T=T_new.copy(), released=kinetics.released(y_start, y_new),
                      external=z[:, k + 1].copy(), reaction_heating_rate=rate_r, heating_rate=rate,
                      dt_next=float(np.min(h)), n_substeps=int(steps.max(initial=0)), n_rejected=rejected)


# ====================================================================== 3D contribution

@dataclass
class OnsetCriteria:
    """When a point counts as in runaway.

    Attributes:
        rate: onset when the heating rate first exceeds this [K/s] (default 1 K/s).
        temperature: also report when T first exceeds this [K] (None: not reported).
        basis: ``"reaction"`` (default): the self-heating rate ``q / (rho cp)`` of the
            reactions, so heat conducted in from a neighbour in runaway (or a heater) does not
            count as the cell's own onset; ``"total"``: the whole dT/dt.
    """

    rate: float = 1.0
    temperature: float | None = None
    basis: str = "reaction"

    def __post_init__(self):
        if self.basis not in ("reaction", "total"):
            raise ValueError(f"onset basis must be 'reaction' or 'total', got {self.basis!r}")


@dataclass
class AbuseContribution:
    """Per-point abuse state for a thermal solver: the interface the 3D coupler wires.

    Args:
        kinetics: the model.
        n_points: number of points (cells or mesh nodes).
        rho_cp: volumetric heat capacity per point [J/m^3/K].
        onset: onset criteria.
        rtol: integrator tolerance.

    Attributes:
        y: reaction state (n, k). t: time of the state [s].
        released_total: heat released per point and reaction so far [J/m^3].
        onset_time, threshold_time: per point [s], NaN until reached.
    """

    kinetics: Kinetics
    n_points: int
    rho_cp: np.ndarray
    onset: OnsetCriteria = field(default_factory=OnsetCriteria)
    rtol: float = 1e-6
    y: np.ndarray = field(init=False)
    t: float = field(init=False, default=0.0)
    released_total: np.ndarray = field(init=False)
    onset_time: np.ndarray = field(init=False)
    threshold_time: np.ndarray = field(init=False)
    _rate: np.ndarray = field(init=False)
    _T: np.ndarray | None = field(init=False, default=None)
    _h: np.ndarray | None = field(init=False, default=None)

    def __post_init__(self):
        n = int(self.n_points)
        self.rho_cp = np.broadcast_to(np.asarray(self.rho_cp, dtype=float), (n,)).copy()
        self.y = self.kinetics.initial_state(n)
        self.released_total = np.zeros((n, len(self.kinetics.reactions)))
        self.onset_time = np.full(n, np.nan)
        self.threshold_time = np.full(n, np.nan)
        self._rate = np.zeros(n)

    def advance(self, dt: float, T, source: HeatSource | None = None, frozen: bool = True):
        """Advance from ``self.t`` by ``dt`` at temperatures ``T`` (n,) [K].

        With ``frozen=True`` (operator splitting in a 3D step) T is held over the step; the
        thermal solver then applies ``q`` as its volumetric source. With ``frozen=False`` the
        temperature is integrated with the reactions under ``source`` (lumped use).

        Returns:
            ``(q, result, events)``: ``q = released.sum(1) / dt`` [W/m^3] per point (the mean
            reaction heat over the step); the :class:`StepResult`; and a list of
            ``(point, kind, time)`` events with kind ``"onset"`` or ``"threshold"``, time
            located by linear interpolation of the rate (temperature) within the step.
        """
        T0 = np.broadcast_to(np.asarray(T, dtype=float), (self.n_points,)).copy()
        res = integrate(self.kinetics, self.y, T0, self.t, dt, self.rho_cp, source=source, frozen=frozen,
                        rtol=self.rtol, h0=self._h)
        self._h = np.full(self.n_points, max(res.dt_next, 1e-9))
        events = []
        r0 = self._rate
        r1 = res.reaction_heating_rate if self.onset.basis == "reaction" else res.heating_rate
        new = np.isnan(self.onset_time) & (r1 > self.onset.rate)
        for i in np.nonzero(new)[0]:
            frac = (self.onset.rate - r0[i]) / (r1[i] - r0[i]) if r1[i] > r0[i] and r0[i] < self.onset.rate else 1.0
            self.onset_time[i] = self.t + float(np.clip(frac, 0.0, 1.0)) * dt
            events.append((int(i), "onset", float(self.onset_time[i])))
        if self.onset.temperature is not None:
            Tth = self.onset.temperature
            new = np.isnan(self.threshold_time) & (res.T >= Tth)
            for i in np.nonzero(new)[0]:
                frac = (Tth - T0[i]) / (res.T[i] - T0[i]) if res.T[i] > T0[i] and T0[i] < Tth else 1.0
                self.threshold_time[i] = self.t + float(np.clip(frac, 0.0, 1.0)) * dt
                events.append((int(i), "threshold", float(self.threshold_time[i])))
        self.y = res.y
        self.t += dt
        self._rate = r1
        self.released_total += res.released
        return res.released.sum(axis=1) / dt, res, events

    def suggested_dt(self, max_temperature_change: float = 2.0) -> float:
        """Largest outer step keeping the reaction heating below ``max_temperature_change`` [K]
        at the present rates (inf when nothing reacts)."""
        rate = float(np.max(np.abs(self._rate), initial=0.0))
        return np.inf if rate <= 0 else max_temperature_change / rate

    def state_dict(self) -> dict:
        """Checkpoint: JSON-friendly lists."""
        return {"t": self.t, "y": self.y.tolist(), "released_total": self.released_total.tolist(),
                "onset_time": self.onset_time.tolist(), "threshold_time": self.threshold_time.tolist(),
                "rate": self._rate.tolist(), "substep": None if self._h is None else self._h.tolist()}

    def load_state_dict(self, data: dict) -> None:
        """Restore from :meth:`state_dict`."""
        self.t = float(data["t"])
        self.y = np.asarray(data["y"], dtype=float).reshape(self.n_points, -1)
        self.released_total = np.asarray(data["released_total"], dtype=float).reshape(self.n_points, -1)
        self.onset_time = np.asarray(data["onset_time"], dtype=float)
        self.threshold_time = np.asarray(data["threshold_time"], dtype=float)
        self._rate = np.asarray(data["rate"], dtype=float)
        self._h = None if data.get("substep") is None else np.asarray(data["substep"], dtype=float)
