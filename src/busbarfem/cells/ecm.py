"""Equivalent-circuit cell model, vectorised over the N cells of a module.

Per cell c (arrays of length N; RC arrays N x K):

    OCV_c(SOC, T) = OCV_ref(SOC) + (T - T_ref) dU/dT(SOC)
    R0_c(SOC, T)  = f_R0,c R0_ref(SOC) exp(Ea/R_gas (1/T - 1/T_ref))
    E_c           = OCV_c - sum_k V_RC,k,c                  (the cell EMF)
    V_c           = E_c - R0_c I_c                           (terminal voltage)
    dSOC_c/dt     = -I_c / (3600 Q_c)                        (I > 0 discharges)
    V_RC(t+dt)    = e^(-dt/tau) V_RC(t) + R (1 - e^(-dt/tau)) I   (exact for constant I)

In a held-voltage step the current decays within the step; there the update takes the
current as ``I(s) = I_start + (I - I_start) g(s)`` from ``I_start`` to the end current ``I``
(the RC pairs still exactly), with ``g`` linear in time, or, given a decay time ``tau_I`` of
the current (:class:`HeldCurrent`), the exponential ``g(s) = (1 - e^(-s/tau_I)) / (1 -
e^(-dt/tau_I))``, exact for a current that decays exponentially with ``tau_I`` towards any
asymptote; both are affine in ``I``, so the circuit keeps its Thevenin form:

    V_RC(t+dt)    = a V_RC(t) + R (w0 I_start + w1 I),  a = e^(-dt/tau), w0 + w1 = 1 - a
                    (linear g: w1 = 1 - tau (1 - a) / dt)
    SOC(t+dt)     = SOC(t) - ((1 - gbar) I_start + gbar I) dt / (3600 Q),  gbar = mean of g
                    (linear g: gbar = 1/2)

With the optional diffusion lag (``cell.diffusion``) the OCV is evaluated at the surface
SOC ``SOC_s = SOC - x``, and the lag ``x`` [-] is one more first-order state, updated like
an RC pair with ``R_d = lag_1C / Q`` [1/A] and ``tau_d``:

    x(t+dt)       = a_d x(t) + R_d (1 - a_d) I                 (a_d = e^(-dt/tau_d))
    E_c           = OCV_c(SOC_s, T) - sum_k V_RC,k,c

With the optional Butler-Volmer element (``cell.kinetics``) a charge-transfer overpotential
``eta(I) = R_ct I_s asinh(I / I_s)`` adds to ``R0 I``; a step linearises it about the
current of the previous step (or the held-voltage start current):
``eta(I) ~ eta(I*) + eta'(I*) (I - I*)`` (exact for a current that does not change).

Cells are ordered (stage, parallel): index = (s - 1) * n_parallel + (p - 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from busbarfem.case.cells import CellModel

R_GAS = 8.314462618  # J/mol/K


def _table(value) -> tuple[np.ndarray, np.ndarray] | float:
    if isinstance(value, (int, float)):
        return float(value)
    arr = np.asarray(value, dtype=float)
    return arr[:, 0], arr[:, 1]


def _eval(table, soc: np.ndarray) -> np.ndarray:
    """Linear interpolation in SOC (constant beyond the table ends)."""
    if isinstance(table, float):
        return np.full(np.shape(soc), table)
    x, y = table
    return np.interp(soc, x, y)


def arrhenius_factor(T, T_ref: float, activation_energy: float) -> np.ndarray:
    """``exp(Ea/R_gas (1/T - 1/T_ref))``: > 1 below T_ref, < 1 above."""
    return np.exp(activation_energy / R_GAS * (1.0 / np.asarray(T, dtype=float) - 1.0 / T_ref))


class CellParameters:
    """Parameter evaluation for N cells that share a :class:`CellModel`.

    Args:
        cell: the validated cell section.
        n_cells: number of cells (n_series * n_parallel).
        capacity_factors: per-cell capacity multipliers (default from ``cell.variation``).
        R0_factors: per-cell R0 multipliers (default from ``cell.variation``).
    """

    def __init__(self, cell: CellModel, n_cells: int, capacity_factors=None, R0_factors=None):
        self.cell = cell
        self.n_cells = int(n_cells)
        var_cap, var_r0 = (cell.variation.factors(self.n_cells) if cell.variation
                           else (np.ones(self.n_cells), np.ones(self.n_cells)))
        self.capacity_factors = np.asarray(
            var_cap if capacity_factors is None else capacity_factors, dtype=float)
        self.R0_factors = np.asarray(var_r0 if R0_factors is None else R0_factors, dtype=float)
        for name in ("capacity_factors", "R0_factors"):
            if getattr(self, name).shape != (self.n_cells,):
                raise ValueError(f"{name} must have one value per cell ({self.n_cells})")
        self.T_ref = cell.T_ref
        self._ocv = _table(cell.ocv)
        self._dudt = _table(cell.entropic_coefficient)
        self._r0 = _table(cell.R0)
        self._rc_R = [_table(rc.R) for rc in cell.rc_pairs]
        self.rc_tau = np.array([rc.tau for rc in cell.rc_pairs], dtype=float)
        self.rc_activation = np.array([rc.activation_energy for rc in cell.rc_pairs], dtype=float)
        self.diffusion = cell.diffusion
        self.kinetics = cell.kinetics
        self._kin_R = None if cell.kinetics is None else _table(cell.kinetics.R)

    def kinetic_overpotential(self, soc, T, current) -> tuple[np.ndarray, np.ndarray]:
        """Butler-Volmer overpotential ``eta`` [V] and its slope ``d eta / dI`` [ohm] at
        ``current`` (zeros without ``cell.kinetics``); scaled by the per-cell R0 factors."""
        soc = np.asarray(soc, dtype=float)
        current = np.broadcast_to(np.asarray(current, dtype=float), soc.shape)
        if self.kinetics is None:
            return np.zeros(soc.shape), np.zeros(soc.shape)
        f = arrhenius_factor(T, self.T_ref, self.kinetics.activation_energy)
        R = _eval(self._kin_R, soc) * self.R0_factors * f
        Is = self.kinetics.current_scale / f
        x = current / Is
        return R * Is * np.arcsinh(x), R / np.sqrt(1.0 + x * x)

    def diffusion_R(self, capacity_Ah) -> np.ndarray:
        """Gain R_d = lag_1C / Q of the surface-SOC lag [1/A] (0 without diffusion)."""
        cap = np.asarray(capacity_Ah, dtype=float)
        return np.zeros_like(cap) if self.diffusion is None else self.diffusion.lag_1C / cap

    @property
    def n_rc(self) -> int:
        """Number of RC pairs K."""
        return len(self._rc_R)

    @property
    def capacity_Ah(self) -> np.ndarray:
        """Per-cell capacity [Ah]."""
        return self.cell.capacity * self.capacity_factors

    def ocv_ref(self, soc) -> np.ndarray:
        """OCV at T_ref [V]."""
        return _eval(self._ocv, np.asarray(soc, dtype=float))

    def dUdT(self, soc) -> np.ndarray:
        """Entropic coefficient [V/K]."""
        return _eval(self._dudt, np.asarray(soc, dtype=float))

    def ocv(self, soc, T) -> np.ndarray:
        """OCV(SOC, T) = OCV_ref + (T - T_ref) dU/dT [V]."""
        soc = np.asarray(soc, dtype=float)
        return self.ocv_ref(soc) + (np.asarray(T, dtype=float) - self.T_ref) * self.dUdT(soc)

    def R0(self, soc, T) -> np.ndarray:
        """Per-cell series resistance [ohm] with Arrhenius and per-cell factors."""
        soc = np.asarray(soc, dtype=float)
        return (_eval(self._r0, soc) * self.R0_factors
                * arrhenius_factor(T, self.T_ref, self.cell.R0_activation_energy))

    def rc_R(self, soc, T=None) -> np.ndarray:
        """RC resistances, shape (N, K) [ohm], at temperature ``T`` [K] (None: at T_ref)."""
        soc = np.asarray(soc, dtype=float)
        if not self._rc_R:
            return np.zeros((soc.size, 0))
        R = np.stack([_eval(t, soc) for t in self._rc_R], axis=-1)
        if T is not None and np.any(self.rc_activation):
            T = np.broadcast_to(np.asarray(T, dtype=float), soc.shape)
            R = R * np.stack([arrhenius_factor(T, self.T_ref, ea) for ea in self.rc_activation], axis=-1)
        return R


@dataclass
class ECMState:
    """Per-cell state: SOC [-], RC voltages [V] (N x K), capacity [Ah], surface-SOC lag [-]
    (zeros without the diffusion element).

    Copy with :meth:`copy`; checkpoint with :meth:`to_dict` / :meth:`from_dict`.
    """

    soc: np.ndarray
    v_rc: np.ndarray
    capacity_Ah: np.ndarray
    soc_lag: np.ndarray | None = None
    current: np.ndarray | None = None  # current of the last step [A] (Butler-Volmer linearisation)

    def __post_init__(self):
        if self.soc_lag is None:
            self.soc_lag = np.zeros(np.shape(self.soc))
        if self.current is None:
            self.current = np.zeros(np.shape(self.soc))

    @property
    def surface_soc(self) -> np.ndarray:
        """SOC at which the OCV is evaluated, SOC - lag [-]."""
        return self.soc - self.soc_lag

    @classmethod
    def initial(cls, params: CellParameters, soc=None) -> ECMState:
        """Fresh state: relaxed RC pairs, SOC = ``soc`` or ``cell.initial_soc``."""
        n = params.n_cells
        s0 = params.cell.initial_soc if soc is None else soc
        return cls(soc=np.broadcast_to(np.asarray(s0, dtype=float), (n,)).copy(),
                   v_rc=np.zeros((n, params.n_rc)),
                   capacity_Ah=params.capacity_Ah.copy())

    def copy(self) -> ECMState:
        """Deep copy."""
        return ECMState(self.soc.copy(), self.v_rc.copy(), self.capacity_Ah.copy(),
                        self.soc_lag.copy(), self.current.copy())

    def to_dict(self) -> dict:
        """JSON-friendly form (lists of floats)."""
        return {"soc": self.soc.tolist(), "v_rc": self.v_rc.tolist(),
                "capacity_Ah": self.capacity_Ah.tolist(), "soc_lag": self.soc_lag.tolist(),
                "current": self.current.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> ECMState:
        """Inverse of :meth:`to_dict` (a checkpoint without ``soc_lag`` has none)."""
        soc = np.asarray(data["soc"], dtype=float)
        v_rc = np.asarray(data["v_rc"], dtype=float).reshape(soc.size, -1)
        lag, cur = data.get("soc_lag"), data.get("current")
        return cls(soc=soc, v_rc=v_rc, capacity_Ah=np.asarray(data["capacity_Ah"], dtype=float),
                   soc_lag=None if lag is None else np.asarray(lag, dtype=float),
                   current=None if cur is None else np.asarray(cur, dtype=float))


def emf(params: CellParameters, state: ECMState, T) -> np.ndarray:
    """Cell EMF E = OCV(SOC_s, T) - sum_k V_RC,k [V] (SOC_s = SOC without diffusion)."""
    return params.ocv(state.surface_soc, T) - state.v_rc.sum(axis=1)


@dataclass(frozen=True)
class HeldCurrent:
    """Cell currents at the start of a held step and the decay time of the current shape.

    Attributes:
        start: per-cell currents at the start of the step [A].
        decay: per-cell decay time ``tau_I`` [s] of the exponential current shape (negative:
            a growing current; inf or None: linear in time), see the module docstring.
    """

    start: np.ndarray
    decay: np.ndarray | None = None


def held_start(current_start) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(start currents, decay times or None)`` of a ``current_start`` argument: an array
    (the linear shape), a :class:`HeldCurrent` or None."""
    if current_start is None:
        return None, None
    if isinstance(current_start, HeldCurrent):
        i0 = np.asarray(current_start.start, dtype=float)
        d = current_start.decay
        return i0, None if d is None else np.broadcast_to(np.asarray(d, dtype=float), i0.shape)
    return np.asarray(current_start, dtype=float), None


#: below this |dt / tau_I| the exponential shape is interpolated towards the linear one
#: (the closed forms lose digits to cancellation as dt / tau_I -> 0)
_SHAPE_X0 = 1e-3
#: |dt / tau_I| is clipped to this (a growing current's e^(dt/|tau_I|) stays finite)
_SHAPE_XMAX = 30.0


def _shape_x(dt: float, decay) -> np.ndarray | None:
    if decay is None or dt <= 0:
        return None
    with np.errstate(divide="ignore"):
        x = dt / np.asarray(decay, dtype=float)
    x = np.where(np.isfinite(x), x, 0.0)
    return np.clip(x, -_SHAPE_XMAX, _SHAPE_XMAX)


def mean_shape(dt: float, decay) -> np.ndarray | float:
    """``gbar``, the mean over the step of the current shape ``g`` (1/2: linear; see the
    module docstring): the charge of the step is ``((1 - gbar) I_start + gbar I) dt``."""
    x = _shape_x(dt, decay)
    if x is None:
        return 0.5
    small = np.abs(x) < 1e-2
    xs = np.where(small, 1.0, x)
    exact = 1.0 / -np.expm1(-xs) - 1.0 / xs
    return np.where(small, 0.5 + x / 12.0 - x ** 3 / 720.0, exact)


def held_current_weights(tau, dt: float, decay=None) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``(w0, w1)`` of the start and end current in ``V_RC(t+dt) = a V_RC + R (w0
    I_start + w1 I)`` for the held-step current shape (linear without ``decay``, else the
    exponential of decay time ``decay``, per cell); shape (N, K) with ``decay`` (N,), else
    (K,). ``w0 + w1 = 1 - a``."""
    w0, w1 = linear_current_weights(tau, dt)
    x = _shape_x(dt, decay)
    if x is None:
        return w0, w1
    tau = np.asarray(tau, dtype=float)
    y = dt / tau[None, :]  # (1, K)

    def exact(xv):
        xv = xv[:, None]
        # w1 = y / (1 - e^-x) * int_0^1 e^(-y (1 - u)) (1 - e^(-x u)) du
        #    = ((1 - e^-y) - y E) / (1 - e^-x),  E = int_0^1 e^(-y (1-u) - x u) du
        lo = np.minimum(xv, y)
        z = -np.abs(xv - y)
        phi = np.where(np.abs(z) > 1e-8, np.expm1(z) / np.where(z != 0, z, 1.0), 1.0 + z / 2)
        E = np.exp(-lo) * phi
        return (-np.expm1(-y) - y * E) / -np.expm1(-xv)

    x0 = np.where(x < 0, -_SHAPE_X0, _SHAPE_X0)
    big = np.abs(x) >= _SHAPE_X0
    w1x = np.where(big[:, None], exact(np.where(big, x, x0)), 0.0)
    w1s = w1[None, :] + (x / x0)[:, None] * (exact(x0) - w1[None, :])
    w1n = np.where(big[:, None], w1x, w1s)
    return (1.0 - np.exp(-y)) - w1n, w1n


def step_source(params: CellParameters, state: ECMState, T, dt: float,
                current_start=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Effective EMF and resistance of each cell for a step of ``dt`` (see
    :func:`_step_source`); with ``cell.kinetics`` the Butler-Volmer overpotential is
    linearised about the held-voltage start current or else the last step's current."""
    E, R, R_ocv = _step_source(params, state, T, dt, current_start)
    if params.kinetics is not None:
        i_ref = state.current if current_start is None else held_start(current_start)[0]
        eta, slope = params.kinetic_overpotential(state.soc, T, i_ref)
        E, R = E - (eta - slope * i_ref), R + slope
    return E, R, R_ocv


def _step_source(params: CellParameters, state: ECMState, T, dt: float,
                 current_start=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Effective EMF and resistance of each cell for a step of ``dt``.

    With the RC pairs integrated exactly over the step, the cell voltage at the end of the
    step is ``V = E_eff - R_eff I`` with ``E_eff = OCV - sum_k a_k V_RC,k`` and
    ``R_eff = R0 + sum_k R_k (1 - a_k)``, ``a_k = exp(-dt/tau_k)``, for a current held
    constant over the step. Solving the circuit with these (instead of the RC voltages
    frozen at the step start) keeps parallel current sharing stable for any dt, also
    dt >> tau. ``dt = 0`` gives the instantaneous ``(OCV - sum V_RC, R0)``.

    With ``current_start`` (per-cell currents at the start of the step, an array: linear
    in time, or a :class:`HeldCurrent` with the decay time of an exponential shape) the
    current goes from ``current_start`` to the end-of-step ``I`` in that shape instead
    (see the module docstring): the start-current terms move into ``E_eff``.

    Returns:
        ``(E_eff, R_eff, R_ocv)``: ``R_ocv = dOCV/dSOC dt / (3600 Q)`` stands for the OCV
        change over the step, so the end-of-step OCV is ``OCV - R_ocv I`` (``OCV - R_ocv
        I_mean`` with ``current_start``, ``I_mean`` = :func:`mean_current`), used for the
        irreversible heat ``I (OCV_end - V)``.
    """
    soc = state.soc
    a = np.exp(-dt / params.rc_tau) if params.n_rc else np.zeros(0)
    R = params.rc_R(soc, T)
    E = params.ocv(soc, T) - (state.v_rc * a).sum(axis=1)
    R_ocv = np.zeros_like(E)
    if dt > 0:
        # the OCV at the end of the step, linearised in the current: the SOC moves by
        # -I dt / (3600 Q), so the OCV slope acts as one more series resistance
        # (a cell pushed past SOC 1 by a circulating current sees the clamped table's zero slope)
        slope = _ocv_slope(params, soc, T)
        R_ocv = slope * dt / (3600.0 * state.capacity_Ah)
    if params.diffusion is not None:
        return _step_source_diffusion(params, state, T, dt, current_start, a, R, R_ocv)
    if current_start is None:
        end = soc
        i_pred = np.broadcast_to(np.asarray(state.current, dtype=float), soc.shape)
        if dt > 0 and np.any(i_pred != 0):
            # secant over the SOC change the last step's current predicts (exact for a
            # constant current; the tangent at the start SOC is first order in the step's
            # SOC change: 300 s steps at 0.5C put the lumped 8s6p CC->CV switch 39 s late),
            # and R0 at the predicted end SOC, where the end-of-step voltage is read
            end = np.clip(soc - i_pred * dt / (3600.0 * state.capacity_Ah), 0, 1)
            R_ocv = _ocv_secant(params, soc, end, T, slope) * dt / (3600.0 * state.capacity_Ah)
        Reff = params.R0(end, T) + (R * (1.0 - a)).sum(axis=1)
        return E, Reff + R_ocv, R_ocv
    i0, decay = held_start(current_start)
    w0, w1 = held_current_weights(params.rc_tau, dt, decay)
    gbar = mean_shape(dt, decay)
    end = soc
    if dt > 0:
        # secant slope over the SOC change the start current predicts (decaying in the
        # shape's exponential, if it has one), so a kink of a tabulated OCV inside the step
        # does not show as a jump of the current
        dsoc = -i0 * _predicted_mean(dt, decay) * dt / (3600.0 * state.capacity_Ah)
        end = np.clip(soc + dsoc, 0, 1)
        R_ocv = _ocv_secant(params, soc, end, T, slope) * dt / (3600.0 * state.capacity_Ah)
    E = E - R_ocv * (1.0 - gbar) * i0 - (R * w0).sum(axis=1) * i0
    # the series resistance acts at the end of the step: at the predicted end SOC (a
    # SOC-dependent R0 frozen at the start is a first-order error of a long held step)
    Reff = params.R0(end, T) + (R * w1).sum(axis=1) + R_ocv * gbar
    return E, Reff, R_ocv


def _predicted_mean(dt: float, decay) -> np.ndarray | float:
    """Mean over the step of ``e^(-s/tau_I)`` (1 without a decay time): the start current's
    prediction of the step's mean current in the exponential shape."""
    x = _shape_x(dt, decay)
    if x is None:
        return 1.0
    small = np.abs(x) < 1e-6
    return np.where(small, 1.0 - x / 2, -np.expm1(-x) / np.where(small, 1.0, x))


def _ocv_secant(params: CellParameters, soc, end, T, fallback) -> np.ndarray:
    """``(OCV(end) - OCV(soc)) / (end - soc)`` where the two SOCs differ by more than 1e-6,
    ``fallback`` (a slope) elsewhere."""
    wide = np.abs(end - soc) > 1e-6
    secant = (params.ocv(end, T) - params.ocv(soc, T)) / np.where(wide, end - soc, 1.0)
    return np.where(wide, secant, fallback)


def _ocv_slope(params: CellParameters, soc, T, d: float = 1e-6) -> np.ndarray:
    hi, lo = np.clip(soc + d, 0, 1), np.clip(soc - d, 0, 1)
    wide = hi > lo  # outside [0, 1] the table is constant: slope 0
    return np.where(wide, params.ocv(hi, T) - params.ocv(lo, T), 0.0) / np.where(wide, hi - lo, 1.0)


def _step_source_diffusion(params, state, T, dt, current_start, a, R, R_ocv):
    """:func:`step_source` with the surface-SOC lag: the OCV at the end-of-step surface
    SOC ``s_end = s0 - I (dt / 3600 Q + R_d (1 - a_d))`` (``s0`` = the zero-current end
    point), linearised in I at ``s0`` (secant over the predicted change with
    ``current_start``, as the bulk OCV term). ``R_ocv`` stays the bulk-OCV part (heat)."""
    soc, Q = state.soc, state.capacity_Ah
    ad = np.exp(-dt / params.diffusion.tau)
    Rd = params.diffusion_R(Q)
    s0 = soc - ad * state.soc_lag
    E = params.ocv(s0, T) - (state.v_rc * a).sum(axis=1)
    if current_start is None:
        gain = dt / (3600.0 * Q) + Rd * (1.0 - ad)
        R_s = _ocv_slope(params, s0, T) * gain if dt > 0 else np.zeros_like(E)
        Reff = params.R0(soc, T) + (R * (1.0 - a)).sum(axis=1) + R_s
        return E, Reff, R_ocv
    i0, decay = held_start(current_start)
    w0, w1 = held_current_weights(params.rc_tau, dt, decay)
    wd0, wd1 = _lag_weights(params, dt, decay)
    gbar = mean_shape(dt, decay)
    g0 = dt * (1.0 - gbar) / (3600.0 * Q) + Rd * wd0
    g1 = dt * gbar / (3600.0 * Q) + Rd * wd1
    slope = _ocv_slope(params, s0, T)
    if dt > 0:
        end = np.clip(s0 - i0 * (g0 + _predicted_mean(dt, decay) * g1), 0, 1)
        slope = _ocv_secant(params, s0, end, T, slope)
        # the bulk part for the heat, as without diffusion
        dsoc = -i0 * _predicted_mean(dt, decay) * dt / (3600.0 * Q)
        bend = np.clip(soc + dsoc, 0, 1)
        R_ocv = np.where(np.abs(bend - soc) > 1e-6, _ocv_secant(params, soc, bend, T, 0.0) * dt / (3600.0 * Q), R_ocv)
    E = E - slope * g0 * i0 - (R * w0).sum(axis=1) * i0
    bulk_end = np.clip(soc - i0 * _predicted_mean(dt, decay) * dt / (3600.0 * Q), 0, 1) if dt > 0 else soc
    Reff = params.R0(bulk_end, T) + (R * w1).sum(axis=1) + slope * g1
    return E, Reff, R_ocv


def _lag_weights(params, dt: float, decay) -> tuple[np.ndarray, np.ndarray]:
    """:func:`held_current_weights` of the diffusion lag (one time constant), per cell."""
    wd0, wd1 = held_current_weights(np.array([params.diffusion.tau]), dt, decay)
    return wd0[..., 0], wd1[..., 0]


def mean_current(current, current_start, dt: float) -> np.ndarray:
    """Mean current of a step [A]: ``current`` without ``current_start``, else
    ``(1 - gbar) I_start + gbar I`` of the held-step shape (:func:`mean_shape`)."""
    current = np.asarray(current, dtype=float)
    if current_start is None:
        return current
    i0, decay = held_start(current_start)
    gbar = mean_shape(dt, decay)
    return (1.0 - gbar) * i0 + gbar * current


def linear_current_weights(tau, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``(w0, w1)`` of the start and end current in ``V_RC(t+dt) = a V_RC +
    R (w0 I_start + w1 I)`` for a current linear in time over ``dt``; w0 + w1 = 1 - a."""
    x = dt / np.asarray(tau, dtype=float)
    one_minus_a = -np.expm1(-x)
    with np.errstate(divide="ignore", invalid="ignore"):
        w1 = np.where(x > 1e-4, 1.0 - one_minus_a / np.where(x > 0, x, 1.0), x / 2 - x * x / 6)
    return one_minus_a - w1, w1


def terminal_voltage(E, R0, current) -> np.ndarray:
    """Cell terminal voltage V = E - R0 I [V] (I > 0 discharges)."""
    return np.asarray(E) - np.asarray(R0) * np.asarray(current)


def rc_update(v_rc, R, tau, current, dt: float) -> np.ndarray:
    """Exact RC update for a current held constant over ``dt``.

    Args:
        v_rc: RC voltages (N, K).
        R: RC resistances (N, K).
        tau: time constants (K,).
        current: cell currents (N,).
        dt: step [s].
    """
    decay = np.exp(-dt / np.asarray(tau, dtype=float))
    return decay * v_rc + np.asarray(R) * (1.0 - decay) * np.asarray(current)[:, None]


def advance(params: CellParameters, state: ECMState, current, dt: float, T=None,
            current_start=None) -> ECMState:
    """New state after ``dt`` seconds at per-cell ``current`` [A].

    The current is constant over the step, or with ``current_start`` goes from
    ``current_start`` to ``current`` in the held-step shape (linear, or exponential with a
    :class:`HeldCurrent`'s decay time; as in :func:`step_source`). ``T`` [K]: the cell
    temperatures the step was solved at (RC Arrhenius; None = T_ref); pass the same as to
    :func:`step_source` so the RC update matches the solved circuit.
    """
    current = np.asarray(current, dtype=float)
    R = params.rc_R(state.soc, T)  # SOC- and T-dependent R frozen at the start of the step
    lag = state.soc_lag
    if params.diffusion is not None:
        ad = float(np.exp(-dt / params.diffusion.tau))
        Rd = params.diffusion_R(state.capacity_Ah)
    if current_start is None:
        if params.diffusion is not None:
            lag = ad * lag + Rd * (1.0 - ad) * current
        return ECMState(
            soc=state.soc - current * dt / (3600.0 * state.capacity_Ah),
            v_rc=rc_update(state.v_rc, R, params.rc_tau, current, dt),
            capacity_Ah=state.capacity_Ah.copy(), soc_lag=lag.copy(),
            current=np.broadcast_to(current, state.soc.shape).copy(),
        )
    i0, tau_i = held_start(current_start)
    w0, w1 = held_current_weights(params.rc_tau, dt, tau_i)
    decay = np.exp(-dt / params.rc_tau)
    if params.diffusion is not None:
        wd0, wd1 = _lag_weights(params, dt, tau_i)
        lag = ad * lag + Rd * (wd0 * i0 + wd1 * current)
    return ECMState(
        soc=state.soc - mean_current(current, current_start, dt) * dt / (3600.0 * state.capacity_Ah),
        v_rc=decay * state.v_rc + R * (w0 * i0[:, None] + w1 * current[:, None]),
        capacity_Ah=state.capacity_Ah.copy(), soc_lag=lag.copy(),
            current=np.broadcast_to(current, state.soc.shape).copy(),
    )
