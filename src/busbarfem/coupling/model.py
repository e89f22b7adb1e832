"""The coupled electro-thermal model: physics state and the step primitives.

:class:`CoupledModel` builds, from a case and its mesh, the electrical problem, the
thermal problem (which owns the temperature ``T``, ``T_n`` and the coupling iterate
``T_k``) and the physics contributions (:mod:`busbarfem.coupling.contributions`: the ECM
cells with their Bernardi heat, the runaway monitor, ...). It offers the primitives the
solvers are made of: :meth:`electrical_step`, :meth:`thermal_step`, :meth:`snapshot` /
:meth:`restore`, :meth:`check_temperature`, :meth:`conditions`; it neither loops in time
nor writes files.
"""

from __future__ import annotations

import dataclasses
import time

import dolfinx_solver  # noqa: F401
import numpy as np
from mpi4py import MPI

from busbarfem import naming
from busbarfem.analysis.regions import RegionBreakdown
from busbarfem.coupling.contributions import Contribution, contributions_for
from busbarfem.errors import CaseError, SolveError
from busbarfem.events import Runaway
from busbarfem.events import Condition, EventKind
from busbarfem.materials import resolve_materials
from busbarfem.mesh import MeshBundle, build_mesh
from busbarfem.physics.electrical import ElectricalProblem
from busbarfem.physics.thermal import ThermalProblem


def locate(exc: CaseError, source) -> CaseError:
    """Give a CaseError raised below the loader (it knows the key only) its file and line."""
    if exc.file is None and exc.key and source is not None:
        return source.error(exc.message, exc.key, choices=exc.choices, bad=exc.bad)
    return exc


def global_max(comm, owned: np.ndarray) -> float:
    """Max over all ranks of owned values (-inf when there are none anywhere)."""
    return comm.allreduce(float(owned.max()) if len(owned) else -np.inf, op=MPI.MAX)


def global_min(comm, owned: np.ndarray) -> float:
    """Min over all ranks of owned values (inf when there are none anywhere)."""
    return comm.allreduce(float(owned.min()) if len(owned) else np.inf, op=MPI.MIN)


class Timings(dict):
    """Wall time per phase [s], accumulated."""

    def tick(self, phase: str, t0: float) -> None:
        """Add the time since ``t0`` (``time.perf_counter()``) to ``phase``."""
        self[phase] = self.get(phase, 0.0) + time.perf_counter() - t0


class CoupledModel:
    """Physics state of a case on a mesh, and the step primitives.

    Args:
        case: validated Case.
        source: its CaseSource (for located errors).
        comm: MPI communicator.
        bundle: the mesh (None: mesh the case's geometry).
        cache_dir: mesh cache folder.
        timings: the timings to accumulate into.
    """

    def __init__(self, case, source, comm: MPI.Comm, bundle: MeshBundle | None = None, cache_dir=None,
                 timings: Timings | None = None):
        self.case, self.source, self.comm = case, source, comm
        self.timings = timings if timings is not None else Timings()
        t0 = time.perf_counter()
        try:
            self.bundle = bundle or build_mesh(case, comm, cache_dir=cache_dir, source=source)
        except CaseError as exc:
            raise locate(exc, source) from None
        self.timings.tick("mesh", t0)
        t0 = time.perf_counter()
        self.materials = resolve_materials(case.materials)
        self._apply_conductivity_factors()
        self._check_terminals()
        b, s = self.bundle, case.solver
        order = b.element_order  # mesh.order (1, 2 or auto) was resolved when meshing
        # the thermal problem owns the temperature; its forms are compiled once the heat
        # sources exist (they need the electrical problem, which reads T_k)
        self.thermal = ThermalProblem(b, self._thermal_properties(), self._thermal_bcs(), None,
                                      case.thermal.initial_temperature, order=order, solver=s.thermal_solver,
                                      rtol=s.rtol)
        self.contributions: list[Contribution] = contributions_for(case, b)
        self._check_cells()
        elements = [e for c in self.contributions for e in c.electrical_elements(self)]
        self.electrical = ElectricalProblem(b, self.materials, self.thermal.T_k, self._cell_params(), order=order,
                                            solver=s.electrical_solver, rtol=s.rtol, elements=elements)
        self._reduced_step(s.electrical.reduced)
        for c in self.contributions:
            c.setup(self)
        self.cells = next((c for c in self.contributions if c.provides_cells), None)
        # every volume heat source by name; q is their sum, so the per-region breakdown
        # (summary.json heat.by_region) always covers every source the thermal problem sees
        self.heat_sources = {"joule": self.electrical.joule_density()}
        # the regions outside which a source is exactly zero (its integrals skip the rest)
        support: dict[str, tuple[str, ...]] = {}
        for c in self.contributions:
            hs = c.heat_sources()
            self.heat_sources.update(hs)
            support.update({k: tuple(r) for k, r in c.heat_support().items() if k in hs})
        self.heat_support = support
        self.q_expr = sum(self.heat_sources.values())
        robin = [(t.facets, t.h, t.T_ref, t.heat) for c in self.contributions for t in c.robin_terms()]
        self.thermal.set_source(self.q_expr, robin, parts=[(q, self._tags_of(support.get(k)))
                                                           for k, q in self.heat_sources.items()])
        # with cells, the electrochemical (enthalpy) power density j (U_ocv - T dU/dT) rides along
        # in the same assembly (one packing of the coefficients per record)
        extra = {}
        if self.cells is not None:
            el = self.electrical
            extra["enthalpy"] = el.transfer_current() * (el.ocv - self.thermal.T_k * el.dudt)
            support["enthalpy"] = tuple(self.cells.names)  # j = g (E - s (phi+ - phi-)): g = 0 elsewhere
        self.heat_by_region = RegionBreakdown(b, self.heat_sources, total="total", extra=extra,
                                              support={k: self._tags_of(r) for k, r in support.items()})
        from busbarfem.loads import LoadController

        cap = case.cell.capacity if case.cell is not None else 1.0
        ns, npar = (self.cells.n_series, self.cells.n_parallel) if self.cells is not None else (1, 1)
        self.controller = LoadController(case.load, capacity_Ah=cap, n_series=ns, n_parallel=npar)
        self.timings.tick("setup", t0)

    # ------------------------------------------------------------------ set-up stages
    def _tags_of(self, regions) -> tuple[int, ...] | None:
        """The cell tags of volume ``regions`` (None: None, the whole mesh)."""
        return None if regions is None else tuple(int(self.bundle.tags[n]) for n in regions)

    def _check_terminals(self) -> None:
        for term, side in ((naming.TERMINAL_POS, "positive"), (naming.TERMINAL_NEG, "negative")):
            if term not in self.bundle.tags:
                raise self.source.error(f"the geometry has no '{term}' surface; define geometry.terminals.{side}",
                                        "geometry.terminals")

    def _apply_conductivity_factors(self) -> None:
        """``conductivity_factors``: give each named conductor region a scaled copy of its material."""
        b = self.bundle
        factors = self.case.conductivity_factors
        if not factors:
            return
        b.regions = dict(b.regions)
        for name, f in factors.items():
            reg = b.regions.get(name)
            if reg is None or reg.dim != 3 or reg.kind != "conductor" or name not in b.tags:
                choices = sorted(n for n in b.volume_names() if b.regions[n].kind == "conductor")
                raise self.source.error(f"no conductor region '{name}' in the mesh",
                                        f"conductivity_factors.{name}", choices=choices, bad=name)
            mat = self.materials[reg.material]
            derived = f"{reg.material}*{f:g}"
            self.materials[derived] = mat.model_copy(update={"sigma_ref": mat.sigma_ref * f})
            b.regions[name] = dataclasses.replace(reg, material=derived)

    def _reduced_step(self, red) -> None:
        """``solver.electrical.reduced``: switch the electrical problem to the cell-port basis."""
        if not red.enabled:
            return
        if self.electrical.nfields != 2 or not self.electrical.cell_names:
            raise self.source.error("solver.electrical.reduced needs a module with cell bodies (two potentials); "
                                    "this case has none: remove the key or set enabled: false",
                                    "solver.electrical.reduced.enabled")
        self.electrical.use_reduced_step(tol=red.tol, coefficient_tol=red.coefficient_tol)

    def _cell_regions(self) -> list[str]:
        b = self.bundle
        return [n for n in b.volume_names() if b.regions[n].kind == "cell"]

    def _check_cells(self) -> None:
        n = len(self._cell_regions())
        if n and self.case.cell is None:
            raise self.source.error(f"the geometry has {n} cell bodies but the case has no "
                                    "'cell:' section (e.g. cell: {preset: LG_M50})", "cell")

    def _cell_params(self) -> dict:
        """Cell collector conductivities per cell region (MSMD); none for conductor-only cases."""
        c = self.case.cell
        return {n: {"sigma_pos": c.sigma_pos, "sigma_neg": c.sigma_neg, "alpha_pos": c.alpha_pos,
                    "alpha_neg": c.alpha_neg, "T_ref": c.T_ref} for n in self._cell_regions()}

    def _thermal_properties(self) -> dict:
        """Region name -> (k, rho, cp) (k a scalar or 3-vector; the thermal problem broadcasts)."""
        b, props = self.bundle, {}
        for name in b.volume_names():
            reg = b.regions[name]
            if reg.kind == "thermal" and reg.material not in self.materials:
                continue  # an interface layer: its own properties below
            m = self.case.cell if reg.kind == "cell" else self.materials[reg.material]
            props[name] = (m.k, m.rho, m.cp)
        if self.case.cooling is not None:
            from busbarfem.physics.cooling import interface_properties

            props.update({n: p for n, p in interface_properties(self.case.cooling).items() if n in b.regions})
        return props

    def _thermal_bcs(self) -> list:
        case, b = self.case, self.bundle
        out = []
        valid = b.bc_region_names()
        for i, bc in enumerate(case.thermal.boundaries):
            facets = []
            for j, name in enumerate(bc.regions):
                try:
                    facets.append(b.facets_of(name))
                except KeyError:
                    raise self.source.error(f"unknown region '{name}'", f"thermal.boundaries.{i}.regions.{j}",
                                            choices=valid, bad=name) from None
            fac = np.unique(np.concatenate(facets)) if facets else np.zeros(0, np.int32)
            for j, name in enumerate(bc.exclude):
                try:
                    fac = np.setdiff1d(fac, b.facets_of(name))
                except KeyError:
                    raise self.source.error(f"unknown region '{name}'", f"thermal.boundaries.{i}.exclude.{j}",
                                            choices=valid, bad=name) from None
            prm = bc.model_dump()
            prm.pop("exclude")
            if "T_amb" in prm:
                prm["T_amb"] = case.thermal.ambient_of(bc)
            out.append((bc.type, fac.astype(np.int32), prm))
        return out

    # ------------------------------------------------------------------ accessors
    @property
    def el(self) -> ElectricalProblem:
        """The electrical problem (short name)."""
        return self.electrical

    @property
    def th(self) -> ThermalProblem:
        """The thermal problem (short name)."""
        return self.thermal

    def target(self, t: float):
        """The load controller's terminal target at ``t`` (a contribution may replace it, see
        :meth:`~busbarfem.coupling.contributions.Contribution.terminal_target`)."""
        target = self.controller.target(t)
        for c in self.contributions:
            target = c.terminal_target(t, target)
        return target

    def tmax(self, fn=None) -> float:
        """Global max of a temperature Function (default ``T``) over owned dofs."""
        return global_max(self.comm, self.thermal.owned(fn))

    def cell_status(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell voltages and SOCs for the load controller (one pseudo-cell without cells)."""
        if self.cells is None:
            return np.array([np.nan]), np.array([0.5])
        return self.cells.cell_voltages(), self.cells.soc

    # ------------------------------------------------------------------ step primitives
    def electrical_step(self, t_eval: float, step: int, dt: float = 0.0, current_start=None, target=None):
        """Quasi-static electrical solve for the target at ``t_eval`` (or ``target``) with the
        contributions' states integrated over a step of ``dt`` (0: instantaneous;
        ``current_start``: the cell currents at the start of a held-voltage step, see
        :meth:`busbarfem.physics.cells.CellCoupling.refresh`)."""
        target = self.target(t_eval) if target is None else target
        if self.contributions:
            t0 = time.perf_counter()
            for c in self.contributions:
                c.prepare(dt, current_start)
            self.timings.tick("cell_update", t0)
        t0 = time.perf_counter()
        sol = self.electrical.solve(target.mode, target.value, step=step)
        self.timings.tick("solve_electrical", t0)
        if self.contributions:
            t0 = time.perf_counter()
            for c in self.contributions:
                c.measure()
            self.timings.tick("cell_update", t0)
        return sol

    def thermal_step(self, dt: float | None, step: int) -> None:
        """Backward-Euler thermal step of ``dt`` (None: steady) from ``T_n`` with the current sources
        (solved by the contribution that takes it over, e.g. coupled with coolant channels)."""
        t0 = time.perf_counter()
        if not any(c.thermal_solve(self.thermal, dt, step) is not None for c in self.contributions):
            self.thermal.solve(dt, step=step)
        self.timings.tick("solve_thermal", t0)

    def advance_contributions(self, t: float, dt: float, solution) -> None:
        """Integrate every contribution's state over the step from ``t``."""
        t0 = time.perf_counter()
        for c in self.contributions:
            c.advance(t, dt, self.thermal.T, solution)
        self.timings.tick("cell_update", t0)

    def check_temperature(self, step) -> None:
        """Raise SolveError on NaN, Runaway past ``solver.runaway_temperature``."""
        T = self.thermal.T.x.array
        if self.comm.allreduce(not np.all(np.isfinite(T)), op=MPI.LOR):
            raise SolveError("temperature field contains NaN/inf", step=step, reason="NaN in temperature")
        tmax = self.comm.allreduce(float(T.max()) if len(T) else -np.inf, op=MPI.MAX)
        limit = self.case.solver.runaway_temperature
        if tmax > limit:
            raise Runaway(f"maximum temperature {tmax:.1f} K exceeds the runaway threshold {limit:.1f} K")

    def snapshot(self) -> dict:
        """The contributions' states at the start of a step (the temperature is ``T_n``)."""
        return {c.name: c.snapshot() for c in self.contributions}

    def restore(self, snap: dict) -> None:
        """Undo a rejected step: temperature iterate and contribution states."""
        self.thermal.restart_step()
        for c in self.contributions:
            c.restore(snap[c.name])

    def conditions(self, t: float, sol, tmax: float) -> list:
        """The load's termination conditions at ``t``, the contributions' and ``solver.temperature_limit``."""
        conds = self.controller.conditions(t, sol.current, *self.cell_status(), max_temperature=tmax)
        for c in self.contributions:
            conds.extend(c.conditions(t))
        limit = self.case.solver.temperature_limit
        if limit is not None:
            conds.append(Condition(kind=EventKind.TEMPERATURE, key="solver.temperature_limit",
                                   margin=tmax - limit, reached=tmax > limit,
                                   reason="temperature limit", stop=True))
        return conds

    def contribution(self, name: str) -> Contribution | None:
        """The contribution registered as ``name`` if it applies, else None."""
        return next((c for c in self.contributions if c.name == name), None)

    def close(self) -> None:
        """Free the PETSc objects of both problems."""
        self.electrical.destroy()
        self.thermal.destroy()
