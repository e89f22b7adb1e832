"""``busbarfem compare RUN_A RUN_B ...``: two or more output folders side by side.

Reads each folder's ``summary.json`` and ``timeseries.csv`` (see :mod:`busbarfem.io.report`)
and prints a table of the headline numbers (resistance, power, temperatures, peak |J|, heat,
mesh size, run time) with, for every run after the first, its relative change against the
first run, ``(x - x_A) / x_A`` (and the difference in kelvin for temperatures). With
``-o DIR`` it also writes ``compare.csv``, ``compare.md`` and overlaid time-series plots
(``compare_timeseries.png``: terminal V, I, P, T max, peak |J| and heat of every run on
shared axes; steady runs get ``compare_headline.png``, bars of R, P, T max and |J| max). Typical use: mesh levels (a convergence check), design variants,
3D against ``--lumped``.

R is the terminal resistance V/I of a conductor assembly; for a module (whose cells' EMF
drives the current, so V/I is no resistance) it is the total loss resistance of the
summary's ``resistance`` block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from busbarfem.errors import CaseError


@dataclass(frozen=True)
class Metric:
    """One compared number: label, unit, and its path in summary.json."""

    key: str
    label: str
    unit: str
    kelvin: bool = False  # also print the difference in K


METRICS = (
    Metric("R", "R: terminal V/I, or the loss resistance of a module", "ohm"),
    Metric("R_interconnect", "interconnect resistance", "ohm"),
    Metric("P", "terminal power", "W"),
    Metric("V", "terminal voltage", "V"),
    Metric("I", "terminal current", "A"),
    Metric("T_max", "T max over the run", "K", kelvin=True),
    Metric("T_max_final", "T max at the last time", "K", kelvin=True),
    Metric("J_max", "|J| max over the run", "A/m^2"),
    Metric("heat", "heat generated at the last time", "W"),
    Metric("cells", "mesh cells", "-"),
    Metric("dofs", "electrical unknowns", "-"),
    Metric("time", "solve wall time", "s"),
)


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def headline(summary: dict) -> dict[str, float | None]:
    """The compared numbers of one run's summary.json (None where the run has none)."""
    term = summary.get("terminal") or {}
    res = summary.get("resistance") or {}
    ext = {k: (summary.get(k) or {}).get("value") if isinstance(summary.get(k), dict) else None
           for k in ("T_max", "T_max_final", "J_max")}
    r = _num(term.get("resistance_ohm"))
    return {
        "R": r if r is not None else _num(res.get("total_loss_ohm")),
        "R_interconnect": _num(res.get("interconnect_ohm")),
        "P": _num(term.get("power_W")), "V": _num(term.get("voltage_V")), "I": _num(term.get("current_A")),
        "T_max": _num(ext["T_max"]), "T_max_final": _num(ext["T_max_final"]), "J_max": _num(ext["J_max"]),
        "heat": _num((summary.get("heat") or {}).get("generated_W")),
        "cells": _num(summary.get("mesh_cells")), "dofs": _num((summary.get("dofs") or {}).get("electrical")),
        "time": _num((summary.get("timings_s") or {}).get("total")),
    }


def rel_change(x: float | None, ref: float | None) -> float | None:
    """(x - ref) / ref; None when either is missing or ref is 0."""
    if x is None or ref is None or ref == 0:
        return None
    return (x - ref) / ref


@dataclass
class Comparison:
    """The runs compared: names, folders, headline numbers and parsed files."""

    names: list[str]
    folders: list[Path]
    values: list[dict[str, float | None]]
    runs: list  # report.RunData

    def change(self, key: str, k: int) -> float | None:
        """Relative change of ``key`` of run ``k`` against the first run."""
        return rel_change(self.values[k][key], self.values[0][key])

    def rows(self) -> list[list]:
        """Table rows: label [unit], value per run, then (per later run) rel. change and dK."""
        out = []
        for m in METRICS:
            vals = [v[m.key] for v in self.values]
            if all(v is None for v in vals):
                continue
            row: list = [f"{m.label} [{m.unit}]", *vals]
            for k in range(1, len(vals)):
                row.append(self.change(m.key, k))
                if m.kelvin:
                    row.append(None if vals[k] is None or vals[0] is None else vals[k] - vals[0])
            out.append(row)
        return out

    def header(self) -> list[str]:
        """Column names of :meth:`rows`."""
        h = ["quantity", *self.names]
        for n in self.names[1:]:
            h.append(f"{n} vs {self.names[0]}: rel. change [-]")
            h.append(f"{n} - {self.names[0]} [K] (temperatures)")
        return h


def _names(folders: list[Path]) -> list[str]:
    """Short unique labels: the folder names (the parent too where they repeat)."""
    names = [f.name or str(f) for f in folders]
    if len(set(names)) < len(names):
        names = [f"{f.parent.name}/{f.name}" for f in folders]
    if len(set(names)) < len(names):
        names = [f"{n} ({k + 1})" for k, n in enumerate(names)]
    return names


def compare(folders) -> Comparison:
    """Load two or more output folders.

    Raises:
        CaseError: fewer than two folders, or one is not a busbarfem output folder.
    """
    from busbarfem.io.report import load_run

    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise CaseError("compare needs two or more output folders")
    runs = []
    for f in folders:
        if not f.is_dir():
            raise CaseError("not a folder (give the output folders of runs)", file=str(f))
        run = load_run(f)
        if not run.summary:
            raise CaseError("no summary.json: not the output folder of a finished run", file=str(f))
        runs.append(run)
    return Comparison(_names(folders), folders, [headline(r.summary) for r in runs], runs)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.6g}"


def format_table(cmp: Comparison) -> str:
    """The side-by-side table as aligned text (what ``busbarfem compare`` prints)."""
    header = ["quantity", *cmp.names] + [f"rel. change {n}" for n in cmp.names[1:]]
    lines = []
    for row in cmp.rows():
        m = next(m for m in METRICS if row[0] == f"{m.label} [{m.unit}]")
        vals = row[1:1 + len(cmp.names)]
        extra = row[1 + len(cmp.names):]
        changes = []
        i = 0
        for _ in cmp.names[1:]:
            rc = extra[i]
            i += 1
            text = "-" if rc is None else f"{100.0 * rc:+.4g} %"
            if m.kelvin:
                dk = extra[i]
                i += 1
                if dk is not None:
                    text += f" ({dk:+.4g} K)"
            changes.append(text)
        lines.append([row[0], *(_fmt(v) for v in vals), *changes])
    widths = [max(len(r[j]) for r in [header, *lines]) for j in range(len(header))]
    out = ["  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths)))
           for r in [header, *lines]]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


#: time-series columns overlaid in compare_timeseries.png (those every run has)
PLOT_COLUMNS = ("voltage [V]", "current [A]", "power [W]", "T_max [K]", "J_max [A/m^2]", "heat_generated [W]")


def _common_columns(cmp: Comparison) -> list[str]:
    """Time-series headers every run has (time first), in the first run's order."""
    sets = [{c.header for c in r.columns} for r in cmp.runs]
    return [c.header for c in cmp.runs[0].columns if all(c.header in s for s in sets)]


def write_outputs(cmp: Comparison, outdir: Path) -> list[Path]:
    """compare.csv, compare.md and the overlaid plots in ``outdir`` (already prepared)."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from busbarfem.io.report import UNIT_QUANTITY, _slug, tidy_axis

    outdir = Path(outdir)
    written = []
    with open(outdir / "compare.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cmp.header()[:1 + len(cmp.names)] + [h for h in cmp.header()[1 + len(cmp.names):]])
        for row in cmp.rows():
            m = next(m for m in METRICS if row[0] == f"{m.label} [{m.unit}]")
            vals, extra, full, i = row[1:1 + len(cmp.names)], row[1 + len(cmp.names):], [], 0
            for _ in cmp.names[1:]:
                full.append(extra[i])
                i += 1
                if m.kelvin:
                    full.append(extra[i])
                    i += 1
                else:
                    full.append(None)
            w.writerow([row[0], *("" if v is None else repr(v) for v in vals),
                        *("" if v is None else repr(v) for v in full)])
    written.append(outdir / "compare.csv")
    md = ["# busbarfem compare", "", "Runs: " + ", ".join(f"`{n}` ({f})" for n, f in zip(cmp.names, cmp.folders)),
          "", "```", format_table(cmp), "```", ""]
    cols = _common_columns(cmp)
    rows = [len(r.time.values) if r.time is not None else 0 for r in cmp.runs]
    shown = [h for h in PLOT_COLUMNS if h in cols]
    if "time [s]" in cols and min(rows) >= 2 and shown:
        fig, axes = plt.subplots(len(shown), 1, figsize=(7.5, 2.2 * len(shown) + 0.5), sharex=True, squeeze=False)
        for ax, header in zip(axes[:, 0], shown):
            unit = ""
            for n, r in zip(cmp.names, cmp.runs):
                c = next(c for c in r.columns if c.header == header)
                unit = c.unit
                ax.plot(r.time.values, c.values, lw=1.3, label=n)
            ax.set_title(f"{UNIT_QUANTITY.get(unit, 'quantity')}: {header}", fontsize=9, loc="left")
            ax.set_ylabel(header)
            ax.grid(alpha=0.3)
            tidy_axis(ax, unit, "s")
        axes[0, 0].legend(fontsize=8)
        axes[-1, 0].set_xlabel("time [s]")
        fig.suptitle("Time series of every run, overlaid")
        p = outdir / "compare_timeseries.png"
        fig.savefig(p, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(p)
        md.append(f"![time series]({p.name})\n")
    else:
        keys = [m for m in METRICS if m.key in ("R", "P", "T_max", "J_max")
                and all(v[m.key] is not None for v in cmp.values)]
        if keys:
            fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.4), squeeze=False)
            for ax, m in zip(axes[0], keys):
                ax.bar(cmp.names, [v[m.key] for v in cmp.values], color="#4f81bd")
                ax.set_title(f"{m.label} [{m.unit}]", fontsize=8)
                tidy_axis(ax, m.unit, None)
                vals = [v[m.key] for v in cmp.values]
                lo, hi = min(vals), max(vals)
                pad = 0.1 * (hi - lo) if hi > lo else 0.05 * abs(hi) or 1.0
                ax.set_ylim(lo - 3 * pad if m.kelvin else max(0.0, lo - 3 * pad), hi + pad)
                ax.tick_params(axis="x", labelrotation=30, labelsize=7)
            fig.tight_layout()
            p = outdir / "compare_headline.png"
            fig.savefig(p, dpi=110, bbox_inches="tight")
            plt.close(fig)
            written.append(p)
            md.append(f"![headline numbers]({p.name})\n")
    (outdir / "compare.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    written.append(outdir / "compare.md")
    return written


def add_cli(sub) -> None:
    """Register ``busbarfem compare`` on the CLI's subparsers."""
    c = sub.add_parser("compare", help="compare two or more output folders side by side",
                       description="Print the headline numbers of two or more output folders side by side with "
                                   "the relative change of each against the first (R, P, T max, |J| max, ...); "
                                   "with -o also write compare.csv, compare.md and overlaid plots.")
    c.add_argument("runs", nargs="+", help="output folders (the first is the reference)")
    c.add_argument("-o", "--output", default=None, help="folder for compare.csv, compare.md and plots")
    c.add_argument("--overwrite", action="store_true", help="replace an earlier compare output in -o")
    c.add_argument("-q", "--quiet", action="store_true", help="no output")


def run_cli(args, log=print) -> int:
    """``busbarfem compare``: print the table; with -o write the files. Returns the exit code."""
    cmp = compare(args.runs)
    log(format_table(cmp))
    if args.output is not None:
        from busbarfem.io.outdir import prepare

        if not str(args.output).strip():
            raise CaseError("-o/--output is empty; give a folder name")
        prepare(Path(args.output), args.overwrite)
        for p in write_outputs(cmp, Path(args.output)):
            log(f"written: {p}")
    return 0
