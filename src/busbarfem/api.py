"""The public Python API: load or build a case, run it on a communicator, read the result.

The CLI (``busbarfem run``) and notebooks use the same three steps, in the spirit of
PyBaMM's ``Simulation``::

    import busbarfem
    case = busbarfem.load_case("examples/busbar_straight.yaml", overrides=["load.current=250"])
    result = busbarfem.run(case)                 # MPI.COMM_WORLD unless comm= is given
    print(result.summary["terminal"]["resistance_ohm"])
    df = result.dataframe()                      # needs pandas (optional)
    result.plot("T_max [K]")

A case may also be built in Python from the same pydantic models the YAML file is
validated against (:class:`busbarfem.Case` and its sections), or from a plain ``dict``
with :func:`case_from_dict`; both go through the same checks as a file, so an error
names the dotted key and the valid choices.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from busbarfem.case.loader import CaseSource, _parse_override, _apply_override, read_yaml, validate_case_data
from busbarfem.case.model import Case

__all__ = ["Result", "case_from_dict", "load_case", "read_result", "run"]


def load_case(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Case:
    """Read and validate a YAML case file.

    Args:
        path: the case file.
        overrides: ``"key.path=value"`` strings, as ``--set`` on the command line.

    Returns:
        The validated :class:`Case` (it remembers its file and lines for later error messages).

    Raises:
        CaseError: anything wrong with the file, located by file, line and key.
    """
    data, src = read_yaml(path)
    for text in overrides:
        key, value = _parse_override(text)
        _apply_override(data, key, value)
        src.overrides.add(key)
    case = validate_case_data(data, src)
    from busbarfem.case.checks import check_references

    check_references(case, src)  # face and region names, as `busbarfem validate`
    case._source = src
    return case


def case_from_dict(data: dict, base_dir: str | Path = ".") -> Case:
    """Validate a case given as plain data (the YAML file's content as a ``dict``).

    Args:
        data: the case mapping (``geometry``, ``load``, ...).
        base_dir: folder that relative data-file paths in the case resolve against.

    Raises:
        CaseError: anything wrong, located by dotted key.
    """
    src = CaseSource(path=Path(base_dir).resolve() / "<python>")
    case = validate_case_data(json.loads(json.dumps(data, default=str)), src)
    case._source = src
    return case


def _source_of(case: Case) -> tuple[Case, CaseSource]:
    """The case and its source; a case built from the models is re-validated as a whole."""
    src = case._source
    if src is None:
        case = case_from_dict(case.model_dump(mode="json", exclude_unset=True))
        src = case._source
    return case, src


@dataclass
class Result:
    """What a run produced.

    Attributes:
        summary: the content of ``summary.json`` (terminal values, maxima, per-region heat,
            per-cell results, energy balance, events, stop reason).
        columns: the time series, one array per column (the ``timeseries.csv`` names, with units).
        outdir: the output folder, or None when the run wrote nothing.
    """

    summary: dict
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    outdir: Path | None = None

    @property
    def stop_reason(self) -> str:
        """Why the run ended (``"end time"``, a limit, ``"thermal runaway"``, ...)."""
        return self.summary.get("stop_reason", "")

    @property
    def time(self) -> np.ndarray:
        """Output times [s]."""
        return self.columns.get("time [s]", np.empty(0))

    def dataframe(self):
        """The time series as a pandas DataFrame (pandas is optional: ``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("Result.dataframe() needs pandas: pip install pandas") from exc
        return pd.DataFrame({k: np.asarray(v) for k, v in self.columns.items()})

    def cells(self) -> list[dict]:
        """Per-cell final results, one dict per cell with its ``name`` (empty without cells)."""
        return [{"name": n, **vals} for n, vals in self.summary.get("cells", {}).items()]

    def cell_series(self, quantity: str) -> dict[str, np.ndarray]:
        """One time series per cell: ``quantity`` is ``I``, ``V``, ``SOC``, ``T_mean``, ``q_irr`` or ``q_rev``."""
        out = {}
        for key, val in self.columns.items():
            if key.startswith(quantity + "_") and " [" in key:
                name = key[len(quantity) + 1:key.index(" [")]
                if name in self.summary.get("cells", {}):
                    out[name] = val
        return out

    def plot(self, *names: str, ax: Any = None):
        """Plot time-series columns against time (matplotlib); returns the axes.

        Args:
            names: column names, e.g. ``"T_max [K]"``, ``"voltage [V]"`` (default: ``T_max [K]``).
            ax: axes to draw on (default: a new figure).
        """
        import matplotlib

        if ax is None:
            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt

            _, ax = plt.subplots()
        for n in names or ("T_max [K]",):
            if n not in self.columns:
                raise KeyError(f"no column {n!r}; columns are: {', '.join(self.columns)}")
            ax.plot(self.time, self.columns[n], label=n)
        ax.set_xlabel("time [s]")
        ax.legend()
        return ax


def _columns(rows: list[dict]) -> dict[str, np.ndarray]:
    if not rows:
        return {}
    return {k: np.array([r.get(k, np.nan) for r in rows], dtype=float) for k in rows[0]}


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    data = np.array([[float(x) for x in ln.split(",")] for ln in lines[1:]], dtype=float).reshape(-1, len(header))
    return {k: data[:, i] for i, k in enumerate(header)}


def run(case: Case | str | Path, *, comm: Any = None, outdir: str | Path | None = None, lumped: bool = False,
        cache_dir: str | Path | None = None) -> Result:
    """Run a case and return its :class:`Result`.

    Args:
        case: a :class:`Case` (from :func:`load_case`, :func:`case_from_dict` or built from the
            models), or the path of a case file.
        comm: MPI communicator (default ``MPI.COMM_WORLD``); every rank must call ``run``.
        outdir: folder for the output files (fields, time series, summary); None writes no files.
            It must be new or empty (busbarfem marks it as its own; the rules of
            ``busbarfem run -o`` apply, see docs/guarantees.md).
        lumped: run the module as a lumped circuit (no mesh), as ``busbarfem run --lumped``.
        cache_dir: mesh cache folder (None: mesh every time).

    Raises:
        CaseError: the case is invalid (exit code 2 on the command line).
        SolveError: a solver failed (exit code 3); files written so far are kept.
    """
    import dolfinx_solver  # noqa: F401  (before mpi4py)
    from mpi4py import MPI

    from busbarfem.errors import CaseError

    if isinstance(case, (str, Path)):
        case = load_case(case)
    case, src = _source_of(case)
    comm = MPI.COMM_WORLD if comm is None else comm
    out = Path(outdir) if outdir is not None else None
    if out is not None:
        from busbarfem.io.outdir import prepare

        err = None
        if comm.rank == 0:
            try:
                prepare(out, False, src.path if src.path.name != "<python>" else None)
            except CaseError as exc:
                err = exc.message
        err = comm.bcast(err, root=0)
        if err:
            raise CaseError(err)
    summary, cols, _ = _execute(case, src, comm, out, lumped=lumped, cache_dir=Path(cache_dir) if cache_dir else None)
    return Result(summary=summary, columns=cols, outdir=out)


def _execute(case: Case, src: CaseSource, comm, out: Path | None, *, lumped: bool = False, cache_dir=None,
             progress=None, restarting: bool = False, checkpoint_every: int = 0, on_setup=None,
             setup_stage=None):
    """Run a validated case into a prepared output folder (shared by :func:`run` and the CLI).

    Args:
        progress: ``callable(row)`` after each recorded time (rank 0).
        restarting: continue from the checkpoint in ``out``.
        checkpoint_every: write a checkpoint every N steps (0: never).
        on_setup: ``callable(simulation)`` between set-up and run.
        setup_stage: context-manager factory wrapped around the set-up (a progress stage).

    Returns:
        ``(summary, columns, simulation)``; the simulation is None for a lumped run.
    """
    if case.abuse is not None and (lumped or case.solver.analysis != "transient"):
        # the 3D transient solves it (busbarfem.physics.abuse); a steady state or the lumped
        # circuit has no abuse kinetics
        what = "--lumped" if lumped else "a steady analysis"
        raise src.error(f"cell abuse (thermal runaway) needs a 3D transient (solver.analysis: transient), "
                        f"not {what}; the lumped abuse runner is busbarfem.cells.abuse_lumped.run_case_lumped",
                        "abuse" if lumped else "solver.analysis")
    if lumped:
        from busbarfem.lumped import run_lumped_case

        payload = None
        if comm.rank == 0:
            with tempfile.TemporaryDirectory() as tmp:
                folder = out if out is not None else Path(tmp)
                summary = run_lumped_case(case, src, folder)
                payload = (summary, _read_csv(folder / "timeseries.csv"))
        summary, cols = comm.bcast(payload, root=0)
        return summary, cols, None

    from busbarfem.coupling import Simulation

    with Simulation(case, src, comm, outdir=out, progress=progress, cache_dir=cache_dir,
                    restarting=restarting) as sim:
        sim.checkpoint_every = checkpoint_every
        if setup_stage is not None:
            with setup_stage():
                sim.setup()
        else:
            sim.setup()
        if on_setup is not None:
            on_setup(sim)
        summary = sim.run()
    return summary, _columns(sim.rows), sim


def read_result(folder: str | Path) -> Result:
    """A :class:`Result` read back from an output folder (``summary.json`` + ``timeseries.csv``)."""
    folder = Path(folder)
    summary: dict[str, Any] = json.loads((folder / "summary.json").read_text())
    ts = folder / "timeseries.csv"
    return Result(summary=summary, columns=_read_csv(ts) if ts.exists() else {}, outdir=folder)
