r"""PyBaMM electrochemical cells in the 3D module (``cell.model: pybamm``).

Every cell region ``cell_<s>_<p>`` carries one PyBaMM model (SPM, SPMe or DFN, one
parameter set and options, ``busbarfem[pybamm]``), batched in
:class:`busbarfem.cells.pybamm_cell.PyBaMMCells` (one CasADi integrator mapped over the
cells). Per thermal step of length ``dt``:

``prepare``
    each cell's model is integrated over ``dt`` at its current guess ``I_0`` (the
    start-of-step current, or the latest solve's within coupling iterations) and at
    ``I_0 + dI``, at its 3D mean temperature; the two end voltages give the step's
    linearisation ``V_end(I) = E - R I``, written as the MSMD coefficients
    ``g = 1/(R Vol)``, ``E`` (as the ECM's :func:`busbarfem.cells.ecm.step_source` does);
``measure``
    the solved cell currents ``I_c``; the cell heat (PyBaMM's total heating, split into
    its reversible part and the rest, linearised in the current the same way) is spread
    uniformly over the cell volume as the ``irreversible`` and ``reversible`` sources;
``advance``
    the step is committed at ``I_c`` (the end state interpolated between the two
    integrations when ``I_c`` is within 10 dI of the guess, else integrated again).

The PyBaMM model is isothermal: its temperature (PyBaMM's ambient temperature, an input)
is the cell's 3D mean temperature at the start of the step; the 3D heat equation is the
thermal model. With MPI the cells are distributed round-robin over the ranks (each rank
integrates its own cells; the per-cell results are gathered on every rank).
The wall time spent in the cell models is ``timings_s.cell_model`` of summary.json (rank 0's
cells; a subset of ``cell_update``).
"""

from __future__ import annotations

import time

import dolfinx_solver  # noqa: F401
import numpy as np

from dolfinx import fem

from busbarfem.analysis.regions import RegionIntegrator
from busbarfem.coupling.contributions import Contribution, register
from busbarfem.mesh import MeshBundle
from busbarfem.physics.cells import cell_region_names, set_cell_layout

_STEP_KEYS = ("E", "R", "heat", "dheat_dI", "heat_reversible", "dheat_reversible_dI", "ocv")


class PyBaMMCellCoupling(Contribution):
    """PyBaMM cells as the cell model of the 3D module (see the module docstring).

    Args:
        bundle: mesh and regions (cell regions have kind ``"cell"``).
        cell_model: the case's ``cell:`` section (``model: pybamm``).
    """

    name = "pybamm_cells"
    provides_cells = True
    summary_key = "cells"

    def __init__(self, bundle: MeshBundle, cell_model):
        from busbarfem.cells.pybamm_cell import PyBaMMCells

        self.bundle, self.model = bundle, cell_model
        set_cell_layout(self, bundle)
        n = len(self.names)
        self.comm = bundle.comm
        rank, size = self.comm.rank, self.comm.size
        self._mine = np.arange(rank, n, size)              # this rank's cells
        self._owner = [np.arange(r, n, size) for r in range(size)]
        spec = cell_model.pybamm
        self.batch = PyBaMMCells(len(self._mine), spec.model, spec.parameter_set, spec.pybamm_options(),
                                 initial_soc=cell_model.initial_soc, current_perturbation=spec.current_perturbation,
                                 rtol=spec.rtol, atol=spec.atol)
        self._capacity = float(cell_model.capacity)
        self._soc = np.full(n, float(cell_model.initial_soc))
        self.current = np.zeros(n)
        self._I0 = np.zeros(n)
        self.T_mean = np.full(n, float(cell_model.T_ref))
        self._lin = {k: np.zeros(n) for k in _STEP_KEYS}
        self._V = np.zeros(n)
        self.timings = None
        self._measured = False
        self.el = self.T = None

    # ---------------------------------------------------------------- set-up
    def setup(self, model) -> None:
        """Cell volumes, the DG0 heat densities and the integrals of T and j per cell."""
        self.el, self.T = model.electrical, model.thermal.T_k
        self.timings = model.timings
        self._model = model
        b = self.bundle
        vols = RegionIntegrator(b, fem.Constant(b.mesh, 1.0)).by_region()
        self.volumes = np.array([vols[n] for n in self.names])
        self._cells = [b.cells_of(n) for n in self.names]
        self._T_int = RegionIntegrator(b, self.T)
        self._j_int = RegionIntegrator(b, self.el.transfer_current(), regions=self.names)  # g = 0 outside the cells
        self.q_irr = fem.Function(self.el.Q0, name="q_cell_irreversible")
        self.q_rev = fem.Function(self.el.Q0, name="q_cell_reversible")
        self.update_temperature()
        self.prepare(0.0)

    def heat_sources(self) -> dict:
        """The PyBaMM cell heat per unit volume: reversible, and the rest (irreversible)."""
        return {"irreversible": self.q_irr, "reversible": self.q_rev}

    def heat_support(self) -> dict:
        """Both heat sources are written on the cell bodies only (zero elsewhere)."""
        return {"irreversible": tuple(self.names), "reversible": tuple(self.names)}

    # ---------------------------------------------------------------- per step
    def update_temperature(self) -> None:
        """Cell mean temperatures from the temperature iterate."""
        tot = self._T_int.by_region()
        self.T_mean = np.array([tot[n] for n in self.names]) / self.volumes

    def _gather(self, local: dict) -> dict:
        """Per-cell arrays of every rank's cells, on every rank."""
        if self.comm.size == 1:
            return {k: np.asarray(local[k], dtype=float).copy() for k in _STEP_KEYS}
        parts = self.comm.allgather({k: np.asarray(local[k], dtype=float) for k in _STEP_KEYS})
        out = {k: np.zeros(len(self.names)) for k in _STEP_KEYS}
        for idx, part in zip(self._owner, parts):
            for k in _STEP_KEYS:
                out[k][idx] = part[k]
        return out

    def prepare(self, dt: float, current_start=None) -> None:
        """Integrate the cells over ``dt`` at the current guess (and + dI) and write the step's
        linearisation ``g = 1/(R Vol)``, ``E`` into the electrical coefficients.

        The guess is the last solved current (the step's start current after a restore; the
        previous iterate within coupling iterations); ``current_start`` (held-voltage steps)
        is not needed: the cell current is taken constant over the step at its solved value.
        """
        self.update_temperature()
        self._I0 = self.current.copy()
        if not self._measured:  # the very first solve: guess the load's current, shared equally
            target = self._model.controller.target(0.0) if hasattr(self._model, "controller") else None
            if target is not None and target.mode == "current":
                self._I0[:] = target.value / self.n_parallel
        self._dt = float(dt)
        tic = time.perf_counter()
        mine = self._mine
        local, failed = None, None
        try:
            local = self.batch.step(self._I0[mine], self.T_mean[mine], self._dt)
        except RuntimeError as exc:  # CasADi: the integrator failed (e.g. a cell driven past its limits)
            failed = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self._check_failure(failed, dt)
        self._lin = self._gather(local)
        self._tick(tic)
        el, lin = self.el, self._lin
        R = lin["R"]
        if np.any(~np.isfinite(R)) or np.any(R <= 0.0) or np.any(~np.isfinite(lin["E"])):
            from busbarfem.errors import SolveError

            bad = [self.names[i] for i in np.nonzero(~(np.isfinite(R) & (R > 0.0)))[0]]
            raise SolveError(f"PyBaMM cell step gave a non-positive or non-finite resistance for "
                             f"{', '.join(bad[:4]) or 'some cells'} (dt = {dt:g} s)", reason="cell model failed")
        g = 1.0 / (R * self.volumes)
        for i, cells in enumerate(self._cells):
            el.g.x.array[cells] = g[i]
            el.emf.x.array[cells] = lin["E"][i]
            el.ocv.x.array[cells] = lin["ocv"][i]
            el.dudt.x.array[cells] = 0.0
        for f in (el.g, el.emf, el.ocv, el.dudt):
            f.x.scatter_forward()
        self._V = lin["E"] - R * self.current

    def measure(self) -> None:
        """Cell currents of the solve; the cell heat at those currents into the DG0 sources."""
        tot = self._j_int.by_region()
        self.current = np.array([tot[n] for n in self.names])
        self._measured = True
        lin, I = self._lin, self.current
        dI = I - self._I0
        self._V = lin["E"] - lin["R"] * I
        q_tot = lin["heat"] + lin["dheat_dI"] * dI
        q_rev = lin["heat_reversible"] + lin["dheat_reversible_dI"] * dI
        # the heat-consistent OCV: I ocv = V I + heat (PyBaMM's heat leaves out the energy of
        # the solid-concentration gradients, so it is below I (OCV_bulk - V)); it is what the
        # electrochemical-power column and the electrical energy residual see
        eps = 1e-6
        ocv = np.where(np.abs(I) > eps, self._V + q_tot * I / (I * I + eps * eps), lin["ocv"])
        el = self.el
        for i, cells in enumerate(self._cells):
            self.q_irr.x.array[cells] = (q_tot[i] - q_rev[i]) / self.volumes[i]
            self.q_rev.x.array[cells] = q_rev[i] / self.volumes[i]
            el.ocv.x.array[cells] = ocv[i]
        for f in (self.q_irr, self.q_rev, el.ocv):
            f.x.scatter_forward()

    def advance(self, t: float, dt: float, T=None, solution=None) -> None:
        """Commit the cells' step at the solved currents; coulomb-count the SOC."""
        tic = time.perf_counter()
        failed = None
        try:
            self.batch.commit(self.current[self._mine])
        except RuntimeError as exc:
            failed = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self._check_failure(failed, dt)
        self._tick(tic)
        self._soc = self._soc - self.current * dt / (3600.0 * self._capacity)

    def _check_failure(self, failed: str | None, dt: float) -> None:
        """Raise SolveError on every rank if the cell integration failed on any."""
        failures = [f for f in self.comm.allgather(failed) if f] if self.comm.size > 1 else ([failed] if failed else [])
        if failures:
            from busbarfem.errors import SolveError

            raise SolveError(f"PyBaMM cell integration over dt = {dt:g} s failed ({failures[0]}); the cells "
                             "may be driven past their voltage or concentration limits (check the load's "
                             "cut-offs)", reason="cell model failed")

    def _tick(self, tic: float) -> None:
        if self.timings is not None:
            self.timings.tick("cell_model", tic)

    # ---------------------------------------------------------------- retry / restart
    def snapshot(self) -> dict:
        """Cell states, currents and the last linearisation at the start of a step."""
        return {"x": self.batch.x.copy(), "z": self.batch.z.copy(), "soc": self._soc.copy(),
                "current": self.current.copy(), "T_mean": self.T_mean.copy(), "V": self._V.copy(),
                "lin": {k: v.copy() for k, v in self._lin.items()}}

    def restore(self, snap: dict) -> None:
        """Back to a :meth:`snapshot`."""
        self.batch.x, self.batch.z = snap["x"].copy(), snap["z"].copy()
        self._soc, self.current = snap["soc"].copy(), snap["current"].copy()
        self.T_mean, self._V = snap["T_mean"].copy(), snap["V"].copy()
        self._measured = True
        self._lin = {k: v.copy() for k, v in snap["lin"].items()}

    def _all_states(self) -> tuple[list, list]:
        """The PyBaMM states of every cell (gathered from their ranks), cell order."""
        parts = self.comm.allgather((self.batch.x, self.batch.z))
        n = len(self.names)
        x = np.zeros((parts[0][0].shape[0], n))
        z = np.zeros((parts[0][1].shape[0], n))
        for idx, (xr, zr) in zip(self._owner, parts):
            x[:, idx], z[:, idx] = xr, zr
        return x.T.tolist(), z.T.tolist()

    def state_dict(self) -> dict:
        """Every cell's PyBaMM state vector, SOC and current for a checkpoint."""
        x, z = self._all_states()
        return {"model": self.model.pybamm.model, "parameter_set": self.model.pybamm.parameter_set,
                "x": x, "z": z, "soc": self._soc.tolist(), "current": self.current.tolist()}

    def load_state_dict(self, state) -> None:
        """Restore :meth:`state_dict`'s states (any number of ranks)."""
        if state is None:
            return
        spec = self.model.pybamm
        if (state.get("model"), state.get("parameter_set")) != (spec.model, spec.parameter_set):
            raise ValueError(f"the checkpoint holds {state.get('model')}/{state.get('parameter_set')} "
                             f"PyBaMM cells, the case {spec.model}/{spec.parameter_set}")
        x, z = np.asarray(state["x"], dtype=float), np.asarray(state["z"], dtype=float)
        if x.shape != (len(self.names), self.batch.x.shape[0]):
            raise ValueError(f"the checkpoint's PyBaMM states have shape {x.shape}, the case's cells "
                             f"{(len(self.names), self.batch.x.shape[0])} (other options or mesh points)")
        self.batch.x = np.ascontiguousarray(x[self._mine].T)
        self.batch.z = np.ascontiguousarray(z[self._mine].T).reshape(self.batch.z.shape)
        self._soc = np.asarray(state["soc"], dtype=float)
        self.current = np.asarray(state["current"], dtype=float)
        self._measured = True

    # ---------------------------------------------------------------- load controller, outputs
    @property
    def soc(self) -> np.ndarray:
        """Cell states of charge [-] (coulomb counted against the capacity)."""
        return self._soc

    @property
    def capacity_Ah(self) -> np.ndarray:
        """Cell capacities [Ah] (the parameter set's nominal capacity unless given)."""
        return np.full(len(self.names), self._capacity)

    def cell_voltages(self) -> np.ndarray:
        """Cell terminal voltages at the end of the last solved step, E - R I [V]."""
        return self._V.copy()

    def R0(self) -> np.ndarray:
        """The last step's linearised cell resistance R [ohm]."""
        return self._lin["R"].copy()

    def columns(self, heat: dict) -> dict:
        """Per-cell I, V, SOC, T_mean, q_irr, q_rev of the time series."""
        from busbarfem.coupling.records import cell_columns

        out = {}
        for i, n in enumerate(self.names):
            out.update(cell_columns(n, self.current[i], self._V[i], self._soc[i], self.T_mean[i],
                                    heat["irreversible"][n], heat["reversible"][n]))
        return out

    def summary(self, heat: dict) -> dict:
        """Per-cell final values of summary.json's ``cells`` (``R0_ohm``: the step's R)."""
        from busbarfem.coupling.records import cell_summary

        R = self.R0()
        return {n: cell_summary(self.current[i], self._V[i], self._soc[i], self.T_mean[i], heat["irreversible"][n],
                                heat["reversible"][n], R[i], heat["total"][n], joule=heat["joule"][n])
                for i, n in enumerate(self.names)}


@register("pybamm_cells")
def _pybamm_cells(case, bundle):
    """Applies to meshes with cell regions when ``cell.model`` is ``pybamm``."""
    if not cell_region_names(bundle) or case.cell is None or case.cell.model != "pybamm":
        return None
    return PyBaMMCellCoupling(bundle, case.cell)
