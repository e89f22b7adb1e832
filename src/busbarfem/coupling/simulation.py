"""The :class:`Simulation` facade: set up a case on a communicator, run it, write its outputs.

It wires the parts together and maps the ways a run can end onto the summary's stop
reason; the parts do the work: :class:`~busbarfem.coupling.model.CoupledModel` (physics
and step primitives), :class:`~busbarfem.coupling.steady.SteadySolver`,
:class:`~busbarfem.coupling.stepper.TransientStepper` with
:class:`~busbarfem.coupling.transient.FEMSystem`, :class:`~busbarfem.coupling.state.RunState`
(checkpoints) and the writers of :mod:`busbarfem.coupling.outputs`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import dolfinx_solver  # noqa: F401
from mpi4py import MPI

from busbarfem.coupling.model import CoupledModel, Timings
from busbarfem.coupling.outputs import (FieldOutput, OutputFields, Recorder, TimeSeries, build_summary,
                                        hot_location, write_summary)
from busbarfem.coupling.state import RunState
from busbarfem.errors import SolveError
from busbarfem.events import HoldCurrentControl, Runaway
from busbarfem.mesh import MeshBundle
from busbarfem.physics import solvers


class Simulation:
    """A case, set up on a communicator: mesh, physics, coupling and output.

    Use as a context manager (or call :meth:`close`) so files and PETSc objects are freed.

    Args:
        case: validated Case.
        source: its CaseSource (for located errors).
        comm: MPI communicator.
        outdir: output folder (None: write nothing).
        progress: optional callable(dict) called after each step on rank 0.
        cache_dir: mesh cache folder (None: always mesh).
        restarting: the run continues from a checkpoint in ``outdir``, verified and loaded by
            :meth:`setup` (fields go to a new file).
    """

    def __init__(self, case, source, comm: MPI.Comm, outdir: Path | None = None, progress=None,
                 cache_dir=None, restarting: bool = False):
        self.case, self.source, self.comm = case, source, comm
        if comm.size > 1:  # one process per core: OpenBLAS's own threads would oversubscribe them
            solvers.limit_blas_threads(1)
        self.restarting = restarting
        self.outdir = Path(outdir) if outdir is not None else None
        self.progress = progress
        self.cache_dir = cache_dir
        self.timings = Timings()
        self.stop_reason = "not run"
        self.runaway: dict | None = None
        self.events: list[dict] = []
        self.checkpoint_every = 0
        self.restart_state: dict | None = None
        self.convergence: dict | None = None
        self.model: CoupledModel | None = None
        self.fields: OutputFields | None = None
        self.field_output: FieldOutput | None = None
        self.recorder: Recorder | None = None
        self.series: TimeSeries | None = None
        self.run_state: RunState | None = None
        self.hotspots: dict | None = None

    def __enter__(self) -> Simulation:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ set-up
    def setup(self, bundle: MeshBundle | None = None) -> None:
        """Mesh (unless given), resolve regions, build the physics and the writers."""
        self.model = CoupledModel(self.case, self.source, self.comm, bundle=bundle, cache_dir=self.cache_dir,
                                  timings=self.timings)
        solvers.release_free_memory()  # the sparsity patterns' freed heap (not at the peak)
        t0 = time.perf_counter()
        self.run_state = RunState(self.model, self.outdir)
        self.fields = OutputFields(self.model)
        self.recorder = Recorder(self.model, self.fields)
        if self.restarting and self.outdir is not None:
            self.restore(self.outdir)  # verify (refuse) before any output file is opened
        if self.outdir is not None:
            self.field_output = FieldOutput(self.comm, self.model.bundle.mesh, self.outdir, self.fields,
                                            self.restarting, self.timings)
        self.timings.tick("setup", t0)

    def restore(self, outdir: Path) -> None:
        """Verify and load a checkpoint from ``outdir`` (:meth:`setup` calls it when restarting).

        Raises:
            CaseError: the checkpoint is unreadable or belongs to another case or mesh.
        """
        self.run_state.outdir = Path(outdir)
        state = self.run_state.load()
        self.restart_state = state
        self.events = list(state.get("events", []))
        self.recorder.load_state_dict(state)

    # ------------------------------------------------------------------ views
    @property
    def bundle(self) -> MeshBundle:
        """The mesh and its regions."""
        return self.model.bundle

    @property
    def el(self):
        """The electrical problem."""
        return self.model.electrical

    @property
    def th(self):
        """The thermal problem (owns the temperature)."""
        return self.model.thermal

    @property
    def cells(self):
        """The battery-cell contribution (None for conductor-only cases)."""
        return self.model.cells

    @property
    def controller(self):
        """The load controller."""
        return self.model.controller

    @property
    def rows(self) -> list[dict]:
        """The recorded time-series rows."""
        return self.series.rows if self.series is not None else []

    @property
    def out_Jmag(self):
        """The DG0 current-density magnitude written to the fields."""
        return self.fields.J_magnitude

    @property
    def materials(self) -> dict:
        """Materials by name (with the conductivity-factor copies)."""
        return self.model.materials

    def steady_tmax_at(self, current: float) -> float | None:
        """Steady T_max [K] at a fixed load current, or None if no steady state exists."""
        from busbarfem.coupling.steady import SteadySolver

        return SteadySolver(self.model).tmax_at(current)

    def solve_steady(self, target=None) -> dict:
        """One steady coupled solve (see :meth:`busbarfem.coupling.steady.SteadySolver.solve`)."""
        from busbarfem.coupling.steady import SteadySolver

        return SteadySolver(self.model).solve(target)

    # ------------------------------------------------------------------ run
    def _write_fields(self, t: float) -> None:
        if self.field_output is not None:
            self.field_output.write(t)

    def _record(self, t: float, step: int, sol, flows):
        rows = self.series.rows
        rec = self.recorder.record(t, step, rows[-1]["time [s]"] if rows else None, sol, flows)
        self.series.append(rec.row)
        if self.progress is not None and self.comm.rank == 0:
            self.progress(rec.row)
        return rec

    def run(self) -> dict:
        """Solve the case and write the outputs; returns the summary dict."""
        case = self.case
        rs = self.restart_state
        self.series = TimeSeries(self.comm, self.outdir, int(rs["rows"]) if rs is not None else None)
        t_start = time.perf_counter()
        try:
            if case.solver.analysis == "steady":
                rep = self.solve_steady()
                self.convergence = {k: v for k, v in rep.items() if k != "terminal"}
                self.stop_reason = "steady state reached"
                self._record(0.0, 0, rep["terminal"], self.th.heat_flows())
                self._write_fields(0.0)
            else:
                self.run_transient()
        except Runaway as exc:
            self.stop_reason = "thermal runaway"
            self.runaway = {"message": str(exc), **hot_location(self.model)}
            self._write_fields(self.rows[-1]["time [s]"] if self.rows else 0.0)
        except SolveError as exc:
            # keep what was computed: the summary says why and where it stopped
            self.stop_reason = f"{exc.reason}: {exc}"
            self._write_summary()
            raise
        if self.rows and self.outdir is not None:
            from busbarfem.io.hotspots import hotspots

            self.fields.refresh_for_hotspots()
            # collective; rank 0 writes hotspots.json
            self.hotspots = hotspots(self.bundle, self.fields.T, self.fields.J_magnitude, self.outdir)
        self.timings["total"] = time.perf_counter() - t_start
        return self._write_summary()

    def run_transient(self) -> None:
        """The time loop: :class:`~busbarfem.coupling.stepper.TransientStepper` on the 3D model."""
        from busbarfem.coupling.stepper import StepSizeController, TransientStepper
        from busbarfem.coupling.transient import FEMSystem

        s = self.case.solver
        t, step, dt = 0.0, 0, s.dt
        rs = self.restart_state
        if rs is not None:
            t, step, dt = rs["t"], rs["step"], rs["dt"]
        system = FEMSystem(self.model, self._record, self._write_fields, self.events)
        system.start(t, step, record_initial=rs is None)
        self.stop_reason = "end time reached"
        cap = self.case.cell.capacity if self.cells is not None else 1.0
        steps = StepSizeController(dt, s.t_end if s.t_end is not None else math.inf, dt_min=s.dt_min,
                                   dt_max=s.dt_max or s.dt, adaptive=s.adaptive,
                                   max_temperature_change=s.max_temperature_change,
                                   hold=HoldCurrentControl(current_floor=0.01 * cap))
        steps.dt0 = s.dt
        every = self.checkpoint_every

        def checkpoint(t, step, dt_next):
            if every and step % every == 0 and self.outdir is not None:
                self.series.flush()
                self.run_state.save(t, step, dt_next, len(self.rows), self.events, self.recorder, self.timings)

        outcome = TransientStepper(system, steps, s.event_tolerance, checkpoint=checkpoint).run(t, step)
        self.stop_reason = outcome.reason
        if outcome.kind.name == "END_TIME" and self.rows and outcome.step % self.case.output.every != 0:
            self._write_fields(outcome.t)

    def summary(self) -> dict:
        """The summary.json content (identical on every rank; collective)."""
        return build_summary(self.model, self.recorder, self.series or TimeSeries(self.comm, None),
                             stop_reason=self.stop_reason, runaway=self.runaway, events=self.events,
                             timings=self.timings, convergence=self.convergence)

    def _write_summary(self) -> dict:
        out = write_summary(self.comm, self.outdir, self.summary())
        if self.outdir is not None and self.comm.rank == 0:
            for c in self.model.contributions:
                c.write_outputs(self.outdir, out)
        return out

    def close(self) -> None:
        """Close open files and free the PETSc objects (the results stay readable)."""
        if self.series is not None:
            self.series.close()
        if self.model is not None:
            self.model.close()  # collective: every rank closes its Simulation
