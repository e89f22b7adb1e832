"""ECM identification: OCV(SOC), R0(SOC, T) and RC pairs from pulse/low-rate test data.

Model (the same as :mod:`busbarfem.cells.ecm`, sampled with the current of each sample
held over the interval that ends at it, which is how the lumped runner records a run)::

    soc_n   = soc_0 - sum_{m<=n} I_m (t_m - t_{m-1}) / (3600 Q)
    V_n     = OCV(soc_n) + (T_n - T_ref) dU/dT(soc_n) - R0(soc_{n-1}, T_n) I_n - sum_k V_k,n
    V_k,n   = a_k,n V_k,n-1 + (1 - a_k,n) R_k(soc_{n-1}, T_n) I_n,   a_k,n = exp(-dt_n / tau_k)
    R(soc, T) = R_ref(soc) exp(Ea / R_gas (1/T - 1/T_ref))

OCV_ref, R0_ref and R_k,ref are piecewise linear in SOC (tables on SOC nodes), so for
fixed time constants and activation energies V is *linear* in all table values. The
fit is a variable projection: :func:`scipy.optimize.least_squares` moves the few
nonlinear parameters (log tau_k within bounds, activation energies when the tests span
several temperatures), and for each trial :func:`scipy.optimize.lsq_linear` solves
the bounded linear problem for the tables (R >= 0, OCV non-decreasing by
construction: OCV = c_0 + sum_j d_j ramp_j(soc), d_j >= 0). OCV is thus identified
from the low-rate and rest parts of the data jointly with the resistances.

With ``FitOptions.diffusion`` the OCV is evaluated at the surface SOC of the ECM's
diffusion lag, ``soc_s,n = soc_n - x_n`` with ``x_n = a_d,n x_n-1 + (1 - a_d,n) (lag_1C / Q) I_n``;
``tau_d`` and ``lag_1C`` are two more nonlinear parameters of the outer least squares
(V stays linear in the tables). With ``FitOptions.ocv`` the OCV table is given (e.g. from
a PyBaMM model's electrode OCPs) and only the resistances are fitted.

With ``FitOptions.kinetics`` a Butler-Volmer term ``- R_ct(soc_{n-1}) f(T_n) I_s asinh(I_n / I_s(T_n))``
(``I_s(T) = I_s / f(T)``, ``f`` Arrhenius) joins R0: the R_ct table is linear, the current
scale ``I_s`` (and its activation energy) nonlinear. Pulses at several rates identify it.

The entropic coefficient dU/dT is not identified (it needs rest data at several
temperatures); it is taken as given (``FitOptions.entropic_coefficient``, default 0).

Test data (:func:`read_test_csv`): CSV with a header naming time, current, voltage and
optionally temperature columns (units in brackets), positive current = discharge,
``# key: value`` comment lines for ``initial_soc`` (default 1: the test starts fully
charged and at rest), ``temperature`` and ``name``.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from busbarfem.cells.ecm import R_GAS

#: default time-constant bounds [s] per number of RC pairs (pairs ordered fast to slow)
TAU_BOUNDS = {
    1: [(1.0, 3000.0)],
    2: [(0.5, 100.0), (30.0, 10000.0)],
    3: [(0.3, 30.0), (10.0, 600.0), (200.0, 20000.0)],
}
TAU_START = {1: [30.0], 2: [10.0, 500.0], 3: [3.0, 60.0, 1500.0]}
EA_MAX = 150e3  # J/mol, upper bound of the fitted activation energies
#: bounds of the diffusion lag's (tau [s], lag_1C [-])
DIFFUSION_BOUNDS = ((10.0, 50000.0), (1e-4, 0.5))
#: bounds of the Butler-Volmer current scale [A]
KINETICS_BOUNDS = (0.01, 1000.0)


class FitDataError(ValueError):
    """Unusable test data; the message names the file, line and column."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        self.file, self.line, self.message = file, line, message
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(where + message)


@dataclass
class CellTest:
    """One test record: time [s], current [A] (+ discharge), voltage [V], temperature [K].

    ``initial_soc``: SOC at the first sample (the cell is assumed at rest there).
    """

    name: str
    time: np.ndarray
    current: np.ndarray
    voltage: np.ndarray
    temperature: np.ndarray
    initial_soc: float = 1.0

    def __post_init__(self):
        self.time = np.asarray(self.time, dtype=float)
        n = self.time.size
        self.current = np.asarray(self.current, dtype=float)
        self.voltage = np.asarray(self.voltage, dtype=float)
        self.temperature = np.broadcast_to(np.asarray(self.temperature, dtype=float), (n,)).copy()
        for what in ("current", "voltage"):
            if getattr(self, what).shape != (n,):
                raise FitDataError(f"test {self.name!r}: {what} has {getattr(self, what).size} "
                                   f"samples, time has {n}")
        if n < 3:
            raise FitDataError(f"test {self.name!r}: needs at least 3 samples, got {n}")
        if np.any(np.diff(self.time) < 0.0):
            i = int(np.nonzero(np.diff(self.time) < 0.0)[0][0])
            raise FitDataError(f"test {self.name!r}: time must not decrease (sample {i + 2}: "
                               f"{self.time[i + 1]:g} s after {self.time[i]:g} s)")

    @property
    def mean_temperature(self) -> float:
        """Mean temperature [K]."""
        return float(np.mean(self.temperature))

    def soc(self, capacity_Ah: float) -> np.ndarray:
        """SOC at each sample (coulomb counting, current held over the interval ending there)."""
        dt = np.diff(self.time, prepend=self.time[0])
        return self.initial_soc - np.cumsum(self.current * dt) / (3600.0 * capacity_Ah)

    def write_csv(self, path: str | Path) -> None:
        """Write in the format :func:`read_test_csv` reads."""
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(f"# name: {self.name}\n# initial_soc: {self.initial_soc:.10g}\n")
            fh.write("time [s],current [A],voltage [V],temperature [K]\n")
            for row in zip(self.time, self.current, self.voltage, self.temperature, strict=True):
                fh.write("%.6f,%.9g,%.9g,%.6g\n" % row)


_UNITS = {
    "time": {"s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "": 1.0},
    "current": {"a": 1.0, "ma": 1e-3, "": 1.0},
    "voltage": {"v": 1.0, "mv": 1e-3, "": 1.0},
    "temperature": {"k": "K", "c": "C", "degc": "C", "°c": "C", "": "auto"},
}


def _column(header: list[str], what: str, path: str, required: bool = True):
    for i, name in enumerate(header):
        base = re.split(r"[\[(]", name, maxsplit=1)[0].strip().lower()
        if base.startswith(what[:4]):
            m = re.search(r"[\[(]\s*([^\])]*)\s*[\])]", name)
            unit = (m.group(1).strip().lower() if m else "")
            if unit not in _UNITS[what]:
                raise FitDataError(f"column {name!r}: unit {unit!r} not understood; valid: "
                                   f"{', '.join(u for u in _UNITS[what] if u)}", path, 1)
            return i, _UNITS[what][unit]
    if required:
        raise FitDataError(f"no {what!r} column in the header {header}; need time, current, "
                           "voltage (and temperature, or a '# temperature: K' line)", path, 1)
    return None, None


def read_test_csv(path: str | Path) -> CellTest:
    """Read one test CSV (see the module docstring for the format).

    Raises:
        FitDataError: missing column, unknown unit, non-numeric cell (with file:line).
    """
    path = str(path)
    meta: dict[str, str] = {}
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    header_line = 1
    try:
        fh = open(path, encoding="utf-8", newline="")
    except OSError as exc:
        raise FitDataError(f"cannot read the test file: {exc.strerror}", path) from None
    with fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            if not text:
                continue
            if text.startswith("#"):
                if ":" in text:
                    key, val = text[1:].split(":", 1)
                    meta[key.strip().lower()] = val.strip()
                continue
            cells = next(csv.reader([text]))
            if header is None:
                header, header_line = [c.strip() for c in cells], lineno
            else:
                rows.append((lineno, cells))
    if header is None or not rows:
        raise FitDataError("no header and data rows found", path)
    try:
        cols = {w: _column(header, w, path, required=(w != "temperature"))
                for w in ("time", "current", "voltage", "temperature")}
    except FitDataError as exc:
        raise FitDataError(exc.message, path, header_line) from None
    data = {w: [] for w in cols}
    for lineno, cells in rows:
        for w, (i, _) in cols.items():
            if i is None:
                continue
            try:
                data[w].append(float(cells[i]))
            except (ValueError, IndexError):
                got = cells[i] if i < len(cells) else "(missing)"
                raise FitDataError(f"column {header[i]!r}: expected a number, got {got!r}",
                                   path, lineno) from None
    t = np.asarray(data["time"]) * cols["time"][1]
    current = np.asarray(data["current"]) * cols["current"][1]
    if meta.get("current_positive", "discharge").lower() == "charge":
        current = -current
    voltage = np.asarray(data["voltage"]) * cols["voltage"][1]
    if cols["temperature"][0] is not None:
        temp = np.asarray(data["temperature"])
        unit = cols["temperature"][1]
    elif "temperature" in meta:
        try:
            temp = np.array([float(meta["temperature"].split()[0])])
        except ValueError:
            raise FitDataError(f"'# temperature:' must be a number, got {meta['temperature']!r}", path) from None
        unit = "auto"
    else:
        raise FitDataError("no temperature column and no '# temperature: <K>' line", path, header_line)
    if unit == "C" or (unit == "auto" and np.max(temp) < 150.0):
        temp = temp + 273.15
    try:
        soc0 = float(meta.get("initial_soc", 1.0))
    except ValueError:
        raise FitDataError(f"'# initial_soc:' must be a number in [0, 1], got {meta['initial_soc']!r}", path) from None
    if not 0.0 <= soc0 <= 1.0:
        raise FitDataError(f"'# initial_soc:' must lie in [0, 1], got {soc0:g}", path)
    try:
        return CellTest(name=meta.get("name", Path(path).stem), time=t, current=current,
                        voltage=voltage, temperature=temp, initial_soc=soc0)
    except FitDataError as exc:
        raise FitDataError(exc.message, path) from None


@dataclass
class FitOptions:
    """Choices of the identification.

    Attributes:
        n_rc: number of RC pairs (1-3).
        capacity: capacity [Ah]; None: the largest charge discharged in one test that
            starts at SOC 1 and ends at ``v_min`` (a low-rate discharge to cut-off).
        v_min: discharge cut-off voltage [V] (SOC 0 in the capacity estimate).
        T_ref: reference temperature of the tables [K].
        soc_nodes: SOC nodes of the R0 and RC tables (a node between pulse levels is
            identified only weakly: its R may come out small, see docs/cells.md).
        ocv_nodes: SOC nodes of the OCV table.
        tau_bounds: (lo, hi) [s] per RC pair; default :data:`TAU_BOUNDS`.
        tau_start: initial time constants [s].
        fit_activation: fit Arrhenius activation energies when the tests span > 2 K.
        activation_energy: fixed (R0, RC...) activation energies [J/mol] otherwise.
        entropic_coefficient: known dU/dT table [[soc, V/K], ...] (default 0).
        smoothing: weight of a second-difference penalty on the R tables, relative to
            the data (keeps nodes with little data close to their neighbours).
        diffusion: fit the surface-SOC diffusion lag (``cell.diffusion``: tau, lag_1C).
        diffusion_start: initial (tau [s], lag_1C [-]) of the lag.
        ocv: given OCV table [[soc, V], ...] at T_ref (None: fitted on ``ocv_nodes``).
        kinetics: fit a Butler-Volmer (asinh) overpotential (``cell.kinetics``: an R table on
            ``soc_nodes``, its current scale and activation energy) in series with R0.
        kinetics_start: initial current scale I_s [A].
        weights: per test name, a weight of its squared voltage residuals (default 1 for
            every test; e.g. weight constant-current discharges so the fit sees the
            high-rate depletion they show next to the many pulse samples).
    """

    n_rc: int = 2
    capacity: float | None = None
    v_min: float = 2.5
    T_ref: float = 298.15
    soc_nodes: list[float] = field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5,
                                                            0.6, 0.7, 0.8, 0.9, 0.95, 1.0])
    ocv_nodes: list[float] = field(default_factory=lambda: list(np.round(np.linspace(0, 1, 41), 4)))
    tau_bounds: list[tuple[float, float]] | None = None
    tau_start: list[float] | None = None
    fit_activation: bool = True
    activation_energy: list[float] | None = None
    entropic_coefficient: list[tuple[float, float]] | None = None
    smoothing: float = 1e-4
    diffusion: bool = False
    diffusion_start: tuple[float, float] = (1000.0, 0.05)
    ocv: list[tuple[float, float]] | None = None
    kinetics: bool = False
    kinetics_start: float = 2.0
    weights: dict[str, float] | None = None

    def check(self) -> None:
        """Raise ValueError naming the bad option."""
        if self.n_rc not in (1, 2, 3):
            raise ValueError(f"n_rc: 1, 2 or 3 RC pairs, got {self.n_rc}")
        for name in ("soc_nodes", "ocv_nodes"):
            nodes = np.asarray(getattr(self, name), dtype=float)
            if nodes.size < 2 or np.any(np.diff(nodes) <= 0) or nodes[0] < 0 or nodes[-1] > 1:
                raise ValueError(f"{name}: at least 2 strictly increasing SOC values in [0, 1]")
        bounds = self.tau_bounds or TAU_BOUNDS[self.n_rc]
        if len(bounds) != self.n_rc or any(not 0 < lo < hi for lo, hi in bounds):
            raise ValueError(f"tau_bounds: {self.n_rc} pairs (lo, hi) with 0 < lo < hi, got {bounds}")
        if self.capacity is not None and self.capacity <= 0:
            raise ValueError(f"capacity: must be > 0 Ah, got {self.capacity}")
        tau_d, lag = self.diffusion_start
        if not (DIFFUSION_BOUNDS[0][0] < tau_d < DIFFUSION_BOUNDS[0][1]
                and DIFFUSION_BOUNDS[1][0] < lag < DIFFUSION_BOUNDS[1][1]):
            raise ValueError(f"diffusion_start: (tau, lag_1C) within {DIFFUSION_BOUNDS}, got {self.diffusion_start}")
        if self.ocv is not None:
            arr = np.asarray(self.ocv, dtype=float)
            if arr.ndim != 2 or arr.shape[1] != 2 or np.any(np.diff(arr[:, 0]) <= 0):
                raise ValueError("ocv: a [[soc, V], ...] table with increasing SOC")
        if self.weights is not None and any(not w > 0 for w in self.weights.values()):
            raise ValueError(f"weights: positive numbers per test name, got {self.weights}")


def hat_basis(x: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation basis, shape (len(x), len(nodes)); constant outside."""
    x = np.clip(np.asarray(x, dtype=float), nodes[0], nodes[-1])
    eye = np.eye(nodes.size)
    return np.stack([np.interp(x, nodes, eye[j]) for j in range(nodes.size)], axis=1)


def ramp_basis(x: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Basis [1, ramp_1..ramp_{M-1}] of a non-decreasing piecewise-linear function:
    f = c_0 + sum_j d_j ramp_j with d_j >= 0 the rise over segment j."""
    x = np.asarray(x, dtype=float)
    lo, hi = nodes[:-1], nodes[1:]
    ramps = np.clip((x[:, None] - lo[None, :]) / (hi - lo)[None, :], 0.0, 1.0)
    return np.concatenate([np.ones((x.size, 1)), ramps], axis=1)


def rc_filter(u: np.ndarray, dt: np.ndarray, tau: float) -> np.ndarray:
    """y_n = a_n y_{n-1} + (1 - a_n) u_n, a_n = exp(-dt_n / tau), y_{-1} = 0 (columns of u).

    Runs of equal dt are filtered with :func:`scipy.signal.lfilter` (exact recursion).
    """
    from scipy.signal import lfilter

    u = np.asarray(u, dtype=float)
    squeeze = u.ndim == 1
    u2 = u[:, None] if squeeze else u
    y = np.empty_like(u2)
    dtq = np.round(np.asarray(dt, dtype=float), 9)
    edges = np.concatenate([[0], np.nonzero(np.diff(dtq))[0] + 1, [dtq.size]])
    prev = np.zeros(u2.shape[1])
    for s, e in zip(edges[:-1], edges[1:], strict=True):
        a = float(np.exp(-dtq[s] / tau))
        y[s:e], _ = lfilter([1.0 - a], [1.0, -a], u2[s:e], axis=0, zi=(a * prev)[None, :])
        prev = y[e - 1]
    return y[:, 0] if squeeze else y


def arrhenius(T, T_ref: float, ea: float) -> np.ndarray:
    """exp(Ea/R_gas (1/T - 1/T_ref))."""
    return np.exp(ea / R_GAS * (1.0 / np.asarray(T, dtype=float) - 1.0 / T_ref))


@dataclass
class _Prepared:
    test: CellTest
    dt: np.ndarray
    soc: np.ndarray
    H: np.ndarray  # R-node hats at soc_{n-1}
    O: np.ndarray | None  # OCV ramps at soc_n (None with the diffusion lag: per trial)
    b: np.ndarray  # V minus the entropic term


@dataclass
class FitResult:
    """Outcome of :func:`fit_ecm`.

    Attributes:
        cell: the ``cell:`` mapping (schema of :class:`busbarfem.case.cells.CellModel`).
        capacity: [Ah]; capacity_source: how it was obtained.
        rms, max_abs: per test name, voltage residual [V].
        model_voltage: per test name, the fitted model's voltage [V].
        tests: the tests fitted.
        nonlinear: tau [s] and activation energies [J/mol] found.
        optimizer: message and evaluations of the outer least-squares.
    """

    cell: dict
    capacity: float
    capacity_source: str
    rms: dict[str, float]
    max_abs: dict[str, float]
    model_voltage: dict[str, np.ndarray]
    tests: list[CellTest]
    nonlinear: dict
    optimizer: dict

    @property
    def rms_all(self) -> float:
        """RMS over all samples of all tests [V]."""
        r = np.concatenate([self.model_voltage[t.name] - t.voltage for t in self.tests])
        return float(np.sqrt(np.mean(r**2)))


def estimate_capacity(tests: list[CellTest], v_min: float) -> tuple[float, str]:
    """Largest charge [Ah] discharged by a test that starts at SOC 1 and reaches ``v_min``."""
    best, src = 0.0, ""
    for t in tests:
        if t.initial_soc < 1.0 - 1e-9:
            continue
        dt = np.diff(t.time, prepend=t.time[0])
        q = np.cumsum(t.current * dt) / 3600.0
        hit = np.nonzero(t.voltage <= v_min + 1e-3)[0]
        if hit.size and q[hit[0]] > best:
            best = float(q[hit[0]])
            src = f"charge discharged by test {t.name!r} from SOC 1 to {v_min:g} V"
    if best <= 0.0:
        raise FitDataError(f"cannot estimate the capacity: no test starts at SOC 1 and discharges "
                           f"to {v_min:g} V; give the capacity (--capacity)")
    return best, src


def fit_ecm(tests: list[CellTest], options: FitOptions | None = None) -> FitResult:
    """Identify the ECM tables from ``tests`` (see the module docstring).

    Raises:
        ValueError / FitDataError: bad options or data that cannot identify the model.
    """
    from scipy.optimize import least_squares, lsq_linear

    opt = options or FitOptions()
    opt.check()
    if not tests:
        raise FitDataError("no tests given")
    names = [t.name for t in tests]
    if len(set(names)) != len(names):
        raise FitDataError(f"test names must be unique, got {names}")
    if opt.capacity is not None:
        capacity, cap_src = float(opt.capacity), "given"
    else:
        capacity, cap_src = estimate_capacity(tests, opt.v_min)
    K = opt.n_rc
    rnodes = np.asarray(opt.soc_nodes, dtype=float)
    ocv_given = None if opt.ocv is None else np.asarray(opt.ocv, dtype=float)
    onodes = np.asarray(opt.ocv_nodes if ocv_given is None else ocv_given[:, 0], dtype=float)
    J, M = rnodes.size, (onodes.size if ocv_given is None else 0)
    ent = np.asarray(opt.entropic_coefficient or [(0.0, 0.0), (1.0, 0.0)], dtype=float)
    T_all = np.concatenate([t.temperature for t in tests])
    fit_ea = opt.fit_activation and (T_all.max() - T_all.min() > 2.0)
    KT = K + 1 + int(opt.kinetics)  # tables: R0, RC pairs, kinetics
    ea_fixed = np.asarray(opt.activation_energy or [0.0] * KT, dtype=float)
    if ea_fixed.size != KT:
        raise ValueError(f"activation_energy: {KT} values (R0, each RC pair, kinetics), got {ea_fixed.size}")

    prep = []
    for t in tests:
        dt = np.diff(t.time, prepend=t.time[0])
        soc = t.soc(capacity)
        soc_prev = np.concatenate([[soc[0]], soc[:-1]])
        b = t.voltage - (t.temperature - opt.T_ref) * np.interp(soc, ent[:, 0], ent[:, 1])
        O = None if (opt.diffusion or ocv_given is not None) else ramp_basis(soc, onodes)
        prep.append(_Prepared(t, dt, soc, hat_basis(soc_prev, rnodes), O, b))
    n_total = sum(p.b.size for p in prep)
    unknown = sorted(set(opt.weights or {}) - set(names))
    if unknown:
        raise ValueError(f"weights: no test named {', '.join(unknown)}; tests: {', '.join(names)}")
    row_w = np.concatenate([np.full(p.b.size, np.sqrt((opt.weights or {}).get(p.test.name, 1.0)))
                            for p in prep])
    i_rms = float(np.sqrt(np.mean(np.concatenate([p.test.current for p in prep]) ** 2)))
    n_lin = M + J * KT
    # second-difference penalty rows on each R table
    D = np.diff(np.eye(J), 2, axis=0)
    lam = opt.smoothing * np.sqrt(n_total) * max(i_rms, 1e-12)
    pen = np.zeros((D.shape[0] * KT, n_lin))
    for k in range(KT):
        pen[k * D.shape[0]:(k + 1) * D.shape[0], M + k * J:M + (k + 1) * J] = lam * D
    lo = np.concatenate([[-np.inf], np.zeros(M - 1), np.full(J * KT, 1e-7)]) if M else \
        np.full(J * KT, 1e-7)
    hi = np.full(n_lin, np.inf)

    tb = opt.tau_bounds or TAU_BOUNDS[K]
    t0 = opt.tau_start or TAU_START[K]
    t0 = [min(max(s, lo_ * 1.01), hi_ / 1.01) for s, (lo_, hi_) in zip(t0, tb, strict=True)]

    n_ea = KT if fit_ea else 0
    n_diff = 2 if opt.diffusion else 0

    def unpack(theta):
        taus = np.exp(theta[:K])
        eas = theta[K:K + n_ea] * 1e4 if fit_ea else ea_fixed
        diff = tuple(np.exp(theta[K + n_ea:K + n_ea + 2])) if opt.diffusion else None
        i_s = float(np.exp(theta[K + n_ea + n_diff])) if opt.kinetics else None
        return taus, eas, diff, i_s

    def surface_soc(p, diff):
        if diff is None:
            return p.soc
        return p.soc - rc_filter(diff[1] / capacity * p.test.current, p.dt, diff[0])

    def design(theta):
        taus, eas, diff, i_s = unpack(theta)
        blocks, rhs = [], []
        for p in prep:
            t = p.test
            cols = [-p.H * (t.current * arrhenius(t.temperature, opt.T_ref, eas[0]))[:, None]]
            b = p.b
            if ocv_given is not None:
                b = b - np.interp(surface_soc(p, diff), ocv_given[:, 0], ocv_given[:, 1])
            else:
                cols.insert(0, p.O if p.O is not None else ramp_basis(surface_soc(p, diff), onodes))
            for k in range(K):
                u = p.H * (t.current * arrhenius(t.temperature, opt.T_ref, eas[k + 1]))[:, None]
                cols.append(-rc_filter(u, p.dt, taus[k]))
            if i_s is not None:
                f = arrhenius(t.temperature, opt.T_ref, eas[K + 1])
                cols.append(-p.H * (i_s * np.arcsinh(t.current * f / i_s))[:, None])
            blocks.append(np.concatenate(cols, axis=1))
            rhs.append(b)
        return np.concatenate(blocks, axis=0), np.concatenate(rhs)

    # column scaling keeps lsq_linear well conditioned (OCV ~ V, R columns ~ A)
    def solve_linear(theta):
        A, b = design(theta)
        Aa = np.concatenate([A * row_w[:, None], pen], axis=0)
        ba = np.concatenate([b * row_w, np.zeros(pen.shape[0])])
        scale = np.linalg.norm(Aa, axis=0)
        scale[scale == 0.0] = 1.0
        As = Aa / scale
        # R factor of A from the Cholesky factor of the (column-scaled) normal matrix and
        # Q^T b = R^-T A^T b: the bounded problem is solved on n x n rows, same minimiser
        from scipy.linalg import cho_factor, solve_triangular

        G = As.T @ As
        G[np.diag_indices_from(G)] += 1e-12 * np.trace(G) / n_lin
        R = np.triu(cho_factor(G, lower=False)[0])
        qtb = solve_triangular(R, As.T @ ba, trans="T")
        sol = lsq_linear(R, qtb, bounds=(lo * scale, hi * scale), method="bvls")
        x = sol.x / scale
        return x, Aa @ x - ba, A, b

    def outer(theta):
        return solve_linear(theta)[1]

    theta0 = np.log(t0)
    lb, ub = np.log([b_[0] for b_ in tb]), np.log([b_[1] for b_ in tb])
    if fit_ea:
        theta0 = np.concatenate([theta0, np.full(KT, 3.0)])
        lb = np.concatenate([lb, np.zeros(KT)])
        ub = np.concatenate([ub, np.full(KT, EA_MAX / 1e4)])
    if opt.diffusion:
        theta0 = np.concatenate([theta0, np.log(opt.diffusion_start)])
        lb = np.concatenate([lb, np.log([DIFFUSION_BOUNDS[0][0], DIFFUSION_BOUNDS[1][0]])])
        ub = np.concatenate([ub, np.log([DIFFUSION_BOUNDS[0][1], DIFFUSION_BOUNDS[1][1]])])
    if opt.kinetics:
        theta0 = np.concatenate([theta0, [np.log(opt.kinetics_start)]])
        lb = np.concatenate([lb, [np.log(KINETICS_BOUNDS[0])]])
        ub = np.concatenate([ub, [np.log(KINETICS_BOUNDS[1])]])
    res = least_squares(outer, theta0, bounds=(lb, ub), x_scale=1.0, diff_step=1e-4,
                        xtol=1e-8, ftol=1e-10, gtol=1e-10, max_nfev=100)
    theta = res.x
    x, _, A, b_all = solve_linear(theta)
    taus, eas, diff, i_s = unpack(theta)
    eas = np.where(eas < 1.0, 0.0, eas)  # bound-hugging round-off: no temperature effect

    ocv_vals = ramp_basis(onodes, onodes) @ x[:M] if M else ocv_given[:, 1]
    r_tabs = [x[M + k * J:M + (k + 1) * J] for k in range(KT)]
    pred_all = A @ x + (np.concatenate([p.b for p in prep]) - b_all)  # + the given OCV
    model_v, rms, mx = {}, {}, {}
    i = 0
    for p in prep:
        n = p.b.size
        v = pred_all[i:i + n] + (p.b - p.test.voltage) * -1.0  # add the entropic term back
        i += n
        model_v[p.test.name] = v
        r = v - p.test.voltage
        rms[p.test.name] = float(np.sqrt(np.mean(r**2)))
        mx[p.test.name] = float(np.max(np.abs(r)))
    order = np.argsort(taus)
    cell = {
        "capacity": round(capacity, 6),
        "T_ref": opt.T_ref,
        "ocv": [[float(s), round(float(v), 5)] for s, v in zip(onodes, ocv_vals, strict=True)],
        "entropic_coefficient": [[float(s), float(v)] for s, v in ent],
        "R0": [[float(s), float("%.5g" % r)] for s, r in zip(rnodes, r_tabs[0], strict=True)],
        "R0_activation_energy": float("%.5g" % eas[0]),
        "rc_pairs": [{"R": [[float(s), float("%.5g" % r)] for s, r in zip(rnodes, r_tabs[k + 1], strict=True)],
                      "tau": float("%.5g" % taus[k]),
                      "activation_energy": float("%.5g" % eas[k + 1])} for k in order],
    }
    if diff is not None:
        cell["diffusion"] = {"tau": float("%.5g" % diff[0]), "lag_1C": float("%.5g" % diff[1])}
    if i_s is not None:
        cell["kinetics"] = {"R": [[float(s), float("%.5g" % r)] for s, r in zip(rnodes, r_tabs[K + 1], strict=True)],
                            "current_scale": float("%.5g" % i_s),
                            "activation_energy": float("%.5g" % eas[K + 1])}
    return FitResult(cell=cell, capacity=capacity, capacity_source=cap_src, rms=rms, max_abs=mx,
                     model_voltage=model_v, tests=list(tests),
                     nonlinear={"tau": [float(taus[k]) for k in order],
                                "activation_energy_R0": float(eas[0]),
                                "activation_energy_rc": [float(eas[k + 1]) for k in order],
                                "activation_fitted": bool(fit_ea),
                                "diffusion": None if diff is None else
                                {"tau": float(diff[0]), "lag_1C": float(diff[1])},
                                "kinetics_current_scale": i_s},
                     optimizer={"message": str(res.message), "nfev": int(res.nfev),
                                "cost": float(res.cost)})


def simulate_ecm(cell: dict, test: CellTest) -> np.ndarray:
    """Voltage [V] of the ECM ``cell`` mapping under the test's current and temperature,
    with the fit's sampling convention (the forward model the fit inverts)."""
    from busbarfem.case.cells import CellModel
    from busbarfem.cells.ecm import CellParameters

    model = CellModel.model_validate(cell)
    p = CellParameters(model, 1)
    dt = np.diff(test.time, prepend=test.time[0])
    soc = test.soc(model.capacity)
    soc_prev = np.concatenate([[soc[0]], soc[:-1]])
    T = test.temperature
    soc_s = soc
    if p.diffusion is not None:
        soc_s = soc - rc_filter(p.diffusion.lag_1C / model.capacity * test.current, dt, p.diffusion.tau)
    ocv = p.ocv(soc_s, T)
    r0 = np.asarray(p.R0(soc_prev, T))
    v = ocv - r0 * test.current
    v = v - p.kinetic_overpotential(soc_prev, T, test.current)[0]
    rc_R = p.rc_R(soc_prev, T)
    for k in range(p.n_rc):
        v = v - rc_filter(rc_R[:, k] * test.current, dt, float(p.rc_tau[k]))
    return v


def write_cell_file(result: FitResult, path: str | Path, *, name: str, description: str,
                    sources: list[dict] | None = None, extra: dict | None = None,
                    header: str = "") -> Path:
    """Write a cell parameter file in the layout of the bundled presets
    (``name``, ``description``, ``sources``, ``cell``); ``extra`` adds/overrides cell keys
    (thermal properties, conductivities...). A case uses it with ``cell: {preset: path}``."""
    import yaml

    cell = dict(result.cell)
    cell.update(extra or {})
    doc = {"name": name, "description": description, "sources": list(sources or []),
           "fit": {"tests": {t.name: {"temperature_K": round(t.mean_temperature, 2),
                                      "samples": int(t.time.size),
                                      "rms_mV": round(1e3 * result.rms[t.name], 3),
                                      "max_abs_mV": round(1e3 * result.max_abs[t.name], 3)}
                             for t in result.tests},
                   "capacity_source": result.capacity_source},
           "cell": cell}
    text = yaml.safe_dump(doc, sort_keys=False, width=100, default_flow_style=None)
    path = Path(path)
    path.write_text(header + text, encoding="utf-8")
    return path


def write_report(result: FitResult, folder: str | Path) -> dict[str, Path]:
    """Write ``fit_report.md``, ``fit_report.json`` and one PNG per test (data vs model and
    residual) into ``folder``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    lines = ["# ECM fit report", "",
             f"Capacity: {result.capacity:.4f} Ah ({result.capacity_source}).",
             f"RC time constants [s]: {', '.join('%.4g' % t for t in result.nonlinear['tau'])}.",
             f"Activation energies [J/mol]: R0 {result.nonlinear['activation_energy_R0']:.4g}, RC "
             f"{', '.join('%.4g' % e for e in result.nonlinear['activation_energy_rc'])}"
             f" ({'fitted' if result.nonlinear['activation_fitted'] else 'fixed'}).",
             f"Optimiser: {result.optimizer['message']} ({result.optimizer['nfev']} evaluations).",
             "", "| test | T [K] | samples | RMS [mV] | max abs [mV] | plot |", "|---|---|---|---|---|---|"]
    for t in result.tests:
        png = folder / f"fit_{re.sub(r'[^A-Za-z0-9_.-]', '_', t.name)}.png"
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 5), sharex=True,
                                     gridspec_kw={"height_ratios": [3, 1]})
        th = t.time / 3600.0
        a1.plot(th, t.voltage, "k-", lw=1.0, label="data")
        a1.plot(th, result.model_voltage[t.name], "r--", lw=1.0, label="ECM fit")
        a1.set_ylabel("voltage [V]")
        a1.legend()
        a1.set_title(f"{t.name} ({t.mean_temperature:.1f} K): RMS {1e3 * result.rms[t.name]:.2f} mV")
        a2.plot(th, 1e3 * (result.model_voltage[t.name] - t.voltage), "b-", lw=0.8)
        a2.set_ylabel("model - data [mV]")
        a2.set_xlabel("time [h]")
        fig.tight_layout()
        fig.savefig(png, dpi=90)
        plt.close(fig)
        out[t.name] = png
        lines.append(f"| {t.name} | {t.mean_temperature:.2f} | {t.time.size} | "
                     f"{1e3 * result.rms[t.name]:.3f} | {1e3 * result.max_abs[t.name]:.3f} | "
                     f"[{png.name}]({png.name}) |")
    md = folder / "fit_report.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    js = folder / "fit_report.json"
    js.write_text(json.dumps({"capacity_Ah": result.capacity, "capacity_source": result.capacity_source,
                              "rms_V": result.rms, "max_abs_V": result.max_abs,
                              "nonlinear": result.nonlinear, "optimizer": result.optimizer,
                              "cell": result.cell}, indent=2), encoding="utf-8")
    out["md"], out["json"] = md, js
    return out


def add_cli(sub) -> None:
    """Register ``busbarfem fit-ecm`` on the CLI's subparsers."""
    f = sub.add_parser(
        "fit-ecm", help="identify an ECM cell file from pulse-test data or a PyBaMM model",
        description="Fit OCV(SOC), R0(SOC, T) and RC pairs to test CSVs (time, current, voltage, "
                    "temperature; + = discharge) or to virtual tests of a PyBaMM parameter set, and "
                    "write a cell file (use it with `cell: {preset: path/to/cell.yaml}`) and a fit report.")
    f.add_argument("data", nargs="*", help="test CSV files (several temperatures allowed)")
    f.add_argument("-o", "--output", required=True, help="cell parameter file to write (YAML)")
    f.add_argument("--report", default=None, help="report folder (default <output stem>_fit)")
    f.add_argument("--n-rc", type=int, default=2, help="RC pairs, 1-3 (default 2)")
    f.add_argument("--capacity", type=float, default=None, help="capacity [Ah] (default: from a "
                   "test that discharges from SOC 1 to --v-min)")
    f.add_argument("--v-min", type=float, default=None,
                   help="discharge cut-off [V] (default: with --pybamm the set's lower voltage cut-off, else 2.5)")
    f.add_argument("--base", default=None, help="preset name or cell file whose other fields "
                   "(thermal, conductivities, dU/dT) the output keeps")
    f.add_argument("--pybamm", default=None, metavar="PARAMETER_SET",
                   help="fit virtual tests of this PyBaMM parameter set instead of DATA (e.g. Chen2020)")
    f.add_argument("--pybamm-model", default="DFN", choices=["SPM", "SPMe", "DFN"])
    f.add_argument("--temperatures", default="283.15,298.15,313.15",
                   help="PyBaMM test temperatures [K], comma separated")
    f.add_argument("--diffusion", action="store_true",
                   help="also fit the surface-SOC diffusion lag (cell.diffusion: tau, lag_1C)")
    f.add_argument("--kinetics", action="store_true",
                   help="also fit a Butler-Volmer (asinh) overpotential (cell.kinetics); needs pulses "
                        "at several rates (with --pybamm: --pulse-rates)")
    f.add_argument("--electrode-ocv", action="store_true",
                   help="with --pybamm: take the OCV table from the parameter set's electrode OCPs "
                        "instead of fitting it")
    f.add_argument("--pulse-rates", default=None,
                   help="with --pybamm: HPPC pulse C-rates, comma separated (default 1)")
    f.add_argument("--cc-rates", default=None,
                   help="with --pybamm: also fit constant-current discharges from SOC 1 to the set's cut-off at "
                        "these C-rates (298.15 K), comma separated, e.g. 0.5,1,2")
    f.add_argument("--cc-weight", type=float, default=10.0,
                   help="weight of the --cc-rates discharges' squared residuals (pulse tests: 1; default 10)")
    f.add_argument("--overwrite", action="store_true",
                   help="replace an existing output file (and the report folder busbarfem wrote before)")
    f.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def run_cli(args) -> int:
    """``busbarfem fit-ecm``: returns the exit code; bad input raises CaseError (exit 2)."""
    from busbarfem.errors import CaseError

    from busbarfem.io.outdir import prepare

    out_path = Path(args.output)
    if not args.output.strip() or out_path.is_dir():
        raise CaseError(f"-o {args.output!r}: give the cell file to write, e.g. -o my_cell.yaml")
    if out_path.exists() and not args.overwrite:
        raise CaseError(f"-o {out_path} exists; use --overwrite to replace it, or -o another file")
    if not 1 <= args.n_rc <= 3:
        raise CaseError(f"--n-rc {args.n_rc}: 1, 2 or 3 RC pairs")
    report_dir = Path(args.report) if args.report else out_path.with_name(out_path.stem + "_fit")
    prepare(report_dir, args.overwrite)  # a folder busbarfem marks as its own (never a user folder)
    base: dict = {}
    if args.base:
        from busbarfem.case.cells import _parse_cell_yaml, load_preset

        try:
            if args.base.endswith((".yaml", ".yml")):
                # the case files' core schema: 1e-3 is a number, a YAML error a located ValueError
                base = (_parse_cell_yaml(Path(args.base).read_text(encoding="utf-8"), args.base) or {}).get("cell", {})
            else:
                base = load_preset(args.base).get("cell", {})
        except (OSError, ValueError) as exc:
            raise CaseError(f"--base: {exc}", file=args.base) from None
    weights: dict[str, float] = {}
    try:
        if args.pybamm:
            from busbarfem.cells.pybamm_tests import pybamm_tests

            temps = [float(x) for x in args.temperatures.split(",") if x.strip()]
            rates = None if not args.pulse_rates else [float(x) for x in args.pulse_rates.split(",") if x.strip()]
            if rates is not None and (not rates or min(rates) <= 0):
                raise CaseError(f"--pulse-rates {args.pulse_rates!r}: positive C-rates, e.g. 0.5,1,2")
            tests = pybamm_tests(args.pybamm, args.pybamm_model, temperatures=temps, pulse_rates=rates)
            if args.cc_rates:
                from busbarfem.cells.pybamm_tests import cc_discharge

                cc_rates = [float(x) for x in args.cc_rates.split(",") if x.strip()]
                if not cc_rates or min(cc_rates) <= 0 or not args.cc_weight > 0:
                    raise CaseError(f"--cc-rates {args.cc_rates!r} / --cc-weight {args.cc_weight:g}: "
                                    "positive C-rates, e.g. 0.5,1,2, and a positive weight")
                for c in cc_rates:
                    cc = cc_discharge(args.pybamm, args.pybamm_model, c, initial_soc=1.0)
                    cc.name = f"cc_{c:g}C_298.15K"
                    tests.append(cc)
                    weights[cc.name] = args.cc_weight
        else:
            if not args.data:
                raise CaseError("give test CSV files or --pybamm PARAMETER_SET")
            if args.electrode_ocv or args.pulse_rates or args.cc_rates:
                raise CaseError("--electrode-ocv, --pulse-rates and --cc-rates need --pybamm PARAMETER_SET")
            tests = [read_test_csv(p) for p in args.data]
        ocv = None
        if args.pybamm and args.electrode_ocv:
            from busbarfem.cells.pybamm_tests import electrode_ocv

            ocv = electrode_ocv(args.pybamm)
        v_min = args.v_min
        if v_min is None:  # the cut-off the PyBaMM tests discharge to, or the usual 2.5 V
            if args.pybamm:
                from busbarfem.cells.pybamm_tests import parameter_values

                v_min = float(parameter_values(args.pybamm, 298.15)["Lower voltage cut-off [V]"])
            else:
                v_min = 2.5
        opts = FitOptions(n_rc=args.n_rc, capacity=args.capacity, v_min=v_min,
                          entropic_coefficient=base.get("entropic_coefficient"),
                          diffusion=args.diffusion, kinetics=args.kinetics, ocv=ocv,
                          weights=weights or None)
        result = fit_ecm(tests, opts)
    except FitDataError as exc:
        raise CaseError(exc.message, file=exc.file, line=exc.line) from None
    except (ValueError, ImportError) as exc:
        raise CaseError(str(exc)) from None
    extra = {k: v for k, v in base.items() if k not in result.cell}
    src = f"PyBaMM {args.pybamm} {args.pybamm_model}" if args.pybamm else ", ".join(args.data)
    out = write_cell_file(result, args.output, name=Path(args.output).stem,
                          description=f"ECM fitted by busbarfem fit-ecm to {src}", extra=extra)
    report = write_report(result, report_dir)
    if not args.quiet:
        for t in result.tests:
            print(f"{t.name}: RMS {1e3 * result.rms[t.name]:.2f} mV, max {1e3 * result.max_abs[t.name]:.2f} mV")
        print(f"written: {out}\nwritten: {report['md']}")
    return 0
