"""Run progress on rank 0: a live ``rich`` bar on a terminal, plain lines otherwise.

Interactive (stderr is a TTY and not quiet): a spinner for set-up stages (meshing, ...)
and a bar over simulated time with step, dt, T_max, module voltage, elapsed time and ETA.
Non-interactive (CI, a pipe, a log file): one plain line every ``every`` steps plus the
first and the last. ``quiet``: nothing. Other ranks never print.

Usage::

    with Progress(comm, total_time=case.solver.t_end, quiet=args.quiet) as prog:
        with prog.stage("meshing"):
            sim.setup()
        sim.progress = prog.update        # called with each timeseries.csv row
        sim.run()
"""

from __future__ import annotations

import contextlib
import sys
import time

from rich.console import Console
from rich.progress import (BarColumn, Progress as RichProgress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Column

TIME, TMAX, VOLT, CURR = "time [s]", "T_max [K]", "voltage [V]", "current [A]"



def _values(row: dict) -> list[str]:
    """The recorded values a progress line shows: Tmax, module voltage, current."""
    parts = []
    if TMAX in row:
        parts.append(f"Tmax={row[TMAX]:.2f} K")
    if VOLT in row:
        parts.append(f"V={row[VOLT]:.5g} V")
    if CURR in row:
        parts.append(f"I={row[CURR]:.5g} A")
    return parts

class Progress:
    """Progress display (a context manager); only rank 0 of ``comm`` shows anything.

    Args:
        comm: MPI communicator (None: behave as rank 0).
        total_time: simulated end time [s]; None for a steady solve (no bar, no ETA).
        quiet: print nothing.
        every: steps between plain lines in non-interactive mode.
        stream: where to write (default stderr for the live bar, stdout for plain lines).
        interactive: force the live display on/off (default: the stream is a terminal).
        width: terminal width for the live display (default: the terminal's).

    The live line keeps its bar, percentage, elapsed time and ETA at a fixed width on the
    left and puts the status (T_max, V, I, dt, step: most important first) last, cut with
    an ellipsis to what is left, so at 80 columns the bar and the ETA stay visible and no
    line wraps.
    """

    def __init__(self, comm=None, total_time: float | None = None, quiet: bool = False, every: int = 10,
                 stream=None, interactive: bool | None = None, width: int | None = None):
        self.rank = 0 if comm is None else comm.rank
        self.total_time = total_time
        self.quiet = quiet or self.rank != 0
        self.every = max(1, int(every))
        self.stream = stream
        live_stream = stream if stream is not None else sys.stderr
        if interactive is None:
            interactive = bool(getattr(live_stream, "isatty", lambda: False)())
        self.interactive = interactive and not self.quiet
        self.step = 0
        self.last_time: float | None = None
        self.last_line: str = ""
        self._printed_step = 0
        self._t0 = time.perf_counter()
        self._rich: RichProgress | None = None
        self._task = None
        if self.interactive:
            self.console = Console(file=live_stream, force_terminal=True, width=width)
            fixed = {"no_wrap": True}
            self._rich = RichProgress(
                SpinnerColumn(table_column=Column(**fixed)),
                TextColumn("[bold]{task.description}", table_column=Column(max_width=12, overflow="ellipsis",
                                                                           **fixed)),
                BarColumn(bar_width=16, table_column=Column(**fixed)),
                TextColumn("{task.percentage:>3.0f}%", table_column=Column(**fixed)),
                TimeElapsedColumn(table_column=Column(**fixed)),
                TextColumn("ETA", table_column=Column(**fixed)),
                TimeRemainingColumn(table_column=Column(**fixed)),
                TextColumn("{task.fields[status]}", table_column=Column(ratio=1, overflow="ellipsis", **fixed)),
                console=self.console, transient=False, expand=True)

    # -------------------------------------------------------------- context
    def __enter__(self) -> Progress:
        if self._rich is not None:
            self._rich.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._rich is not None:
            self._rich.stop()
        elif not self.quiet and self.step and self._printed_step != self.step and self.last_line:
            self._plain(f"  {self.last_line}")  # the last step, if its line was not printed yet

    # -------------------------------------------------------------- output
    def _plain(self, text: str) -> None:
        print(text, file=self.stream if self.stream is not None else sys.stdout, flush=True)

    def log(self, text: str) -> None:
        """A message line (above the live bar when there is one)."""
        if self.quiet:
            return
        if self._rich is not None:
            self._rich.console.print(text)
        else:
            self._plain(text)

    @contextlib.contextmanager
    def stage(self, name: str):
        """Show ``name`` (e.g. "meshing") with a spinner while the block runs; log its duration."""
        t0 = time.perf_counter()
        task = None
        if self._rich is not None:
            task = self._rich.add_task(name, total=None, status="")
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            if task is not None:
                self._rich.update(task, total=1, completed=1, status=f"{dt:.1f} s")
                self._rich.stop_task(task)
            elif not self.quiet:
                self._plain(f"  {name}: {dt:.1f} s")

    def format_row(self, row: dict) -> str:
        """The one-line status of a time-series row."""
        t = row.get(TIME)
        parts = [f"step {self.step}"]
        if t is not None:
            parts.append(f"t={t:.6g} s" + (f"/{self.total_time:.6g}" if self.total_time else ""))
        if self.dt is not None:
            parts.append(f"dt={self.dt:.3g} s")
        parts += _values(row)
        return "  ".join(parts)

    def status_row(self, row: dict) -> str:
        """The live display's status: the values first, step and dt last (cut first)."""
        parts = _values(row)
        if self.dt is not None:
            parts.append(f"dt={self.dt:.3g} s")
        parts.append(f"step {self.step}")
        return "  ".join(parts)

    def update(self, row: dict) -> None:
        """Advance with one ``timeseries.csv`` row (keys as in its header)."""
        t = row.get(TIME)
        self.dt = (t - self.last_time) if (t is not None and self.last_time is not None) else None
        self.last_time = t
        self.step += 1
        if self.quiet:
            return
        line = self.format_row(row)
        self.last_line = line
        if self._rich is not None:
            if self._task is None:
                self._task = self._rich.add_task("solve", total=self.total_time, status="")
            status = self.status_row(row)
            if self.total_time and t is not None:
                self._rich.update(self._task, completed=min(t, self.total_time), status=status)
            else:
                self._rich.update(self._task, status=status)
        elif self.step == 1 or self.step % self.every == 0:
            elapsed = time.perf_counter() - self._t0
            eta = ""
            if self.total_time and t:
                eta = f"  ETA {max(0.0, elapsed * (self.total_time - t) / t):.0f} s"
            self._plain(f"  {line}{eta}")
            self._printed_step = self.step

    dt: float | None = None
