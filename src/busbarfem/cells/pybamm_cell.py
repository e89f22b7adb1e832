"""N cells of one PyBaMM model advanced together: a batch cell model for a module.

``pip install busbarfem[pybamm]``. One PyBaMM lithium-ion model (SPM, SPMe or DFN) with a
parameter set and model options is built and discretised once, with the applied current
and the ambient (= cell, isothermal) temperature as input parameters. Its right-hand side
(and algebraic part) becomes one CasADi integrator in scaled time ``t / dt`` (``dt`` an
input, so one integrator serves every step length), mapped over all cells (``casadi.Function.map``), so N cells cost one call per step; this is the pattern
of liionpack (``solver_utils._mapped_step`` / ``_create_casadi_objects``: one
``integrator.map(N, ...)`` over the cells' states and inputs), written here against the
discretised model's exported CasADi objects.

Per step, with per-cell currents ``I`` (> 0 discharges) and temperatures ``T``,
:meth:`PyBaMMCells.step` returns the end-of-step terminal voltage, the total heat
(PyBaMM's ``Total heating [W]``) and its reversible part, and a linearisation of the step for the two-potential
coupling, ``V_end(I') = E - R I'`` near ``I``, from a second mapped integration at
``I + dI`` in the same call (E, R: effective EMF and resistance of the step, as
:func:`busbarfem.cells.ecm.step_source` gives for the ECM). :meth:`PyBaMMCells.commit`
accepts the step (at the currents finally solved, if given); :meth:`PyBaMMCells.step` alone
does not change the state, so a step can be retried with other currents.
"""

from __future__ import annotations

import time

import numpy as np

from busbarfem.cells.pybamm_tests import MODELS, _pybamm

CURRENT = "Current function [A]"
TEMPERATURE = "Ambient temperature [K]"
OUTPUTS = ("Voltage [V]", "Total heating [W]", "Battery open-circuit voltage [V]", "Reversible heating [W]")


class PyBaMMCells:
    """A batch of ``n_cells`` identical PyBaMM cells (each with its own state).

    The integrator runs in scaled time ``tau = t / dt`` on ``[0, 1]`` with ``dt`` an input,
    so one CasADi integrator serves every step length (event location and step control
    shorten steps freely); ``dt = 0`` gives the instantaneous response (the algebraic
    states made consistent with the new current, the differential ones unchanged).

    Args:
        n_cells: number of cells (0 is allowed: every call returns empty arrays).
        model: "SPM", "SPMe" or "DFN".
        parameter_set: PyBaMM parameter set name (e.g. "Chen2020").
        options: PyBaMM model options (the model is isothermal: ``T`` is an input).
        initial_soc: PyBaMM initial SOC of every cell (``set_initial_state``).
        dt: kept for compatibility (any step length works).
        current_perturbation: dI [A] of the linearisation.
    """

    def __init__(self, n_cells: int, model: str = "SPMe", parameter_set: str = "Chen2020",
                 options: dict | None = None, initial_soc: float = 1.0, dt: float = 10.0,
                 current_perturbation: float = 1e-3, rtol: float = 1e-8, atol: float = 1e-8):
        import casadi

        pybamm = _pybamm()
        if model not in MODELS:
            raise ValueError(f"unknown PyBaMM model {model!r}; valid: {', '.join(MODELS)}")
        self.n_cells = int(n_cells)
        self.dI = float(current_perturbation)
        self.rtol, self.atol = rtol, atol
        pv = pybamm.ParameterValues(parameter_set)
        pv.set_initial_state(initial_soc)
        pv.update({CURRENT: "[input]", TEMPERATURE: "[input]",
                   "Initial temperature [K]": float(pv["Ambient temperature [K]"])})
        self.parameter_values = pv
        self.capacity_Ah = float(pv["Nominal cell capacity [A.h]"])
        opts = {"calculate heat source for isothermal models": "true"}
        opts.update(options or {})
        pb_model = getattr(pybamm.lithium_ion, model)(opts)
        geometry = pb_model.default_geometry
        pv.process_model(pb_model)
        pv.process_geometry(geometry)
        mesh = pybamm.Mesh(geometry, pb_model.default_submesh_types, pb_model.default_var_pts)
        disc = pybamm.Discretisation(mesh, pb_model.default_spatial_methods)
        disc.process_model(pb_model)
        self.model = pb_model
        objs = pb_model.export_casadi_objects(list(OUTPUTS), input_parameter_order=[CURRENT, TEMPERATURE])
        t, x, z, p = objs["t"], objs["x"], objs["z"], objs["inputs"]
        self._nx, self._nz = x.shape[0], z.shape[0]
        outs = casadi.vertcat(*objs["variables"].values())
        self._outputs = casadi.Function("outputs", [t, x, z, p], [outs])
        # scaled time: d x / d tau = h f(tau h, x, z, p), tau in [0, 1]; h (the step) is an input
        rhs = casadi.Function("rhs", [t, x, z, p], [objs["rhs"]])
        tau, h = casadi.MX.sym("tau"), casadi.MX.sym("h")
        xs, zs, ps = casadi.MX.sym("x", self._nx), casadi.MX.sym("z", self._nz), casadi.MX.sym("p", p.shape[0])
        problem = {"t": tau, "x": xs, "p": casadi.vertcat(ps, h), "ode": h * rhs(tau * h, xs, zs, ps)}
        method = "cvodes"
        if self._nz:
            alg = casadi.Function("alg", [t, x, z, p], [objs["algebraic"]])
            problem.update({"z": zs, "alg": alg(tau * h, xs, zs, ps)})
            method = "idas"
        self._F = casadi.integrator("F", method, problem, 0.0, [1.0],
                                    {"reltol": rtol, "abstol": atol, "show_eval_warnings": False})
        self._maps: dict[int, tuple] = {}
        T0 = float(pv["Initial temperature [K]"])
        y0 = pb_model.concatenated_initial_conditions.evaluate(0, inputs={CURRENT: 0.0, TEMPERATURE: T0})
        y0 = np.asarray(y0, dtype=float).ravel()
        self.x = np.tile(y0[:self._nx, None], (1, self.n_cells))
        self.z = np.tile(y0[self._nx:, None], (1, self.n_cells))
        self.time_in_model = 0.0  # wall time spent in the cell models [s]
        self._pending = None

    def _mapped(self, n: int):
        """The integrator and the outputs mapped over ``n`` columns."""
        if n not in self._maps:
            self._maps[n] = (self._F.map(n, "serial"), self._outputs.map(n))
        return self._maps[n]

    def _integrate(self, x0, z0, current, T, dt: float):
        """End states and outputs of columns ``x0``/``z0`` at constant currents over ``dt``."""
        n = x0.shape[1]
        F, outputs = self._mapped(n)
        p = np.vstack([current, T])
        args = {"x0": x0, "p": np.vstack([p, np.full((1, n), float(dt))])}
        if self._nz:
            args["z0"] = z0
        sol = F(**args)
        xf = np.asarray(sol["xf"], dtype=float).reshape(self._nx, n)
        zf = np.asarray(sol["zf"], dtype=float).reshape(self._nz, n) if self._nz else np.zeros((0, n))
        out = np.asarray(outputs(float(dt), xf, zf, p), dtype=float).reshape(len(OUTPUTS), n)
        return xf, zf, out

    def step(self, current, temperature, dt: float) -> dict[str, np.ndarray]:
        """Integrate every cell over ``dt`` at constant ``current`` [A] and ``temperature`` [K].

        Returns per-cell arrays: ``voltage`` [V], ``heat`` [W] (total) and ``heat_reversible``
        [W] at the end of the step, ``ocv`` [V], and the step's linearisation ``E`` [V],
        ``R`` [ohm] with ``voltage = E - R current``, and ``dheat_dI``, ``dheat_reversible_dI``
        [W/A] (the heat at another current ``I'`` is ``heat + dheat_dI (I' - I)``). The
        state moves only with :meth:`commit`.
        """
        n = self.n_cells
        cur = np.array(np.broadcast_to(np.asarray(current, dtype=float), (n,)))
        T = np.array(np.broadcast_to(np.asarray(temperature, dtype=float), (n,)))
        if n == 0:
            e = np.zeros(0)
            self._pending = (self.x, self.z, self.x, self.z, cur, T, float(dt))
            return {k: e for k in ("voltage", "heat", "heat_reversible", "ocv", "R", "E", "dheat_dI",
                                   "dheat_reversible_dI")}
        tic = time.perf_counter()
        xf, zf, out = self._integrate(np.hstack([self.x, self.x]), np.hstack([self.z, self.z]),
                                      np.concatenate([cur, cur + self.dI]), np.concatenate([T, T]), dt)
        self.time_in_model += time.perf_counter() - tic
        v, heat, ocv, rev = out[0], out[1], out[2], out[3]
        R = -(v[n:] - v[:n]) / self.dI
        self._pending = (xf[:, :n].copy(), zf[:, :n].copy(), xf[:, n:].copy(), zf[:, n:].copy(), cur, T, float(dt))
        return {"voltage": v[:n], "heat": heat[:n], "heat_reversible": rev[:n], "ocv": ocv[:n], "R": R,
                "E": v[:n] + R * cur, "dheat_dI": (heat[n:] - heat[:n]) / self.dI,
                "dheat_reversible_dI": (rev[n:] - rev[:n]) / self.dI}

    def commit(self, current=None, interpolate_within: float = 10.0) -> None:
        """Accept the last :meth:`step`: its end states become the cells' states.

        Args:
            current: the currents the step was finally solved with (None: the step's own).
                Cells within ``interpolate_within`` x dI of the step's current take the end
                state interpolated linearly between the step's two integrations (error second
                order in the difference); the others are integrated again at their current.
        """
        if self._pending is None:
            raise RuntimeError("commit() without a step()")
        x0, z0, x1, z1, cur, T, dt = self._pending
        self._pending = None
        if current is None or self.n_cells == 0:
            self.x, self.z = x0, z0
            return
        current = np.asarray(current, dtype=float)
        w = (current - cur) / self.dI
        near = np.abs(w) <= interpolate_within
        x, z = x0 + (x1 - x0) * w, z0 + (z1 - z0) * w
        far = np.nonzero(~near)[0]
        if far.size:
            tic = time.perf_counter()
            xf, zf, _ = self._integrate(self.x[:, far], self.z[:, far], current[far], T[far], dt)
            self.time_in_model += time.perf_counter() - tic
            x[:, far], z[:, far] = xf, zf
        self.x, self.z = x, z
