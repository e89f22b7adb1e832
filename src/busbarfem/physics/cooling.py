r"""Conjugate coolant channels: the 1D channel model coupled to the 3D heat equation.

Each channel wall (a named exterior surface of the mesh, see
:mod:`busbarfem.geometry.coldplate`) sees the Robin condition::

    -K grad T . n = h*_i (T - T_f,i)      on the wall facets of segment i

with one value of ``h*_i`` and ``T_f,i`` per 1D segment, held in DG0 cell Functions (the cell
behind each wall facet carries its segment's value, so every wall facet belongs to exactly
one segment). The 1D model (:mod:`busbarfem.physics.channelflow`) takes the area-mean wall
temperature of each segment, ``T_w,i = int_i T dA / A_i``, and returns ``h_i`` and the
segment-mean coolant temperature ``T_f,i``; ``h*_i = h_i P L_i / A_i`` keeps the correlation's
``h P`` per unit length whatever the faceting of the meshed wall (``A_i`` its area). Then the
heat the solid gives through segment i's wall,
``int_i h*_i (T - T_f,i) dA = h_i P L_i (T_w,i - T_f,i)``, *is* the coolant's enthalpy rise
``m cp_i (T_out,i - T_in,i)`` of the 1D march for the same T: the energy balance between
solid and coolant is exact, not up to a discretisation error.

Per thermal step the coupling is a Picard iteration: solve T with the current (h*, T_f),
update (h*, T_f) from T, until T_f changes by less than a tolerance (:func:`solve_coupled`).
``h`` is frozen while it stays within ``h_refresh`` (relative) of the correlation, and in a
transient it is refreshed once per step (at the step's first update, from the last
temperatures), so the thermal operator and its factorisation are reused; the 1D march always
uses the same frozen h as the 3D Robin term, so the energy balance stays exact.
The coolant is quasi-steady (its transit time, a few seconds, is short against the solid's
thermal time constants); its heat capacity is not stored.

In a run, :class:`CoolantContribution` is the registered physics contribution ``coolant``
(:mod:`busbarfem.coupling.contributions`; it applies when the case has a ``cooling:`` section):
``setup`` builds the coefficients on the mesh, ``robin_terms`` gives the walls' Robin term
(booked as coolant heat, ``HeatFlows.coolant``), ``thermal_solve`` runs :func:`solve_coupled`
for every thermal solve of the model, ``columns``/``summary`` report the circuits.
Stand-alone: ``contribution.build(bundle)`` gives the ``robin_terms`` argument of
:class:`~busbarfem.physics.thermal.ThermalProblem`; then ``contribution.attach(thermal)``;
per step ``set_time(t)`` and :func:`solve_coupled` (or ``update()`` inside any Picard loop);
``outputs()`` for the results; ``state()``/``restore()`` for checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dolfinx_solver  # noqa: F401
import numpy as np
import ufl
from mpi4py import MPI

from dolfinx import fem, la, mesh as dmesh

from busbarfem.coupling.contributions import Contribution, RobinTerm, register
from busbarfem.errors import CaseError, SolveError
from busbarfem.physics import channelflow as cf
from busbarfem.physics.coolant import Coolant

TimeValue = float | list[tuple[float, float]]


def _at(value: TimeValue, t: float) -> float:
    """A constant, or a piecewise-linear table [[t, v], ...] evaluated at t (held past its ends)."""
    if isinstance(value, (int, float)):
        return float(value)
    arr = np.asarray(value, float)
    return float(np.interp(t, arr[:, 0], arr[:, 1]))


@dataclass
class FlowInlet:
    """Coolant supplied at one inlet.

    Attributes:
        temperature: inlet temperature [K], constant or a table [[t, T], ...].
        mass_flow: mass flow rate [kg/s], constant or a table.
        volume_flow: volume flow rate [m^3/s] (at the inlet temperature), constant or a table.
    """

    temperature: TimeValue
    mass_flow: TimeValue | None = None
    volume_flow: TimeValue | None = None

    def at(self, t: float, coolant: Coolant, key: str | None = None) -> tuple[float, float]:
        """(mass flow [kg/s], inlet temperature [K]) at time t."""
        T_in = _at(self.temperature, t)
        if self.mass_flow is not None:
            m = _at(self.mass_flow, t)
        else:
            m = _at(self.volume_flow, t) * coolant.rho(T_in, key)
        return m, T_in


@dataclass
class Circuit:
    """One inlet feeding one channel, or several parallel channels (a manifold), to one outlet.

    Attributes:
        name: circuit name (output keys).
        coolant: the fluid.
        channels: the 1D channels (segments with centre-line end points).
        walls: mesh surface name of each channel's wall (same order).
        inlet: flow and temperature at the inlet.
        key: case key for located errors.
    """

    name: str
    coolant: Coolant
    channels: list[cf.Channel]
    walls: list[str]
    inlet: FlowInlet
    key: str | None = None


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of points p (n, 3) from the line piece a-b."""
    d = b - a
    t = np.clip((p - a) @ d / float(d @ d), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * d), axis=1)


@dataclass
class _SegmentRef:
    circuit: int
    channel: int
    segment: int


class CoolantContribution(Contribution):
    """Coolant circuits coupled to a :class:`~busbarfem.physics.thermal.ThermalProblem`.

    Args:
        circuits: the coolant circuits.
        h_refresh: relative change of the correlation's h above which the frozen h is renewed.
        tolerance, max_iterations: of the Picard coupling per thermal solve (:func:`solve_coupled`).
    """

    name = "coolant"
    summary_key = "cooling"

    def __init__(self, circuits: list[Circuit], h_refresh: float = 1e-3, tolerance: float = 1e-8,
                 max_iterations: int = 100, plates=()):
        self.circuits = circuits
        self.plates = list(plates)  # region names of the cold plates (their temperature range)
        self._plate_dofs: dict[str, np.ndarray] = {}
        self.tolerance, self.max_iterations = float(tolerance), int(max_iterations)
        self.t_start = 0.0  # start of the current step (end of the last accepted one)
        self.coupling_iterations: list[int] = []  # Picard iterations of each thermal solve
        self._cell_names: list[str] = []
        self._cell_volume = np.zeros(0)
        # coolant temperatures at the start of this step and of the last one, for the guess
        self._T_f_start: np.ndarray | None = None
        self._T_f_prev: np.ndarray | None = None
        self._dt_prev = 0.0
        self._secant: dict = {}  # Anderson differences kept between steps (same operator)
        self.h_refresh = float(h_refresh)
        self.h_frozen: np.ndarray | None = None
        self.h_refreshes = 0
        self._thermal = None
        self.refs: list[_SegmentRef] = [
            _SegmentRef(ci, chi, si) for ci, c in enumerate(circuits) for chi, ch in enumerate(c.channels)
            for si in range(len(ch.segments))]
        self.n_segments = len(self.refs)
        self.time = 0.0
        self.solutions: list[cf.CircuitSolution | None] = [None] * len(circuits)
        self.h: fem.Function | None = None
        self.T_f: fem.Function | None = None
        self.wall_facets = np.zeros(0, np.int32)
        self.cell_segment = np.zeros(0, np.int64)
        self.wall_cells = np.zeros(0, np.int32)
        self.area = np.zeros(self.n_segments)
        self.PL = np.array([s.section.perimeter * s.length for c in circuits for ch in c.channels
                            for s in ch.segments])
        self.T_wall = np.zeros(self.n_segments)
        self.T_f_seg = np.full(self.n_segments, np.nan)
        self.h_seg = np.zeros(self.n_segments)
        self.comm: MPI.Comm | None = None
        self._T = None
        self._forms: dict = {}
        self._n_owned = 0

    # ------------------------------------------------------------------ set-up
    def build(self, bundle) -> list:
        """Build the DG0 coefficients and return the ``robin_terms`` list for ThermalProblem.

        Each cell behind a wall facet is assigned the nearest segment (centroid to centre-line
        piece) of that wall's channel; a cell on the walls of two channels is an error.
        """
        msh = bundle.mesh
        self.comm = msh.comm
        tdim = msh.topology.dim
        msh.topology.create_connectivity(tdim - 1, tdim)
        f2c = msh.topology.connectivity(tdim - 1, tdim)
        Q0 = fem.functionspace(msh, ("DG", 0))
        self.h = fem.Function(Q0, name="coolant_h")
        self.T_f = fem.Function(Q0, name="coolant_T")
        cell_seg: dict[int, int] = {}
        facets_all = []
        gid = 0
        for ci, c in enumerate(self.circuits):
            for chi, ch in enumerate(c.channels):
                name = c.walls[chi]
                try:
                    facets = bundle.facets_of(name)
                except KeyError:
                    raise CaseError(f"circuit {c.name!r}: no surface {name!r} in the mesh for channel {ch.name!r}",
                                    key=c.key, choices=bundle.bc_region_names(), bad=name) from None
                cells = np.array([f2c.links(f)[0] for f in facets], np.int32) if len(facets) else np.zeros(0, np.int32)
                ucells = np.unique(cells)
                mids = dmesh.compute_midpoints(msh, tdim, ucells) if len(ucells) else np.zeros((0, 3))
                if any(s.start is None or s.end is None for s in ch.segments):
                    raise ValueError(f"channel {ch.name!r}: segments need centre-line end points")
                seg_pts = [(np.asarray(s.start, float), np.asarray(s.end, float)) for s in ch.segments]
                dist = np.stack([_segment_distance(mids, a, b) for a, b in seg_pts], axis=1) if len(ucells) \
                    else np.zeros((0, len(seg_pts)))
                nearest = np.argmin(dist, axis=1) if len(ucells) else np.zeros(0, int)
                for cell, s in zip(ucells, nearest):
                    prev = cell_seg.get(int(cell))
                    if prev is not None and (self.refs[prev].circuit, self.refs[prev].channel) != (ci, chi):
                        raise CaseError(f"a mesh cell touches the walls of two channels ({ch.name!r} and another); "
                                        "refine the mesh between the channels", key=c.key)
                    cell_seg[int(cell)] = gid + int(s)
                facets_all.append(np.asarray(facets, np.int32))
                gid += len(ch.segments)
        self.wall_facets = np.unique(np.concatenate(facets_all)) if facets_all else np.zeros(0, np.int32)
        self.wall_cells = np.fromiter(cell_seg.keys(), np.int32, len(cell_seg))
        self.cell_segment = np.fromiter(cell_seg.values(), np.int64, len(cell_seg))
        self._n_owned = msh.topology.index_map(tdim).size_local
        return [(self.wall_facets, self.h, self.T_f, "coolant")]

    def attach(self, thermal) -> None:
        """Compile the per-segment wall integrals against the thermal problem's temperature."""
        msh = thermal.V.mesh
        tdim = msh.topology.dim
        self._T = thermal.T
        self._thermal = thermal
        tags = dmesh.meshtags(msh, tdim - 1, self.wall_facets, np.ones(len(self.wall_facets), np.int32))
        ds = ufl.Measure("ds", domain=msh, subdomain_data=tags)
        w = ufl.TestFunction(self.h.function_space)
        self._forms = {"T": fem.form(self._T * w * ds(1)), "A": fem.form(w * ds(1)),
                       "Q": fem.form(self.h * (self._T - self.T_f) * w * ds(1))}
        self.area = self._segment_sums("A")
        self.set_time(0.0)

    def _segment_sums(self, which: str) -> np.ndarray:
        vec = fem.assemble_vector(self._forms[which])
        vec.scatter_reverse(la.InsertMode.add)
        vals = vec.array
        own = self.wall_cells < self._n_owned
        local = np.bincount(self.cell_segment[own], weights=vals[self.wall_cells[own]], minlength=self.n_segments)
        return self.comm.allreduce(local, op=MPI.SUM)

    # ------------------------------------------------------------------ stepping
    def set_time(self, t: float) -> None:
        """Take the inlet flows and temperatures at time t."""
        self.time = float(t)

    def _march(self, Tw, has, h_frozen):
        """Solve every circuit for wall temperatures Tw (h per segment, or None = correlation)."""
        k = 0
        sols = []
        for c in self.circuits:
            m, T_in = c.inlet.at(self.time, c.coolant, c.key)
            walls, areas, hs = [], [], []
            for ch in c.channels:
                n = len(ch.segments)
                w = Tw[k:k + n].copy()
                w[~has[k:k + n]] = T_in
                walls.append(w)
                areas.append(np.where(has[k:k + n], self.PL[k:k + n], 0.0))
                hs.append(None if h_frozen is None else h_frozen[k:k + n])
                k += n
            sols.append(cf.solve_circuit(c.channels, c.coolant, m, T_in, walls, areas, key=c.key,
                                         h_segments=None if h_frozen is None else hs))
        return sols

    @staticmethod
    def _gather(sols, attr: str) -> np.ndarray:
        return np.concatenate([getattr(chs, attr) for sol in sols for chs in sol.channels])

    def update(self, T=None, refresh_h: bool = True) -> float:
        """Recompute (h*, T_f) per segment from the current wall temperatures.

        Args:
            T: unused (the attached thermal problem's temperature is read); for protocol symmetry.
            refresh_h: compare the correlation's h with the frozen one and renew it (bumping the
                thermal problem's ``robin_version``) if it moved by more than ``h_refresh``.

        Returns:
            max |change of T_f| over the segments [K] (inf on the first call).
        """
        Tw = self._segment_sums("T")
        has = self.area > 0
        Tw[has] /= self.area[has]
        self.T_wall = Tw
        renewed = False
        if self.h_frozen is None or refresh_h:
            h_corr = self._gather(self._march(Tw, has, None), "h")
            if (self.h_frozen is None or np.max(np.abs(h_corr - self.h_frozen) / np.maximum(h_corr, 1e-300))
                    > self.h_refresh):
                self.h_frozen, renewed = h_corr, True
        self.solutions = self._march(Tw, has, self.h_frozen)
        new_T, new_h = self._gather(self.solutions, "T_f"), self._gather(self.solutions, "h")
        change = float(np.max(np.abs(new_T - self.T_f_seg))) if np.all(np.isfinite(self.T_f_seg)) else np.inf
        self.T_f_seg, self.h_seg = new_T, new_h
        if renewed:
            h_star = np.where(has, new_h * self.PL / np.where(has, self.area, 1.0), 0.0)
            self.h.x.array[:] = 0.0
            self.h.x.array[self.wall_cells] = h_star[self.cell_segment]
            self.h_refreshes += 1
            if self._thermal is not None:
                self._thermal.robin_version += 1
        self.T_f.x.array[:] = 0.0
        self.T_f.x.array[self.wall_cells] = new_T[self.cell_segment]
        return change

    def set_coolant_temperature(self, T_f: np.ndarray) -> None:
        """Impose segment coolant temperatures (an accelerated Picard iterate) on the Robin term."""
        self.T_f_seg = np.asarray(T_f, float).copy()
        self.T_f.x.array[:] = 0.0
        self.T_f.x.array[self.wall_cells] = self.T_f_seg[self.cell_segment]

    # ------------------------------------------------------------------ results
    def wall_heat(self) -> np.ndarray:
        """Heat conducted into each segment's wall from the solid, ``int h* (T - T_f) dA`` [W]."""
        return self._segment_sums("Q")

    def outputs(self) -> dict:
        """Per circuit: outlet T, heat removed, pressure drop, pumping power, flow and T along each channel."""
        out = {}
        for c, sol in zip(self.circuits, self.solutions):
            chans = {}
            for ch, s in zip(c.channels, sol.channels):
                x = np.concatenate([[0.0], np.cumsum([seg.length for seg in ch.segments])])
                chans[ch.name] = {"mass_flow": s.m_dot, "outlet_temperature": s.outlet_temperature,
                                  "heat_removed": s.heat_removed, "pressure_drop": s.pressure_drop,
                                  "reynolds_max": float(np.max(s.Re)),
                                  "position": x.tolist(), "temperature": [float(s.T_in[0]), *map(float, s.T_out)]}
            out[c.name] = {"outlet_temperature": sol.outlet_temperature, "heat_removed": sol.heat_removed,
                           "pressure_drop": sol.pressure_drop, "pumping_power": sol.pumping_power,
                           "mass_flow": sol.m_dot, "channels": chans}
        return out

    def heat_removed(self) -> float:
        """Total heat taken up by all coolant circuits [W]."""
        return float(sum(s.heat_removed for s in self.solutions))

    def state(self) -> dict:
        """Checkpoint state (the coolant is quasi-steady: only the last iterate and time)."""
        return {"time": self.time, "T_f": self.T_f_seg.tolist(), "h": self.h_seg.tolist()}

    def restore_state(self, state: dict) -> None:
        """Restore :meth:`state` output (then call :meth:`update` to refresh the coefficients)."""
        self.time = float(state["time"])
        self.T_f_seg = np.asarray(state["T_f"], float)
        self.h_seg = np.asarray(state["h"], float)


    # ------------------------------------------------------------------ the contribution protocol
    def setup(self, model) -> None:
        """Coefficients on the model's mesh, wall integrals against its temperature, cell means."""
        from busbarfem.coupling.model import locate

        try:
            self.build(model.bundle)
        except CaseError as exc:
            raise locate(exc, model.source) from None
        self.attach(model.thermal)
        self.update(refresh_h=True)  # the coolant at the initial temperature (the t = 0 record)
        b = model.bundle
        dofmap = model.thermal.V.dofmap.list
        self._plate_dofs = {n: np.unique(dofmap[b.cells_of(n)]) for n in self.plates if n in b.regions}
        cells = [n for n in b.volume_names() if b.regions[n].kind == "cell"]
        if cells:  # one vector assembly per call for every region (as the cell models do)
            from busbarfem.analysis.regions import RegionIntegrator

            self._cell_names = cells
            self._T_int = RegionIntegrator(b, model.thermal.T)
            vols = RegionIntegrator(b, fem.Constant(b.mesh, 1.0)).by_region()
            self._cell_volume = np.array([vols[n] for n in cells])

    def robin_terms(self) -> list[RobinTerm]:
        """The channel walls' ``h* (T - T_f)``, booked as coolant heat."""
        return [RobinTerm(self.wall_facets, self.h, self.T_f, heat="coolant")]

    def thermal_solve(self, thermal, dt: float | None, step: int | None) -> int:
        """The thermal solve Picard-coupled with the coolant (inlet flow at the step's end)."""
        self.set_time(self.t_start + (dt or 0.0))
        guess = None
        if dt is not None and self._dt_prev > 0 and self._T_f_prev is not None and self._T_f_start is not None:
            # linear extrapolation of the last step's change: one Picard iteration less
            guess = self._T_f_start + (self._T_f_start - self._T_f_prev) * (dt / self._dt_prev)
        out = solve_coupled(thermal, self, dt, tol=self.tolerance, max_iterations=self.max_iterations, step=step,
                            guess=guess, secant=self._secant)
        self.coupling_iterations.append(out.iterations)
        return int(sum(out.ksp_iterations))

    def advance(self, t: float, dt: float, T=None, solution=None) -> None:
        """The step from t is done: the next one starts at t + dt (and extrapolates from this one)."""
        self.t_start = float(t + dt)
        if self._T_f_start is not None:
            self._T_f_prev, self._dt_prev = self._T_f_start, float(dt)

    def snapshot(self):
        """Start time and coolant state of the step (and of the step before, for the extrapolation)."""
        return {"t_start": self.t_start, "T_f": self.T_f_seg.copy(), "h": self.h_seg.copy(),
                "T_f_prev": self._T_f_prev, "dt_prev": self._dt_prev}

    def restore(self, snap) -> None:
        """Back to :meth:`snapshot` (the coefficients are renewed by the next thermal solve)."""
        self.t_start = snap["t_start"]
        self.T_f_seg, self.h_seg = snap["T_f"].copy(), snap["h"].copy()
        self._T_f_prev, self._dt_prev = snap["T_f_prev"], snap["dt_prev"]
        self._T_f_start = self.T_f_seg.copy() if np.all(np.isfinite(self.T_f_seg)) else None

    def state_dict(self) -> dict:
        """Checkpoint: start time of the next step, the last coolant state and what the next
        step starts from in an uninterrupted run (the frozen h, the last step's coolant
        temperatures for the extrapolated guess, the Anderson differences if they belong to
        the current operator), so a restarted run takes the same iterations."""
        thermal = self._thermal
        sec = self._secant
        valid = bool(sec) and thermal is not None and sec.get("key") == (False, thermal.robin_version)
        return {**self.state(), "t_start": self.t_start,
                "h_frozen": None if self.h_frozen is None else self.h_frozen.tolist(),
                "T_f_prev": None if self._T_f_prev is None else self._T_f_prev.tolist(), "dt_prev": self._dt_prev,
                "secant": [[r.tolist(), f.tolist()] for r, f in sec["pairs"]] if valid else None,
                "h_refreshes": self.h_refreshes, "coupling_iterations": list(self.coupling_iterations)}

    def load_state_dict(self, state) -> None:
        """Restore :meth:`state_dict`: the coolant coefficients on the mesh are those of the
        checkpoint (h* from its frozen h, T_f), the thermal operator is rebuilt with them.
        (Checkpoints without the frozen h renew it at the next thermal solve.)"""
        self.restore_state(state)
        self.t_start = float(state["t_start"])
        if state.get("T_f_prev") is not None:
            self._T_f_prev, self._dt_prev = np.asarray(state["T_f_prev"], float), float(state["dt_prev"])
        self._T_f_start = self.T_f_seg.copy() if np.all(np.isfinite(self.T_f_seg)) else None
        self.h_refreshes = int(state.get("h_refreshes", self.h_refreshes))
        self.coupling_iterations = [int(i) for i in state.get("coupling_iterations", self.coupling_iterations)]
        if state.get("h_frozen") is None or self.h is None:
            return
        self.h_frozen = np.asarray(state["h_frozen"], float)
        has = self.area > 0
        h_star = np.where(has, self.h_frozen * self.PL / np.where(has, self.area, 1.0), 0.0)
        self.h.x.array[:] = 0.0
        self.h.x.array[self.wall_cells] = h_star[self.cell_segment]
        self.T_f.x.array[:] = 0.0
        self.T_f.x.array[self.wall_cells] = self.T_f_seg[self.cell_segment]
        if self._thermal is not None:
            self._thermal.robin_version += 1
            self._secant.clear()
            if state.get("secant"):
                self._secant.update(key=(False, self._thermal.robin_version),
                                    pairs=[(np.asarray(r, float), np.asarray(f, float)) for r, f in state["secant"]])

    def cell_temperatures(self) -> np.ndarray:
        """Mean temperature of every battery cell [K] (empty without cells)."""
        if not self._cell_names:
            return np.zeros(0)
        tot = self._T_int.by_region()
        return np.array([tot[n] for n in self._cell_names]) / self._cell_volume

    def plate_temperatures(self) -> dict[str, dict[str, float]]:
        """``{plate: {"min", "max"}}``: each cold plate's nodal temperature range [K] (collective)."""
        out = {}
        T = self._thermal.T.x.array if self._thermal is not None else np.zeros(0)
        for name, dofs in self._plate_dofs.items():
            v = T[dofs]
            lo = self.comm.allreduce(float(v.min()) if len(v) else np.inf, op=MPI.MIN)
            hi = self.comm.allreduce(float(v.max()) if len(v) else -np.inf, op=MPI.MAX)
            out[name] = {"min": lo, "max": hi}
        return out

    def columns(self, heat: dict) -> dict:
        """Per circuit outlet T, heat removed, dp, pumping power; per channel heat; cell spread."""
        out = {}
        Tc = self.cell_temperatures()
        if len(Tc):
            out["T_cell_spread [K]"] = float(np.ptp(Tc))
        for name, r in self.outputs().items():
            out.update({f"coolant_{name}_outlet [K]": r["outlet_temperature"], f"coolant_{name}_heat [W]": r["heat_removed"],
                        f"coolant_{name}_dp [Pa]": r["pressure_drop"], f"coolant_{name}_pumping [W]": r["pumping_power"]})
            out.update({f"coolant_{name}_{ch}_heat [W]": v["heat_removed"] for ch, v in r["channels"].items()})
        return out

    def summary(self, heat: dict) -> dict:
        """``cooling`` block: circuits (outlet T, heat, dp, pumping power, T along each channel), cell spread."""
        out: dict = {"heat_removed_W": self.heat_removed(), "circuits": self.outputs(),
                     "coupling_iterations_max": max(self.coupling_iterations, default=0),
                     "coupling_iterations_mean": float(np.mean(self.coupling_iterations)) if self.coupling_iterations
                     else 0.0, "h_refreshes": self.h_refreshes}
        Tc = self.cell_temperatures()
        if len(Tc):
            out["cell_temperature_spread_K"] = float(np.ptp(Tc))
            out["cell_temperature_mean_K"] = Tc.tolist()
        if self._plate_dofs:
            out["plate_temperature_K"] = self.plate_temperatures()
        return out

    def write_outputs(self, outdir, summary: dict) -> None:
        """``cooling_channels.csv`` (:func:`write_channel_profiles`) from the summary's block."""
        if summary.get(self.summary_key):
            write_channel_profiles(outdir, summary[self.summary_key])


@register("coolant")
def _coolant(case, bundle):
    if getattr(case, "cooling", None) is None:
        return None
    c = case.cooling
    return CoolantContribution(circuits_from_case(c), tolerance=c.tolerance, max_iterations=c.max_iterations,
                               plates=[p.name for p in c.plates])


CHANNEL_CSV = "cooling_channels.csv"


def write_channel_profiles(outdir, block: dict) -> None:
    """Write ``cooling_channels.csv``: the coolant temperature along every channel at the last
    time (one row per 1D node: circuit, channel, distance from the inlet [m], temperature [K]),
    from the summary's ``cooling`` block."""
    from pathlib import Path

    lines = ["circuit,channel,position [m],coolant_temperature [K]"]
    for cname, circ in (block.get("circuits") or {}).items():
        for chname, ch in circ["channels"].items():
            lines += [f"{cname},{chname},{x:.9g},{T:.12g}" for x, T in zip(ch["position"], ch["temperature"])]
    (Path(outdir) / CHANNEL_CSV).write_text("\n".join(lines) + "\n", encoding="utf-8")


def interface_properties(cooling) -> dict:
    """Region name -> (k, rho, cp) of every interface layer of a ``cooling:`` section, as meshed:
    k from the conductance times the meshed thickness, rho scaled so the heat capacity per area
    is the real layer's (a conductance has no thickness: its given rho at the meshed thickness)."""
    out = {}
    for layer in cooling.interfaces:
        pad = InterfaceConductance.from_case(layer)
        rho = layer.rho * (layer.thickness / pad.model_thickness if layer.thickness else 1.0)
        out[layer.name] = (pad.conductivity, rho, layer.cp)
    return out


@dataclass(frozen=True)
class InterfaceConductance:
    """A thermal interface material or gap pad as a conductance per area.

    Wired as a meshed layer of ``model_thickness`` (a Part fragmented between the plate and the
    cells) with conductivity ``conductance * model_thickness``, so a thin TIM need not be meshed
    at its real thickness; see docs/cooling.md.

    Attributes:
        name: region name of the layer.
        conductance: heat transfer coefficient across the layer [W/m^2/K] (``k / t`` for a layer).
        model_thickness: thickness of the meshed layer [m].
    """

    name: str
    conductance: float
    model_thickness: float

    @property
    def conductivity(self) -> float:
        """Conductivity of the meshed layer that gives the same conductance [W/m/K]."""
        return self.conductance * self.model_thickness

    @classmethod
    def from_case(cls, layer) -> InterfaceConductance:
        """From a :class:`busbarfem.case.cooling.InterfaceLayer`."""
        if layer.conductance is not None:
            return cls(layer.name, layer.conductance, layer.model_thickness or 5e-4)
        return cls(layer.name, layer.conductivity / layer.thickness, layer.model_thickness or layer.thickness)


def coolant_wall_facets(case, bundle) -> np.ndarray:
    """Local facets of the channel walls that carry a coolant circuit (empty without ``cooling:``):
    other exterior conditions (an abuse oven) leave them to the coolant."""
    cooling = getattr(case, "cooling", None)
    if cooling is None:
        return np.zeros(0, np.int32)
    names = [f"{c.plate}_{ch}_wall" for c in cooling.circuits for ch in c.channels]
    found = [bundle.facets_of(n) for n in names if n in bundle.bc_region_names()]
    return np.unique(np.concatenate(found)).astype(np.int32) if found else np.zeros(0, np.int32)


def circuits_from_case(cooling, key: str = "cooling") -> list[Circuit]:
    """The coolant circuits of a case's ``cooling:`` section (walls named as the plate builder names them)."""
    from busbarfem.physics.coolant import coolant as library_coolant

    plates = {p.name: p for p in cooling.plates}
    out = []
    for i, c in enumerate(cooling.circuits):
        plate = plates[c.plate]
        chans = {ch.name: ch for ch in plate.channels}
        channels, walls = [], []
        for name in c.channels:
            ch = chans[name]
            sec = (cf.CircularSection(ch.diameter) if ch.shape == "circular"
                   else cf.RectangularSection(ch.width, ch.height))
            segs = cf.polyline_segments(ch.points(), sec, ch.bend_loss, n_sub=ch.segments_per_run)
            channels.append(cf.Channel(name, segs, roughness=ch.roughness, wall=ch.wall_condition,
                                       development=ch.development, friction=ch.friction, h_override=ch.h))
            walls.append(f"{plate.name}_{name}_wall")
        inlet = FlowInlet(temperature=c.inlet.temperature, mass_flow=c.inlet.mass_flow,
                          volume_flow=c.inlet.volume_flow)
        out.append(Circuit(c.name, library_coolant(c.coolant, f"{key}.circuits.{i}.coolant"), channels, walls,
                           inlet, key=f"{key}.circuits.{i}"))
    return out


@dataclass
class CoupledStep:
    """Result of :func:`solve_coupled`: Picard iterations and the last T_f change [K]."""

    iterations: int
    change: float
    ksp_iterations: list[int] = field(default_factory=list)


def solve_coupled(thermal, contribution: CoolantContribution, dt: float | None, tol: float = 1e-9,
                  max_iterations: int = 100, step: int | None = None, anderson_depth: int = 3,
                  guess: np.ndarray | None = None, secant: dict | None = None) -> CoupledStep:
    """One thermal step (``dt``; None = steady) Picard-coupled with the coolant.

    Iterates solve(T) / update(h*, T_f) until T_f changes by at most ``tol`` (1 + the spread
    of T_f) kelvin; a SolveError if it does not within ``max_iterations``. A steady solve
    re-checks h at every iteration; a transient step only at its first update (h lagged one
    step, as the other temperature-dependent coefficients of the backward-Euler step).
    The fixed point on the segment coolant temperatures is Anderson-accelerated (``anderson_depth``
    previous residual differences; 0 = plain Picard); the last update is always the plain one,
    so the 1D and 3D heat agree exactly (the solid's own balance to ``h P L`` times the last
    change). ``guess``: segment coolant temperatures to start from (e.g. extrapolated from the
    last steps); default: those of the current temperature. ``secant``: a dict the caller keeps
    between steps; the map's differences depend only on its linear part (the operator: dt and
    the frozen h), so those of the last steps with the same h start this step's mixing (a
    slightly different dt only makes them approximate: the convergence test is on the map).
    """
    contribution.update(refresh_h=True)
    if guess is not None:
        contribution.set_coolant_temperature(guess)
    out = CoupledStep(0, np.inf)
    key = (dt is None, thermal.robin_version)
    pairs: list[tuple[np.ndarray, np.ndarray]] = []  # (residual difference, image difference)
    if secant is not None and secant.get("key") == key:
        pairs = list(secant["pairs"])
    prev = None  # (image, residual) of the last iteration of this step
    for it in range(1, max_iterations + 1):
        x = contribution.T_f_seg.copy()
        # only the walls' h T_f term of the right-hand side changes between the iterations
        out.ksp_iterations.append(thermal.solve(dt, step, reuse_source=it > 1))
        version = thermal.robin_version
        change = contribution.update(refresh_h=dt is None)
        if thermal.robin_version != version:
            change = np.inf  # h was renewed: the operator changed, iterate again
            pairs.clear()
            prev = None
            key = (dt is None, thermal.robin_version)
        spread = float(np.ptp(contribution.T_f_seg)) if contribution.n_segments else 0.0
        out.iterations, out.change = it, change
        if change <= tol * (1.0 + spread):
            # T_f now belongs to this T (1D heat = 3D wall heat exactly); T was solved with the
            # previous T_f, within tol of it, so the solid's balance is closed to ~h P L tol
            if secant is not None:
                secant.update(key=key, pairs=pairs[-anderson_depth:] if anderson_depth else [])
            return out
        if anderson_depth > 0 and np.isfinite(change):
            f = contribution.T_f_seg.copy()
            r = f - x
            if prev is not None:
                pairs.append((r - prev[1], f - prev[0]))
                del pairs[:-anderson_depth]
            prev = (f, r)
            if pairs:
                dR = np.array([p[0] for p in pairs]).T
                dF = np.array([p[1] for p in pairs]).T
                gamma = np.linalg.lstsq(dR, r, rcond=None)[0]
                contribution.set_coolant_temperature(f - dF @ gamma)
    raise SolveError(f"coolant coupling did not converge in {max_iterations} Picard iterations "
                     f"(last change of the coolant temperature {change:.3g} K)", step=step,
                     reason="coolant coupling not converged")
