r"""Bridge between the 3D MSMD cell volumes and the lumped ECM states.

Each cell region ``cell_<s>_<p>`` gets piecewise-constant coefficients from its ECM state
(frozen within a time step, operator splitting):

    g_c = 1 / (R0_c(SOC_c, T_c) Vol_c),   E_c = OCV_c(SOC_c, T_c) - sum_k V_RC,k,c,
    OCV_c, dU/dT_c,

so that the transfer current ``j = g_c (E_c - (phi+ - phi-))`` integrates to the cell
current ``I_c = (E_c - <phi+ - phi->) / R0_c``. The Bernardi heat density in the cell is

    q = j (OCV_c - (phi+ - phi-)) - j T dU/dT_c      (+ collector Joule heat, added by the
                                                      electrical problem)

After the thermal step the ECM states advance with ``I_c`` (exact RC update, coulomb
counting). Cells are ordered (stage, parallel) as in :mod:`busbarfem.cells.ecm`.
"""

from __future__ import annotations

import dolfinx_solver  # noqa: F401
import numpy as np

from dolfinx import fem

from busbarfem.analysis.regions import RegionIntegrator
from busbarfem.cells import ecm
from busbarfem.coupling.contributions import Contribution, register
from busbarfem.mesh import MeshBundle


def cell_region_names(bundle: MeshBundle) -> list[str]:
    """Names of the battery-cell volume regions of a mesh."""
    return [n for n in bundle.volume_names() if bundle.regions[n].kind == "cell"]


def set_cell_layout(obj, bundle: MeshBundle) -> None:
    """Give a cell contribution its layout: ``names`` ordered by (stage, parallel), their
    ``stages`` and ``parallels`` (1-based arrays) and the module's ``n_series``/``n_parallel``."""
    regs = sorted((bundle.regions[n] for n in cell_region_names(bundle)), key=lambda r: (r.stage, r.parallel))
    obj.names = [r.name for r in regs]
    obj.stages = np.array([r.stage for r in regs])
    obj.parallels = np.array([r.parallel for r in regs])
    obj.n_series = int(obj.stages.max())
    obj.n_parallel = int(obj.parallels.max())


class CellCoupling(Contribution):
    """Per-cell ECM states and their DG0 images on the mesh: the ECM cells and their
    Bernardi heat as a physics contribution (:mod:`busbarfem.coupling.contributions`).

    Args:
        bundle: mesh and regions (cell regions have kind ``"cell"``).
        cell_model: the case's ``cell:`` section.
        el: the ElectricalProblem (its DG0 coefficient Functions are filled here); if
            given with ``T`` the contribution is set up at once, else by :meth:`setup`.
        T: the temperature Function used for cell mean temperatures.
    """

    name = "ecm_cells"
    provides_cells = True
    summary_key = "cells"

    def __init__(self, bundle: MeshBundle, cell_model, el=None, T: fem.Function | None = None):
        self.bundle, self.model = bundle, cell_model
        set_cell_layout(self, bundle)
        self.params = ecm.CellParameters(cell_model, len(self.names))
        self.state = ecm.ECMState.initial(self.params)
        self.current = np.zeros(len(self.names))
        self.el = self.T = None
        if el is not None and T is not None:
            self._attach(el, T)

    # ---------------------------------------------------------------- contribution hooks
    def setup(self, model) -> None:
        """Attach to the model's electrical problem and temperature iterate."""
        self._attach(model.electrical, model.thermal.T_k)

    def _attach(self, el, T: fem.Function) -> None:
        bundle = self.bundle
        self.el, self.T = el, T
        one = fem.Constant(bundle.mesh, 1.0)
        vols = RegionIntegrator(bundle, one).by_region()
        self.volumes = np.array([vols[n] for n in self.names])
        self._cells = [bundle.cells_of(n) for n in self.names]
        self._T_int = RegionIntegrator(bundle, T)
        # j = g (E - s (phi+ - phi-)) is zero outside the cell bodies (g = 0 there)
        self._j_int = RegionIntegrator(bundle, el.transfer_current(), regions=self.names)
        self._heat_int = None  # the irreversible / reversible heat integrators, made by heat()
        self.update_temperature()
        self.refresh()

    def heat_sources(self) -> dict:
        """Bernardi heat: the irreversible and the reversible (entropic) density."""
        return {"irreversible": self.irreversible_heat(), "reversible": self.reversible_heat()}

    def heat_support(self) -> dict:
        """Both heat sources vanish outside the cell bodies (no transfer current there)."""
        return {"irreversible": tuple(self.names), "reversible": tuple(self.names)}

    def prepare(self, dt: float, current_start=None) -> None:
        """Cell mean temperatures, then the step's coefficients (:meth:`refresh`)."""
        self.update_temperature()
        self.refresh(dt, current_start)

    def measure(self) -> None:
        """Cell currents of the solve (:meth:`measure_currents`)."""
        self.measure_currents()

    def advance(self, t: float, dt: float, T=None, solution=None) -> None:
        """Advance SOC and RC states by ``dt`` with the measured currents."""
        self.state = ecm.advance(self.params, self.state, self.current, dt, self._T_step,
                                 self._current_start)

    def snapshot(self) -> dict:
        """Cell states at the start of a step."""
        return {"state": self.state.copy(), "current": self.current.copy(), "T_mean": self.T_mean.copy()}

    def restore(self, snap: dict) -> None:
        """Back to a :meth:`snapshot` (and its instantaneous coefficients)."""
        self.state, self.current, self.T_mean = snap["state"].copy(), snap["current"].copy(), snap["T_mean"].copy()
        self.refresh()

    def state_dict(self) -> dict:
        """The ECM states (SOC, RC voltages) for a checkpoint."""
        return self.state.to_dict()

    def load_state_dict(self, state) -> None:
        """Restore the ECM states of :meth:`state_dict`."""
        if state is not None:
            self.state = ecm.ECMState.from_dict(state)

    @property
    def soc(self) -> np.ndarray:
        """Cell states of charge [-]."""
        return self.state.soc

    @property
    def capacity_Ah(self) -> np.ndarray:
        """Cell capacities [Ah]."""
        return self.state.capacity_Ah

    def columns(self, heat: dict) -> dict:
        """Per-cell I, V, SOC, T_mean, q_irr, q_rev of the time series."""
        from busbarfem.coupling.records import cell_columns

        V = self.cell_voltages()
        out = {}
        for i, n in enumerate(self.names):
            out.update(cell_columns(n, self.current[i], V[i], self.state.soc[i], self.T_mean[i],
                                    heat["irreversible"][n], heat["reversible"][n]))
        return out

    def summary(self, heat: dict) -> dict:
        """Per-cell final values of summary.json's ``cells``."""
        from busbarfem.coupling.records import cell_summary

        V, R0 = self.cell_voltages(), self.R0()
        return {n: cell_summary(self.current[i], V[i], self.state.soc[i], self.T_mean[i], heat["irreversible"][n],
                                heat["reversible"][n], R0[i], heat["total"][n], joule=heat["joule"][n])
                for i, n in enumerate(self.names)}

    # ---------------------------------------------------------------- fields
    def irreversible_heat(self):
        """UFL irreversible heat density j (OCV - (phi+ - phi-)) [W/m^3]."""
        return self.el.transfer_current() * (self.el.ocv - self.el.cell_voltage_field())

    def reversible_heat(self):
        """UFL reversible (entropic) heat density -j T dU/dT [W/m^3]."""
        return -self.el.transfer_current() * self.T * self.el.dudt

    def heat_density(self):
        """UFL Bernardi heat density (without collector Joule heat) [W/m^3]."""
        return self.irreversible_heat() + self.reversible_heat()

    # ---------------------------------------------------------------- state <-> mesh
    def update_temperature(self) -> None:
        """Cell mean temperatures from the temperature field."""
        tot = self._T_int.by_region()
        self.T_mean = np.array([tot[n] for n in self.names]) / self.volumes

    def R0(self) -> np.ndarray:
        """Cell series resistances at the current SOC and mean temperature [ohm]."""
        return self.params.R0(self.state.soc, self.T_mean)

    def refresh(self, dt: float = 0.0, current_start=None) -> None:
        """Write g, E, OCV, dU/dT of every cell into the DG0 coefficients for a step of ``dt``.

        The RC pairs (and the OCV drift with SOC) are integrated exactly over the step at
        constant current (:func:`busbarfem.cells.ecm.step_source`), so the solve gives the
        end-of-step cell currents and voltages; ``dt = 0`` gives the instantaneous ones.
        With ``current_start`` (held-voltage steps: an array, or an
        :class:`busbarfem.cells.ecm.HeldCurrent` with the decay time of the current shape) the
        current goes from those start currents to the solved end currents in that shape
        (linear in time, or exponential); :meth:`advance` follows.
        """
        el = self.el
        self._T_step = np.array(self.T_mean, dtype=float)  # the RC update uses the same T
        self._current_start = current_start
        self._dt_step = float(dt)
        E, R, self._R_ocv = ecm.step_source(self.params, self.state, self.T_mean, dt,
                                            self._current_start)
        self._E_eff, self._R_eff = E, R
        g = 1.0 / (R * self.volumes)
        ocv = self.params.ocv(self.state.soc, self.T_mean)
        dudt = self.params.dUdT(self.state.soc)
        for i, cells in enumerate(self._cells):
            el.g.x.array[cells] = g[i]
            el.emf.x.array[cells] = E[i]
            el.ocv.x.array[cells] = ocv[i]
            el.dudt.x.array[cells] = dudt[i]
        for f in (el.g, el.emf, el.ocv, el.dudt):
            f.x.scatter_forward()

    def measure_currents(self) -> np.ndarray:
        """Cell currents I_c = integral of j over each cell [A] (after an electrical solve).

        Also moves the OCV coefficient to its end-of-step value ``OCV - R_ocv I`` so the
        irreversible heat is ``I (OCV_end - V)``.
        """
        tot = self._j_int.by_region()
        self.current = np.array([tot[n] for n in self.names])
        i_ocv = ecm.mean_current(self.current, self._current_start, getattr(self, "_dt_step", 0.0))
        ocv_end = self.params.ocv(self.state.soc, self.T_mean) - self._R_ocv * i_ocv
        for i, cells in enumerate(self._cells):
            self.el.ocv.x.array[cells] = ocv_end[i]
        self.el.ocv.x.scatter_forward()
        return self.current

    def cell_voltages(self) -> np.ndarray:
        """Cell terminal voltages at the end of the last solved step, E_eff - R_eff I [V]."""
        return self._E_eff - self._R_eff * self.current

    def heat(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-cell irreversible and reversible heat [W] (collective; the runs' own per-cell
        heat comes from the model's heat breakdown, so the two forms are compiled here, on the
        first call, not at every set-up)."""
        if self._heat_int is None:
            self._heat_int = tuple(RegionIntegrator(self.bundle, d, regions=self.names)
                                   for d in (self.irreversible_heat(), self.reversible_heat()))
        a, b = (i.by_region() for i in self._heat_int)
        return np.array([a[n] for n in self.names]), np.array([b[n] for n in self.names])


@register("ecm_cells")
def _ecm_cells(case, bundle):
    """The ECM cells apply to every mesh with cell regions (the model checks ``case.cell``),
    unless ``cell.model`` is ``pybamm`` (:mod:`busbarfem.physics.pybamm_cells`)."""
    if not cell_region_names(bundle) or case.cell is None or case.cell.model == "pybamm":
        return None
    return CellCoupling(bundle, case.cell)
