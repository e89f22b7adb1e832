"""The run state of a transient for checkpoints: what a restart needs besides the temperature.

:class:`RunState` gathers it from the parts that own it (time, step and next ``dt`` of
the stepper, the load controller, every physics contribution, the recorder's extrema and
heat per region, the events, the timings) into the checkpoint dict of
:mod:`busbarfem.io.checkpoint`, and hands a loaded dict back to them.
"""

from __future__ import annotations

import time
from pathlib import Path

from busbarfem.errors import CaseError


class RunState:
    """Checkpoint writer and reader of a :class:`~busbarfem.coupling.simulation.Simulation` run.

    Args:
        model: the coupled model (temperature, contributions, controller).
        outdir: the output folder (holds ``checkpoint/`` and ``timeseries.csv``).
    """

    def __init__(self, model, outdir: Path | None):
        self.model, self.outdir = model, outdir
        self._fp: dict | None = None

    def fingerprint(self) -> dict:
        """What a checkpoint belongs to: case values and mesh (collective, computed once)."""
        from busbarfem.io import checkpoint

        if self._fp is None:
            m = self.model
            case_dir = m.source.directory if m.source is not None else None
            self._fp = {"case": checkpoint.case_fingerprint(m.case, case_dir),
                        "mesh": checkpoint.mesh_fingerprint(m.bundle, m.thermal.V)}
        return self._fp

    def save(self, t: float, step: int, dt_next: float, rows: int, events: list, recorder, timings) -> None:
        """Write the restart state after ``step`` (collective)."""
        from busbarfem.io import checkpoint

        m = self.model
        t0 = time.perf_counter()
        contrib = {c.name: c.state_dict() for c in m.contributions}
        cells = m.cells.state_dict() if m.cells is not None else None
        runaway = m.contribution("runaway_monitor")
        state = {"t": t, "step": step, "dt": dt_next, "rows": rows, "cells": cells,
                 "controller": m.controller.state_dict(), "events": events,
                 "monitor": runaway.state_dict() if runaway is not None else None,
                 "contributions": contrib, "timings": timings, "fingerprint": self.fingerprint(),
                 **recorder.state_dict()}
        checkpoint.save(self.outdir, m.comm, m.thermal.T_n, state)
        timings.tick("checkpoint", t0)

    def load(self) -> dict:
        """Verify and load the checkpoint of ``outdir`` into the model; returns the state.

        Raises:
            CaseError: the checkpoint is unreadable or belongs to another case or mesh, or
                the time series was changed after it.
        """
        from busbarfem.io import checkpoint

        m, outdir = self.model, self.outdir
        comm = m.comm
        fp = self.fingerprint()
        err = None
        if comm.rank == 0:
            try:
                checkpoint.verify_case(checkpoint.read_state(outdir), m.case,
                                       m.source.directory if m.source is not None else None, str(outdir))
            except CaseError as exc:
                err = exc.message
        err = comm.bcast(err, root=0)
        if err:
            raise CaseError(err)
        th = m.thermal
        state = checkpoint.load(outdir, comm, th.T_n, mesh_fp=fp["mesh"])
        lines = None
        if comm.rank == 0:
            ts = Path(outdir) / "timeseries.csv"
            lines = len(ts.read_text().splitlines()) if ts.is_file() else 0
        lines = comm.bcast(lines, root=0)
        if lines < int(state["rows"]) + 1:
            raise CaseError(f"{Path(outdir) / 'timeseries.csv'} has {max(lines - 1, 0)} rows but the checkpoint "
                            f"needs {int(state['rows'])}: the output folder was changed after the checkpoint; "
                            "run again without --restart")
        th.restart_step()
        saved = state.get("contributions") or {}
        for c in m.contributions:
            if c.name in saved:
                c.load_state_dict(saved[c.name])
            elif c.provides_cells:
                c.load_state_dict(state.get("cells"))
            elif c.name == "runaway_monitor":
                c.load_state_dict(state.get("monitor"))
        m.controller.load_state_dict(state["controller"])
        return state
