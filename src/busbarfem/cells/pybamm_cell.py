"""N cells of one PyBaMM model advanced together: a batch cell model for a module.

``pip install busbarfem[pybamm]``. One PyBaMM lithium-ion model (SPM, SPMe or DFN) with a
parameter set and model options is built and discretised once, with the applied current
and the ambient (= cell, isothermal) temperature as input parameters. Its right-hand side
(and algebraic part) becomes one CasADi integrator over a step ``dt``, mapped over all
cells (``casadi.Function.map``), so N cells cost one call per step; this is the pattern
of liionpack (``solver_utils._mapped_step`` / ``_create_casadi_objects``: one
``integrator.map(N, ...)`` over the cells' states and inputs), written here against the
discretised model's exported CasADi objects.

Per step, with per-cell currents ``I`` (> 0 discharges) and temperatures ``T``,
:meth:`PyBaMMCells.step` returns the end-of-step terminal voltage, the total heat
(PyBaMM's ``Total heating [W]``), and a linearisation of the step for the two-potential
coupling, ``V_end(I') = E - R I'`` near ``I``, from a second mapped integration at
``I + dI`` in the same call (E, R: effective EMF and resistance of the step, as
:func:`busbarfem.cells.ecm.step_source` gives for the ECM). :meth:`PyBaMMCells.commit`
accepts the step; :meth:`PyBaMMCells.step` alone does not change the state, so a step can
be retried with other currents.
"""

from __future__ import annotations

import time

import numpy as np

from busbarfem.cells.pybamm_tests import MODELS, _pybamm

CURRENT = "Current function [A]"
TEMPERATURE = "Ambient temperature [K]"
OUTPUTS = ("Voltage [V]", "Total heating [W]", "Battery open-circuit voltage [V]")


class PyBaMMCells:
    """A batch of ``n_cells`` identical PyBaMM cells (each with its own state).

    Args:
        n_cells: number of cells.
        model: "SPM", "SPMe" or "DFN".
        parameter_set: PyBaMM parameter set name (e.g. "Chen2020").
        options: PyBaMM model options (the model is isothermal: ``T`` is an input).
        initial_soc: PyBaMM initial SOC of every cell (``set_initial_state``).
        dt: step length [s] (the integrator is built for it; :meth:`step` may give another,
            which builds and caches one more).
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
        self._objs = objs
        self._t, self._x, self._z, self._p = objs["t"], objs["x"], objs["z"], objs["inputs"]
        self._nx = self._x.shape[0]
        self._nz = self._z.shape[0]
        outs = casadi.vertcat(*objs["variables"].values())
        self._outputs = casadi.Function("outputs", [self._t, self._x, self._z, self._p], [outs])
        self._outputs_map = self._outputs.map(2 * self.n_cells)
        T0 = float(pv["Initial temperature [K]"])
        y0 = pb_model.concatenated_initial_conditions.evaluate(0, inputs={CURRENT: 0.0, TEMPERATURE: T0})
        y0 = np.asarray(y0, dtype=float).ravel()
        self.x = np.tile(y0[:self._nx, None], (1, self.n_cells))
        self.z = np.tile(y0[self._nx:, None], (1, self.n_cells))
        self._integrators: dict[float, object] = {}
        self._integrator(dt)
        self.time_in_model = 0.0  # wall time spent in the cell models [s]
        self._pending = None

    def _integrator(self, dt: float):
        """The CasADi integrator over ``[0, dt]``, mapped over 2 N columns (I and I + dI)."""
        import casadi

        key = round(float(dt), 9)
        if key not in self._integrators:
            problem = {"t": self._t, "x": self._x, "p": self._p, "ode": self._objs["rhs"]}
            method = "cvodes"
            if self._nz:
                problem.update({"z": self._z, "alg": self._objs["algebraic"]})
                method = "idas"
            f = casadi.integrator("F", method, problem, 0.0, [float(dt)],
                                  {"reltol": self.rtol, "abstol": self.atol, "show_eval_warnings": False})
            self._integrators[key] = f.map(2 * self.n_cells, "serial")
        return self._integrators[key]

    def step(self, current, temperature, dt: float) -> dict[str, np.ndarray]:
        """Integrate every cell over ``dt`` at constant ``current`` [A] and ``temperature`` [K].

        Returns per-cell arrays: ``voltage`` [V] and ``heat`` [W] at the end of the step,
        ``ocv`` [V], and the step's linearisation ``E`` [V], ``R`` [ohm] with
        ``voltage = E - R current``. The state moves only with :meth:`commit`.
        """
        n = self.n_cells
        cur = np.broadcast_to(np.asarray(current, dtype=float), (n,))
        T = np.broadcast_to(np.asarray(temperature, dtype=float), (n,))
        p = np.vstack([np.concatenate([cur, cur + self.dI]), np.concatenate([T, T])])
        x0 = np.hstack([self.x, self.x])
        tic = time.perf_counter()
        args = {"x0": x0, "p": p}
        if self._nz:
            args["z0"] = np.hstack([self.z, self.z])
        sol = self._integrator(dt)(**args)
        xf = np.asarray(sol["xf"], dtype=float)
        zf = np.asarray(sol["zf"], dtype=float) if self._nz else np.zeros((0, 2 * n))
        out = np.asarray(self._outputs_map(float(dt), xf, zf, p), dtype=float)
        self.time_in_model += time.perf_counter() - tic
        v, heat, ocv = out[0], out[1], out[2]
        R = -(v[n:] - v[:n]) / self.dI
        self._pending = (xf[:, :n].copy(), zf[:, :n].copy())
        return {"voltage": v[:n], "heat": heat[:n], "ocv": ocv[:n], "R": R, "E": v[:n] + R * cur}

    def commit(self) -> None:
        """Accept the last :meth:`step`: its end states become the cells' states."""
        if self._pending is None:
            raise RuntimeError("commit() without a step()")
        self.x, self.z = self._pending
        self._pending = None
