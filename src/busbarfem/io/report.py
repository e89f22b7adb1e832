"""The run report: ``report.html`` (self-contained, opens offline) and ``report.md``.

Everything shown is read from the run's own files: ``case.resolved.yaml`` (case,
versions, MPI size), ``timeseries.csv`` (every ``name [unit]`` column), ``summary.json``
(terminal, heat per region, extrema, stop reason, timings), ``hotspots.json`` (if written)
and ``fields.xdmf``/``.h5`` (renders). No number is typed in here. In the HTML every
numeric table cell carries its full-precision value in ``data-value`` so tests (and
scripts) can compare it with the source files.

Time series are grouped for plotting: module voltage / current / power; per-cell
columns ``<quantity>_cell_<id> [unit]`` one plot per quantity with a line per cell; the
remaining columns one plot per unit. A steady run (one row) gets tables instead of plots.

Modules (per-cell columns ``I_cell_*``) get the cell balance (:func:`cell_balance`: current
share within the parallel group, spreads over cells; the plotted arrays are written to
``report_files/cell_balance.csv``), per-cell T max and internal delta-T from the stored
fields, module maps and the interconnect share of the heat. Conductors get the resistance
breakdown by region (:func:`resistance_breakdown`) and log-scale |J| renders with the
crowding region outlined. Plots follow one style: titles name the quantity and unit, tick
labels are plain numbers or SI-prefixed (:func:`tidy_axis`), never an offset like
``1e-11+1e1``.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from busbarfem.errors import CaseError

REPORT_FILES = "report_files"
_UNIT_RE = re.compile(r"^(?P<name>.+?)\s*\[(?P<unit>[^\]]*)\]\s*$")
_CELL_RE = re.compile(r"^(?P<qty>.+?)_(?P<cell>cell_[A-Za-z0-9_]+)$")
MODULE_COLUMNS = ("voltage", "current", "power")


# ---------------------------------------------------------------------------- data
@dataclass
class Column:
    """One time-series column: header, quantity name, unit and values."""

    header: str
    name: str
    unit: str
    values: list[float]


@dataclass
class RunData:
    """The files of one output folder, parsed."""

    outdir: Path
    case: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    hotspots: dict | None = None
    columns: list[Column] = field(default_factory=list)

    @property
    def time(self) -> Column | None:
        """The ``time [s]`` column (None without a time series)."""
        return next((c for c in self.columns if c.name == "time"), None)


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def read_timeseries(path: Path) -> list[Column]:
    """Columns of ``timeseries.csv`` (headers ``name [unit]``; others get unit "")."""
    if not path.exists():
        return []
    from busbarfem.safeio import MAX_ARTEFACT_BYTES, read_text

    try:
        rows = list(csv.reader(io.StringIO(read_text(path, "timeseries file", max_bytes=MAX_ARTEFACT_BYTES),
                                           newline="")))
    except csv.Error as exc:
        raise CaseError(f"timeseries file is corrupt: {exc}", file=str(path)) from None
    if not rows:
        return []
    header, body = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
    cols = []
    for j, h in enumerate(header):
        m = _UNIT_RE.match(h)
        name, unit = (m["name"], m["unit"]) if m else (h.strip(), "")
        cols.append(Column(h, name, unit, [_float(r[j]) for r in body]))
    return cols


def _read_artefact(path: Path, kind: str):
    """A JSON/YAML mapping written by a run; a corrupt, truncated or special file is a CaseError."""
    from busbarfem.safeio import MAX_ARTEFACT_BYTES, read_text

    text = read_text(path, f"{path.name}", max_bytes=MAX_ARTEFACT_BYTES)
    try:
        data = json.loads(text) if kind == "json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise CaseError(f"corrupt JSON ({exc.msg}); rerun the case or delete the file",
                        file=str(path), line=exc.lineno) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise CaseError(f"corrupt YAML ({getattr(exc, 'problem', None) or exc}); rerun the case",
                        file=str(path), line=mark.line + 1 if mark else None) from None
    except RecursionError:
        raise CaseError("nested too deeply to be a busbarfem artefact", file=str(path)) from None
    if data is not None and not isinstance(data, dict):
        raise CaseError(f"expected a mapping, found {type(data).__name__}; the file is not a busbarfem "
                        "artefact", file=str(path), line=1)
    return data


def load_run(outdir: Path) -> RunData:
    """Parse the output folder's files (missing ones are left empty)."""
    outdir = Path(outdir)
    run = RunData(outdir)
    if (outdir / "case.resolved.yaml").exists():
        run.case = _read_artefact(outdir / "case.resolved.yaml", "yaml") or {}
    if (outdir / "summary.json").exists():
        run.summary = _read_artefact(outdir / "summary.json", "json")
    if (outdir / "hotspots.json").exists():
        run.hotspots = _read_artefact(outdir / "hotspots.json", "json")
    run.columns = read_timeseries(outdir / "timeseries.csv")
    return run


def group_columns(columns: list[Column]) -> dict[str, list[Column]]:
    """Plot groups: "module", "cell:<quantity>" (one line per cell), "unit:<unit>"."""
    groups: dict[str, list[Column]] = {}
    for c in columns:
        if c.name == "time":
            continue
        m = _CELL_RE.match(c.name)
        if m:
            key = f"cell:{m['qty']}"
        elif c.name in MODULE_COLUMNS:
            key = "module"
        else:
            key = f"unit:{c.unit}"
        groups.setdefault(key, []).append(c)
    return groups


# ---------------------------------------------------------------------------- figures
@dataclass
class Figure:
    """A PNG made for the report."""

    name: str
    caption: str
    png: bytes
    note: str = ""


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


#: what a unit measures, for plot titles ("<quantity> [<unit>]")
UNIT_QUANTITY = {"K": "Temperature", "W": "Heat flow / power", "A": "Current", "V": "Voltage", "A/m^2": "Current density",
                 "J": "Energy", "-": "Dimensionless quantity", "s": "Time", "ohm": "Resistance", "Ah": "Charge"}
#: units whose tick labels get SI prefixes (k, M, m, u, ...); the others are plain numbers
_ENG_UNITS = {"W", "A", "V", "A/m^2", "J", "ohm", "Ah", "W/m^3", "s"}


def plain_formatter(unit: str):
    """Tick formatter: SI prefixes for SI-prefixable units, else plain numbers without an
    offset (a constant 10 A reads "10", never "1e-11+1e1")."""
    from matplotlib.ticker import EngFormatter, ScalarFormatter

    if unit in _ENG_UNITS:
        return EngFormatter(unit="", sep=" ")
    f = ScalarFormatter(useOffset=False)
    f.set_scientific(False)
    return f


def tidy_axis(ax, yunit: str, xunit: str | None = "s") -> None:
    """Plain/SI-prefixed tick labels on both axes; a y range of at least 1e-6 of the data's
    magnitude, so a constant (to rounding) series shows as a flat line at its value."""
    ax.yaxis.set_major_formatter(plain_formatter(yunit))
    if xunit is not None:
        ax.xaxis.set_major_formatter(plain_formatter(xunit))
    ys = [y for ln in ax.get_lines() for y in ln.get_ydata() if isinstance(y, (int, float)) and math.isfinite(y)]
    if ys:
        lo, hi = min(ys), max(ys)
        mag = max(abs(lo), abs(hi))
        if hi - lo <= 1e-6 * mag or (mag == 0.0):
            pad = 0.05 * mag if mag else 1.0
            ax.set_ylim(lo - pad, hi + pad)


def data_range(values: list[float], q: float = 0.0) -> tuple[float, float]:
    """(lo, hi) of the finite values (``q``: fraction dropped at each end, by rank)."""
    f = sorted(v for v in values if math.isfinite(v))
    if not f:
        return (0.0, 1.0)
    k = int(q * (len(f) - 1))
    return f[k], f[len(f) - 1 - k]


def critical_current_plot(curve: list[tuple[float, float | None]], i_crit: float, path: Path,
                          t_cap_factor: float = 3.0, T_ref: float | None = None) -> Path:
    """Steady T_max vs current with I_crit marked.

    The steady temperature grows without bound as I -> I_crit, so the bisection's last solves
    below I_crit reach absurd values (1e6 K and more) that would flatten the curve. The y axis
    therefore ends at ``t_cap_factor`` times the largest temperature rise over ``T_ref`` of
    the solves at or below 95 % of I_crit (T_ref + 500 K without such solves); the solves
    above the axis are noted on the plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted((i, t) for i, t in curve if t is not None and math.isfinite(t))
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label="steady T_max")
    ax.axvline(i_crit, color="r", ls="--", label=f"I_crit = {i_crit:.4g} A")
    if pts:
        base = T_ref if T_ref is not None else min(p[1] for p in pts)
        safe = [p[1] for p in pts if p[0] <= 0.95 * i_crit]
        rise = max(safe) - base if safe else 0.0
        top = base + t_cap_factor * rise if rise > 0 else base + 500.0
        shown = [p[1] for p in pts if p[1] <= top] or [base]
        span = max(min(top, max(shown)) - min(base, min(shown)), 1.0)
        ax.set_ylim(min(base, min(shown)) - 0.05 * span, min(top, max(shown)) + 0.1 * span)
        if any(p[1] > top for p in pts):
            ax.annotate("solves above the axis: T grows without bound as I -> I_crit", (0.02, 0.95),
                        xycoords="axes fraction", fontsize=8, va="top")
    ax.set_title("Steady maximum temperature T_max [K] vs current [A]")
    ax.set_xlabel("current [A]")
    ax.set_ylabel("T_max [K]")
    tidy_axis(ax, "K", "A")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_group(time: Column, cols: list[Column], title: str, stacked: bool) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if stacked:
        fig, axes = plt.subplots(len(cols), 1, figsize=(7.5, 2.1 * len(cols) + 0.4), sharex=True, squeeze=False)
        for ax, c in zip(axes[:, 0], cols):
            ax.plot(time.values, c.values, lw=1.5)
            ax.set_ylabel(c.header)
            ax.set_title(f"{c.name} [{c.unit}]", fontsize=9, loc="left")
            ax.grid(alpha=0.3)
            tidy_axis(ax, c.unit, time.unit)
        axes[-1, 0].set_xlabel(time.header)
        fig.suptitle(title)
    else:
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        for c in cols:
            m = _CELL_RE.match(c.name)
            ax.plot(time.values, c.values, lw=1.2, label=m["cell"] if m else c.name)
        ax.set_xlabel(time.header)
        ax.set_ylabel(f"{UNIT_QUANTITY.get(cols[0].unit, cols[0].name)} [{cols[0].unit}]")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=max(1, len(cols) // 8), loc="best")
        tidy_axis(ax, cols[0].unit, time.unit)
    return _png(fig)


def _bar_chart(labels: list[str], values: list[float], xlabel: str, title: str = "") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(labels) + 1.2))
    ax.barh(labels[::-1], values[::-1], color="#c0504d")
    ax.set_xlabel(xlabel)
    ax.set_title(title or xlabel)
    ax.grid(axis="x", alpha=0.3)
    unit = xlabel[xlabel.rfind("[") + 1:xlabel.rfind("]")] if "[" in xlabel else ""
    ax.xaxis.set_major_formatter(plain_formatter(unit))
    return _png(fig)


def _renders(run: RunData, workdir: Path) -> tuple[list[Figure], str]:
    """T and |J| renders with hot spots, and the clipped view; (figures, note if skipped)."""
    from busbarfem.io import readback, render

    try:
        names = readback.field_names(run.outdir)
    except (OSError, ValueError) as exc:
        return [], f"Renders skipped: the field file could not be read ({exc})."
    ok, why = render.render_available()
    if not ok:
        return [], f"Renders skipped: {why}"
    hs = run.hotspots or {}
    s = run.summary
    # the renders show the last field time: mark the extrema of that time
    last = {k: s.get(f"{k}_final") or s.get(k) for k in ("T_max", "J_max")}
    last = {k: v for k, v in last.items() if isinstance(v, dict) and "x" in v}
    figs = []
    jobs = []
    if "T" in names:
        jobs.append(("render_T", "T", hs.get("T") or ([last["T_max"]] if "T_max" in last else None), None,
                     "Temperature on the geometry; numbered markers: the hot spots of the table above."))
    if "J_magnitude" in names:
        jobs.append(("render_J", "J_magnitude", hs.get("J_magnitude") or ([last["J_max"]] if "J_max" in last else None),
                     None, "Current-density magnitude |J| on the geometry, log colour scale (1st percentile of the "
                     "positive values to the maximum); magenta: the crowding region (|J| at least half the "
                     "maximum); markers: |J| hot spots."))
    if "T" in names:
        weld = render.hottest_in_regions(run.outdir, "weld_", hs.get("region_tags", {})) if hs else None
        if weld is not None:
            point, cap = weld[2], (f"Section through the hottest weld, {weld[0]} (T = {weld[1]:.6g} K at "
                                   f"{_xyz(weld[2])}).")
        elif "T_max" in last:
            tm = last["T_max"]
            point, cap = tm["x"], (f"Section through the temperature maximum in {tm['region']} "
                                   f"(T = {tm['value']:.6g} K at {_xyz(tm['x'])}).")
        else:
            point = None
        if point is not None:
            jobs.append(("render_T_section", "T", [point], point, cap))
            if "J_magnitude" in names:
                jobs.append(("render_J_section", "J_magnitude", [point], point,
                             "|J| on the same section, log colour scale: " + cap[0].lower() + cap[1:]))
    for name, fld, markers, clip, cap in jobs:
        png = workdir / f"{name}.png"
        try:
            info = render.render_field(run.outdir, fld, png, markers=markers, clip_through=clip)
        except Exception as exc:  # a render failing must not lose the rest of the report
            figs.append(Figure(name, cap, b"", note=f"render failed: {type(exc).__name__}: {exc}"))
            continue
        if clip is not None:
            axis = "xyz"[info.clip_normal.index(1.0)]
            cap += f" Cut plane normal to {axis}."
        figs.append(Figure(name, cap, png.read_bytes()))
    figs += _plate_renders(run, workdir, names)
    return figs, ""


def _plate_renders(run: RunData, workdir: Path, names) -> list[Figure]:
    """Each cold plate alone, seen from above, on its own temperature range (issue 15)."""
    from busbarfem.io import render

    plates = (run.summary.get("cooling") or {}).get("plate_temperature_K") or {}
    tags = {nm: tag for tag, nm in ((run.hotspots or {}).get("region_tags") or {}).items()}
    figs = []
    for plate, rng in plates.items():
        if plate not in tags or "T" not in names or "region_id" not in names:
            continue
        name = f"render_T_plate_{plate}"
        cap = (f"Temperature of the cold plate {plate} seen from above (down the z axis: its top face, "
               f"under the cells), on the plate's own range {rng['min']:.6g}-{rng['max']:.6g} K "
               "(summary.json cooling.plate_temperature_K).")
        png = workdir / f"{name}.png"
        try:
            render.render_field(run.outdir, "T", png, regions=[tags[plate]], top_view=True, title=f"{plate}: T, top view")
        except Exception as exc:  # a render failing must not lose the rest of the report
            figs.append(Figure(name, cap, b"", note=f"render failed: {type(exc).__name__}: {exc}"))
            continue
        figs.append(Figure(name, cap, png.read_bytes()))
    return figs


def _where(ext: dict) -> str:
    """"region at (x, y, z) mm, t = ... s" of an extremum (lumped ones have no place)."""
    parts = [str(ext.get("region", ""))]
    if ext.get("x") is not None:
        parts.append(f"at {_xyz(ext['x'])}")
    if ext.get("time_s") is not None:
        parts.append(f"t = {ext['time_s']:.6g} s")
    return " ".join(p for p in parts if p)


def _xyz(x) -> str:
    return "(" + ", ".join(f"{v * 1e3:.3f}" for v in x) + ") mm"


# ---------------------------------------------------------------------------- tables
class Doc:
    """Builds the HTML and Markdown versions side by side."""

    def __init__(self):
        self.html: list[str] = []
        self.md: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")
        self.md.append(f"\n{'#' * level} {text}\n")

    def para(self, text: str) -> None:
        self.html.append(f"<p>{html.escape(text)}</p>")
        self.md.append(f"{text}\n")

    def table(self, header: list[str], rows: list[list]) -> None:
        """Rows of str or float; floats get ``data-value`` with the exact value."""
        h = ["<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in header) + "</tr></thead><tbody>"]
        for r in rows:
            h.append("<tr>" + "".join(_td(v) for v in r) + "</tr>")
        h.append("</tbody></table>")
        self.html.append("".join(h))
        self.md.append("| " + " | ".join(_md_cell(c) for c in header) + " |")
        self.md.append("|" + "---|" * len(header))
        for r in rows:
            self.md.append("| " + " | ".join(_md_cell(_fmt(v)) for v in r) + " |")
        self.md.append("")

    def figure(self, fig: Figure, files_dir: Path) -> None:
        if not fig.png:
            self.para(f"{fig.caption} ({fig.note})")
            return
        b64 = base64.b64encode(fig.png).decode("ascii")
        self.html.append(f'<figure><img alt="{html.escape(fig.name)}" src="data:image/png;base64,{b64}"/>'
                         f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>")
        files_dir.mkdir(exist_ok=True)
        (files_dir / f"{fig.name}.png").write_bytes(fig.png)
        self.md.append(f"![{fig.name}]({REPORT_FILES}/{fig.name}.png)\n\n*{fig.caption}*\n")


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, (int,)):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def _td(v) -> str:
    if isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool)):
        return f'<td class="num" data-value="{v!r}">{html.escape(_fmt(v))}</td>'
    return f"<td>{html.escape(_fmt(v))}</td>"


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222}h1{border-bottom:2px solid #c0504d}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
figure{margin:1em 0}img{max-width:100%;border:1px solid #eee}figcaption{font-size:.9em;color:#555}
.note{color:#8a4b00}"""


# ---------------------------------------------------------------------------- report
def _case_section(doc: Doc, run: RunData) -> None:
    c, s = run.case, run.summary
    prov = c.get("_provenance", {})
    ver = prov.get("versions", {})
    rows = [["case", str(c.get("name", s.get("case", "")))]]
    if c.get("description"):
        rows.append(["description", str(c["description"])])
    for k, label in (("case_file", "case file"), ("created", "created")):
        if prov.get(k):
            rows.append([label, str(prov[k])])
    if prov.get("overrides"):
        rows.append(["overrides", " ".join(prov["overrides"])])
    mpi = ver.get("mpi_size", s.get("mpi_size"))
    if mpi is not None:
        rows.append(["MPI ranks", int(mpi)])
    analysis = (c.get("solver") or {}).get("analysis")
    if analysis:
        rows.append(["analysis", str(analysis)])
    if "stop_reason" in s:
        rows.append(["stop reason", str(s["stop_reason"])])
    if isinstance(s.get("mesh_cells"), int):
        rows.append(["mesh cells", s["mesh_cells"]])
    for k, v in (s.get("dofs") or {}).items():
        rows.append([f"{k} dofs", v])
    doc.heading("Case")
    doc.table(["item", "value"], rows)
    if ver:
        doc.table(["software", "version"], [[k, str(v)] for k, v in ver.items() if k != "mpi_size"])
    if "runaway" in s:
        doc.html.append(f'<p class="note"><b>Thermal runaway:</b> {html.escape(str(s["runaway"].get("message", "")))}</p>')
        doc.md.append(f"**Thermal runaway:** {s['runaway'].get('message', '')}\n")


def _results_section(doc: Doc, run: RunData) -> None:
    s = run.summary
    rows = []
    term = s.get("terminal") or {}
    for k, label in (("voltage_V", "terminal voltage [V]"), ("current_A", "terminal current [A]"),
                     ("resistance_ohm", "resistance V/I [ohm]"), ("power_W", "power [W]")):
        if term.get(k) is not None:
            rows.append([label, float(term[k]), ""])
    for k, label in (("interconnect_ohm", "interconnect resistance (passive-conductor Joule / I^2) [ohm]"),
                     ("cells_ohm", "cells' DC resistance (irreversible + collector Joule heat / I^2) [ohm]"),
                     ("cells_R0_ohm", "cells' ohmic resistance R0, series-parallel [ohm]"),
                     ("total_loss_ohm", "total loss resistance [ohm]")):
        v = (s.get("resistance") or {}).get(k)
        if v is not None:
            rows.append([label, float(v), ""])
    # maxima over the run, then the values at the last time (older summaries: T_max only)
    for k, label, unit in (("T_max", "T max", "K"), ("T_min", "T min", "K"), ("J_max", "|J| max", "A/m^2"),
                           ("cell_current_max", "cell |I| max", "A")):
        for key, when in ((k, " over the run"), (f"{k}_final", " at the last time")):
            if isinstance(s.get(key), dict):
                rows.append([f"{label}{when if f'{k}_final' in s else ''} [{unit}]", float(s[key]["value"]),
                             _where(s[key])])
    heat = s.get("heat") or {}
    for k, v in heat.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            unit = "[-]" if k.endswith("_rel") else "[W]"
            rows.append([f"{k.removesuffix('_W')} {unit}", float(v), ""])
    for k, v in (s.get("energy") or {}).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            rows.append([f"energy: {k}", float(v), ""])
    if rows:
        doc.heading("Results")
        doc.table(["quantity", "value", "where"], rows)


def _error_estimate_section(doc: Doc, run: RunData) -> None:
    """``--error-estimate``: the reference discretisation and the relative changes."""
    est = run.summary.get("error_estimate")
    if not est:
        return
    doc.heading("Discretisation error estimate")
    if not est.get("method"):
        doc.para(str(est.get("failed") or est.get("note") or "not estimated"))
        return
    ref = est.get("reference") or {}
    doc.para(f"One extra solve ({est['method']}; {ref.get('mesh_cells', '?')} cells, "
             f"{(ref.get('dofs') or {}).get('electrical', '?')} electrical unknowns). The changes "
             "(this run minus the finer one) estimate the discretisation error of the results above.")
    rows = [["R relative change [-]", est.get("R_rel_change")], ["P relative change [-]", est.get("P_rel_change")],
            ["T max change [K]", est.get("Tmax_change_K")]]
    doc.table(["quantity", "value"], [[k, "n/a" if v is None else float(v)] for k, v in rows])
    if est.get("note"):
        doc.para(str(est["note"]))


def _timeseries_section(doc: Doc, run: RunData, figs_dir: Path) -> None:
    t = run.time
    if t is None or not t.values:
        return
    groups = group_columns(run.columns)
    doc.heading("Time series")
    if len(t.values) < 2:
        doc.para("Single output time (steady state): values at that time.")
        doc.table(["quantity", "value"], [[c.header, c.values[0]] for c in run.columns])
        return
    doc.para(f"{len(t.values)} rows from {_fmt(t.values[0])} to {_fmt(t.values[-1])} s, from timeseries.csv.")
    if "module" in groups:
        doc.heading("Module voltage, current and power", 3)
        doc.figure(Figure("ts_module", "Module terminal voltage, current and power vs time.",
                          _plot_group(t, groups["module"], "Module terminal voltage [V], current [A], power [W]",
                                      stacked=True)), figs_dir)
    cell_keys = sorted(k for k in groups if k.startswith("cell:"))
    if cell_keys:
        doc.heading("Per-cell quantities", 3)
    for k in cell_keys:
        qty = k.split(":", 1)[1]
        cols = groups[k]
        doc.figure(Figure(f"ts_cell_{_slug(qty)}", f"{qty} [{cols[0].unit}] of every cell vs time.",
                          _plot_group(t, cols, f"{qty} [{cols[0].unit}] per cell", stacked=False)), figs_dir)
    unit_keys = [k for k in groups if k.startswith("unit:")]
    if unit_keys:
        doc.heading("Other quantities", 3)
    for k in unit_keys:
        unit = k.split(":", 1)[1]
        cols = groups[k]
        doc.figure(Figure(f"ts_unit_{_slug(unit) or 'none'}", ", ".join(c.name for c in cols) + f" [{unit}] vs time.",
                          _plot_group(t, cols, f"{UNIT_QUANTITY.get(unit, 'Other quantities')} [{unit}]",
                                      stacked=False)), figs_dir)
    last = [[c.header, c.values[-1]] for c in run.columns]
    doc.para("Values at the last time:")
    doc.table(["quantity", "value"], last)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def _heat_section(doc: Doc, run: RunData, figs_dir: Path) -> None:
    """Heat per region at the last time by source (Joule, irreversible, reversible, ...)
    with its total, and the heat over the run [J] when the run has one."""
    s = run.summary
    joule = (s.get("joule_power_W") or {}).get("by_region") or {}
    by_region = s.get("heat_by_region") or (s.get("heat") or {}).get("by_region") or {}
    # older summaries and synthetic files: {region: total W}
    by_region = {r: (v if isinstance(v, dict) else {"total_W": v}) for r, v in by_region.items()}
    energy = (s.get("energy") or {}).get("heat_by_region_J") or {}
    if not joule and not by_region:
        return
    regions = list(dict.fromkeys(list(by_region) + list(joule)))
    sources = list(dict.fromkeys(k for v in by_region.values() for k in v if k != "total_W"))
    if joule and "joule_W" not in sources:
        sources.insert(0, "joule_W")

    def value(r, k):
        if k == "joule_W" and r in joule:
            return float(joule[r])
        return float(by_region.get(r, {}).get(k, 0.0))

    totals = {r: float(by_region[r]["total_W"]) if "total_W" in by_region.get(r, {}) else value(r, "joule_W")
              for r in regions}
    grand = sum(totals.values())
    header = ["region", *(f"{k.removesuffix('_W')} heat [W]" for k in sources), "total heat [W]", "share [%]"]
    if energy:
        header.append("heat over the run [J]")
    rows = []
    for r in sorted(regions, key=lambda r: -totals[r]):
        row: list = [r, *(value(r, k) for k in sources), totals[r], 100.0 * totals[r] / grand if grand else 0.0]
        if energy:
            row.append(float(energy.get(r, 0.0)))
        rows.append(row)
    foot: list = ["total", *(sum(value(r, k) for r in regions) for k in sources), grand, 100.0 if grand else 0.0]
    if energy:
        foot.append(float(sum(energy.values())))
    rows.append(foot)
    doc.heading("Heat per region")
    doc.para("Heat generated in every region at the last time, by source; the sources of a region add up "
             "to its total, and the totals to the heat generated in the whole model.")
    doc.table(header, rows)
    order = sorted(totals, key=lambda r: -totals[r])
    doc.figure(Figure("heat_by_region", "Heat generated per region, all sources (summary.json).",
                      _bar_chart(order, [totals[r] for r in order], "heat [W]",
                                 "Heat generated per region, all sources [W]")), figs_dir)
    if energy and any(energy.values()):
        order = sorted(energy, key=lambda r: -energy[r])
        doc.figure(Figure("heat_energy_by_region", "Heat generated per region over the run, all sources "
                          "(summary.json energy.heat_by_region_J).",
                          _bar_chart(order, [energy[r] for r in order], "heat [J]",
                                     "Heat generated per region over the run [J]")), figs_dir)


def _coolant_plot(circuits: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    for cname, circ in circuits.items():
        for chname, ch in circ["channels"].items():
            ax.plot([x * 1e3 for x in ch["position"]], ch["temperature"], "o-", ms=2.5, lw=1.2,
                    label=f"{cname}/{chname}")
    ax.set_xlabel("distance from the inlet [mm]")
    ax.set_ylabel("coolant temperature [K]")
    ax.set_title("Coolant temperature along the channels (last time)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    tidy_axis(ax, "K", None)
    return _png(fig)


def _coolant_section(doc: Doc, run: RunData, figs_dir: Path) -> None:
    """Cold plates: per circuit and channel outlet T, heat, dp, pumping power; T along each channel."""
    block = run.summary.get("cooling")
    if not block or not block.get("circuits"):
        return
    doc.heading("Coolant")
    spread = block.get("cell_temperature_spread_K")
    doc.para("Coolant circuits at the last time (1D channel model coupled to the solid; docs/cooling.md). "
             f"Heat taken up by the coolant: {_fmt(block.get('heat_removed_W'))} W"
             + (f"; cell-to-cell spread of the mean cell temperatures: {_fmt(spread)} K." if spread is not None
                else "."))
    rows = []
    for cname, c in block["circuits"].items():
        rows.append([cname, "(circuit)", float(c["mass_flow"]), float(c["outlet_temperature"]),
                     float(c["heat_removed"]), float(c["pressure_drop"]), float(c["pumping_power"])])
        for chname, ch in c["channels"].items():
            rows.append([cname, chname, float(ch["mass_flow"]), float(ch["outlet_temperature"]),
                         float(ch["heat_removed"]), float(ch["pressure_drop"]), ""])
    doc.table(["circuit", "channel", "mass flow [kg/s]", "outlet T [K]", "heat removed [W]",
               "pressure drop [Pa]", "pumping power [W]"], rows)
    doc.figure(Figure("coolant_temperature", "Coolant temperature along each channel at the last time "
                      "(cooling_channels.csv).", _coolant_plot(block["circuits"])), figs_dir)


def _hotspot_section(doc: Doc, run: RunData) -> None:
    hs = run.hotspots
    if not hs:
        return
    units = hs.get("units", {})
    doc.heading("Hot spots")
    sep = hs.get("min_separation_m")
    if sep is not None:
        doc.para(f"Separated local maxima (at least {sep * 1e3:.3g} mm apart), largest first; "
                 "the numbers match the markers in the renders.")
    for key, label in (("T", "Temperature"), ("J_magnitude", "Current density |J|")):
        spots = hs.get(key) or []
        if not spots:
            continue
        doc.heading(f"{label} [{units.get(key, '')}]", 3)
        doc.table(["#", "value", "region", "x [mm]", "y [mm]", "z [mm]"],
                  [[i + 1, float(p["value"]), p.get("region", ""), *(float(c) * 1e3 for c in p["x"])]
                   for i, p in enumerate(spots)])


def _cells_section(doc: Doc, run: RunData) -> None:
    cells = run.summary.get("cells")
    if not isinstance(cells, dict) or not cells:
        return
    keys = list(dict.fromkeys(k for v in cells.values() for k in v))
    doc.heading("Cells at the last time")
    doc.table(["cell", *keys], [[n, *(float(v[k]) if isinstance(v.get(k), (int, float)) else v.get(k, "")
                                      for k in keys)] for n, v in cells.items()])


def _abuse_section(doc: Doc, run: RunData, figs_dir: Path) -> None:
    """Cell thermal runaway (summary.json ``abuse``): per-cell table, temperatures with the
    onsets marked, and the onset order."""
    ab = run.summary.get("abuse")
    if not isinstance(ab, dict) or not ab.get("cells"):
        return
    cells = ab["cells"]
    doc.heading("Thermal runaway")
    prop = ab.get("propagation", {})
    speed = prop.get("speed_cells_per_min")
    doc.para(f"Kinetics {ab.get('kinetics')}, evaluated per {ab.get('evaluation')}; "
             f"{len(prop.get('order', []))} of {len(cells)} cells had their onset"
             + (f", propagation {speed:.3g} cells/min." if speed else "."))
    reactions = ab.get("reactions", [])
    doc.table(["cell", "onset [s]", "above threshold [s]", "peak T [K]", *[f"{r} [J]" for r in reactions]],
              [[n, c.get("onset_time_s") if c.get("onset_time_s") is not None else "-",
                c.get("threshold_time_s") if c.get("threshold_time_s") is not None else "-",
                c.get("peak_temperature_K"), *[c["energy_J"].get(r, 0.0) for r in reactions]]
               for n, c in cells.items()])
    t = run.time
    Tcols = {c.name[len("abuse_T_"):]: c for c in run.columns if c.name.startswith("abuse_T_cell_")}
    if t is not None and len(t.values) > 1 and Tcols:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        for n, c in Tcols.items():
            line, = ax.plot(t.values, c.values, lw=1.2, label=n)
            on = cells.get(n, {}).get("onset_time_s")
            if on is not None:
                import numpy as np

                ax.plot([on], [float(np.interp(on, t.values, c.values))], "o", color=line.get_color())
        ax.set_xlabel(t.header)
        ax.set_ylabel("cell mean temperature [K]")
        ax.set_title("Cell temperatures (dots: onset)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=max(1, len(Tcols) // 8), loc="best")
        tidy_axis(ax, "K", t.unit)
        doc.figure(Figure("abuse_temperatures", "Cell mean temperatures vs time; dots mark each cell's onset "
                          "(self-heating above the onset rate).", _png(fig)), figs_dir)
    order = prop.get("order", [])
    if order:
        doc.figure(Figure("abuse_onset_order", "Onset time of every cell that ran away, in propagation order.",
                          _bar_chart(order, prop.get("onset_times_s", []), "onset time [s]",
                                     "Propagation order")), figs_dir)


# ---------------------------------------------------------------------------- cell balance
_CELL_NAME_RE = re.compile(r"^cell_(?P<s>\d+)_(?P<p>\d+)$")
CELL_BALANCE_CSV = "cell_balance.csv"


@dataclass
class CellBalance:
    """Per-cell time series of a module run, as plotted (``report_files/cell_balance.csv``).

    ``share[c]`` is the cell's current divided by the sum of the currents of its parallel
    group (the cells ``cell_<s>_*`` of series stage ``s``; the whole module when names do
    not follow that pattern); NaN where that sum is zero. Spreads are max - min over cells.
    """

    time: list[float]
    cells: list[str]
    current: dict[str, list[float]]
    share: dict[str, list[float]]
    T_mean: dict[str, list[float]]
    share_spread: list[float]
    current_spread: list[float]
    T_spread: list[float]


def _per_cell(run: RunData, qty: str) -> dict[str, Column]:
    """{cell: column} of the per-cell columns ``<qty>_<cell> [unit]``."""
    out = {}
    for c in run.columns:
        m = _CELL_RE.match(c.name)
        if m and m["qty"] == qty:
            out[m["cell"]] = c
    return out


def _spread(rows: list[list[float]]) -> list[float]:
    """max - min over the finite values of each row (NaN when none)."""
    out = []
    for r in rows:
        f = [v for v in r if math.isfinite(v)]
        out.append(max(f) - min(f) if f else math.nan)
    return out


def cell_balance(run: RunData) -> CellBalance | None:
    """The cell balance of a module run from its time series (None without per-cell currents)."""
    t = run.time
    cur = _per_cell(run, "I")
    if t is None or not cur:
        return None
    cells = list(cur)
    temps = _per_cell(run, "T_mean")
    groups: dict[str, list[str]] = {}
    for c in cells:
        m = _CELL_NAME_RE.match(c)
        groups.setdefault(m["s"] if m else "module", []).append(c)
    group_of = {c: g for g, members in groups.items() for c in members}
    n = len(t.values)
    share = {}
    for c in cells:
        vals = []
        for k in range(n):
            total = sum(cur[o].values[k] for o in groups[group_of[c]])
            vals.append(cur[c].values[k] / total if total != 0 and math.isfinite(total) else math.nan)
        share[c] = vals
    T_mean = {c: temps[c].values for c in cells if c in temps}
    return CellBalance(
        time=list(t.values), cells=cells, current={c: cur[c].values for c in cells}, share=share, T_mean=T_mean,
        share_spread=_spread([[share[c][k] for c in cells] for k in range(n)]),
        current_spread=_spread([[cur[c].values[k] for c in cells] for k in range(n)]),
        T_spread=_spread([[T_mean[c][k] for c in T_mean] for k in range(n)]) if T_mean else [math.nan] * n)


def write_cell_balance_csv(bal: CellBalance, path: Path) -> None:
    """The plotted arrays, full precision (``repr``), one row per time."""
    header = ["time [s]", *(f"share_{c} [-]" for c in bal.cells), "share_spread [-]",
              *(f"I_{c} [A]" for c in bal.cells), "I_spread [A]",
              *(f"T_mean_{c} [K]" for c in bal.T_mean), "T_spread [K]"]
    lines = [",".join(header)]
    for k, t in enumerate(bal.time):
        row = [t, *(bal.share[c][k] for c in bal.cells), bal.share_spread[k], *(bal.current[c][k] for c in bal.cells),
               bal.current_spread[k], *(bal.T_mean[c][k] for c in bal.T_mean), bal.T_spread[k]]
        lines.append(",".join(repr(float(v)) for v in row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _cell_field_stats(run: RunData) -> tuple[dict[str, dict], dict[str, tuple[float, float]]]:
    """From the stored fields: per cell region T max over the stored times, internal delta-T
    (max over times of T max - T min inside the cell) and the (x, y) centre of the cell.

    Returns ({cell: {"T_max", "dT_internal", "T_max_time"}}, {cell: (u, v)}), empty without fields.
    """
    from busbarfem.io import readback

    tags = {str(v): int(k) for k, v in ((run.hotspots or {}).get("region_tags") or {}).items()}
    try:
        names = readback.field_names(run.outdir)
    except (OSError, ValueError):
        return {}, {}
    if "T" not in names or "region_id" not in names or not tags:
        return {}, {}
    mesh, rid, _ = readback.read_last(run.outdir, "region_id")
    rid = [int(round(v)) for v in rid]
    import numpy as np

    rid = np.asarray(rid)
    nodes = {}
    for c, tag in tags.items():
        if not c.startswith("cell_"):
            continue
        sel = rid == tag
        if sel.any():
            nodes[c] = np.unique(mesh.cells[sel][:, :4])
    if not nodes:
        return {}, {}
    stats = {c: {"T_max": -math.inf, "dT_internal": 0.0, "T_max_time": math.nan} for c in nodes}
    times = readback.times(run.outdir, "T")
    for k, tk in enumerate(times):
        _, T, _ = readback.read_field(run.outdir, "T", k)
        if len(T) != len(mesh.points):
            return {}, {}
        for c, nd in nodes.items():
            tmax, tmin = float(T[nd].max()), float(T[nd].min())
            if tmax > stats[c]["T_max"]:
                stats[c]["T_max"], stats[c]["T_max_time"] = tmax, tk
            stats[c]["dT_internal"] = max(stats[c]["dT_internal"], tmax - tmin)
    centres = {c: mesh.points[nd].mean(axis=0) for c, nd in nodes.items()}
    pts = np.array(list(centres.values()))
    axes = np.argsort(np.ptp(pts, axis=0))[::-1][:2] if len(pts) > 1 else np.array([0, 1])
    return stats, {c: (float(p[axes[0]]), float(p[axes[1]])) for c, p in centres.items()}


def _plot_cell_balance(bal: CellBalance, kind: str) -> bytes:
    """Cell currents (kind "current") or mean temperatures ("T") vs time, the spread band shaded
    and the spread itself below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if kind == "current":
        series, spread = bal.current, bal.current_spread
        title, ylab, slab, unit = "Cell current I [A]", "I", "spread max - min", "A"
    else:
        series, spread = bal.T_mean, bal.T_spread
        title, ylab, slab, unit = "Cell mean temperature T_mean [K]", "T_mean", "spread max - min", "K"
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(7.5, 5.2), sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
    for c, v in series.items():
        ax.plot(bal.time, v, lw=1.1, label=c)
    lo = [min(series[c][k] for c in series) for k in range(len(bal.time))]
    hi = [max(series[c][k] for c in series) for k in range(len(bal.time))]
    ax.fill_between(bal.time, lo, hi, color="#c0504d", alpha=0.18, lw=0, label="spread (min..max)")
    ax.set_title(title)
    ax.set_ylabel(f"{ylab} [{unit}]")
    ax.legend(fontsize=7, ncol=max(1, len(series) // 8), loc="best")
    bx.plot(bal.time, spread, color="#c0504d", lw=1.5)
    bx.set_ylabel(f"{slab} [{unit}]")
    bx.set_xlabel("time [s]")
    for a in (ax, bx):
        a.grid(alpha=0.3)
        tidy_axis(a, unit, "s")
    return _png(fig)


def _plot_module_map(cells: list[str], pos: dict[str, tuple[float, float]], values: dict[str, float],
                     title: str, unit: str) -> bytes:
    """Cells at their place (top view), coloured by ``values``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.6))
    xs = [pos[c][0] for c in cells]
    ys = [pos[c][1] for c in cells]
    vals = [values[c] for c in cells]
    lo, hi = min(vals), max(vals)
    sc = ax.scatter(xs, ys, c=vals, s=900, cmap="inferno" if unit == "K" else "coolwarm", edgecolors="black",
                    vmin=lo, vmax=hi if hi > lo else lo + 1e-12)
    for c, x, y in zip(cells, xs, ys):
        ax.annotate(c.removeprefix("cell_"), (x, y), ha="center", va="center", fontsize=7, color="#2a6")
    cb = fig.colorbar(sc, ax=ax)
    cb.set_label(f"[{unit}]")
    cb.formatter = plain_formatter(unit)
    cb.update_ticks()
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")
    ax.margins(0.25)
    ax.set_xticks([])
    ax.set_yticks([])
    return _png(fig)


def _grid_positions(cells: list[str]) -> dict[str, tuple[float, float]]:
    """Places from the names ``cell_<s>_<p>`` (series along x, parallel along y)."""
    out = {}
    for k, c in enumerate(cells):
        m = _CELL_NAME_RE.match(c)
        out[c] = (float(m["s"]), float(m["p"])) if m else (float(k), 0.0)
    return out


def _cell_balance_section(doc: Doc, run: RunData, figs_dir: Path, fields: bool = True) -> None:
    """Per-cell table, current/temperature spread plots, module maps, interconnect heat share."""
    bal = cell_balance(run)
    if bal is None:
        return
    s = run.summary
    cells_last = s.get("cells") if isinstance(s.get("cells"), dict) else {}
    stats, pos = _cell_field_stats(run) if fields else ({}, {})
    socs = _per_cell(run, "SOC")
    doc.heading("Cell balance")
    doc.para("Current share: a cell's current over the current of its parallel group (equal sharing is "
             "1/parallel); over the run = every timeseries.csv row with current. T max and internal delta-T "
             "(hottest minus coldest node inside the cell) are taken over the stored field times.")
    header = ["cell", "share min [-]", "share mean [-]", "share max [-]", "final SOC [-]", "T_mean max [K]"]
    if stats:
        header += ["T max [K]", "internal delta-T [K]"]
    header += ["irreversible heat [W]", "reversible heat [W]", "collector Joule heat [W]", "heat [W]"]
    rows = []
    for c in bal.cells:
        sh = [v for v in bal.share[c] if math.isfinite(v)]
        row: list = [c, min(sh) if sh else math.nan, sum(sh) / len(sh) if sh else math.nan,
                     max(sh) if sh else math.nan]
        soc = socs[c].values[-1] if c in socs else (cells_last.get(c) or {}).get("soc", math.nan)
        row.append(float(soc))
        row.append(max(bal.T_mean[c]) if c in bal.T_mean else math.nan)
        if stats:
            st = stats.get(c, {})
            row += [float(st.get("T_max", math.nan)), float(st.get("dT_internal", math.nan))]
        cl = cells_last.get(c) or {}
        row += [float(cl.get(k, math.nan)) for k in ("heat_irreversible_W", "heat_reversible_W", "heat_joule_W",
                                                     "heat_W")]
        rows.append(row)
    doc.table(header, rows)
    doc.para("Heat columns: at the last time (summary.json cells).")
    spread_rows = [["current share spread, max over the run [-]", _nanmax(bal.share_spread)],
                   ["cell current spread, max over the run [A]", _nanmax(bal.current_spread)],
                   ["cell T_mean spread, max over the run [K]", _nanmax(bal.T_spread)]]
    soc_last = [socs[c].values[-1] for c in bal.cells if c in socs]
    if soc_last:
        spread_rows.append(["SOC spread at the last time [-]", max(soc_last) - min(soc_last)])
    if stats:
        spread_rows.append(["largest internal delta-T of a cell [K]", max(v["dT_internal"] for v in stats.values())])
    doc.table(["spread", "value"], spread_rows)
    write_cell_balance_csv(bal, figs_dir / CELL_BALANCE_CSV)
    if len(bal.time) >= 2:
        doc.figure(Figure("cell_currents", "Cell currents vs time; shaded: the spread (min..max over cells), "
                          f"below: the spread itself (data: {REPORT_FILES}/{CELL_BALANCE_CSV}).",
                          _plot_cell_balance(bal, "current")), figs_dir)
        if bal.T_mean:
            doc.figure(Figure("cell_temperatures", "Cell mean temperatures vs time; shaded: the spread "
                              f"(data: {REPORT_FILES}/{CELL_BALANCE_CSV}).", _plot_cell_balance(bal, "T")),
                       figs_dir)
    places = pos if pos and all(c in pos for c in bal.cells) else _grid_positions(bal.cells)
    where = "cell centres from the mesh, top view" if places is pos else "cells placed by name: series along x"
    tmax = {c: stats[c]["T_max"] for c in bal.cells if c in stats} if stats else \
        {c: max(bal.T_mean[c]) for c in bal.T_mean}
    if len(tmax) == len(bal.cells):
        label = "T max" if stats else "T_mean max"
        doc.figure(Figure("module_map_T", f"Module map: {label} of every cell over the run ({where}).",
                          _plot_module_map(bal.cells, places, tmax, f"Cell {label} over the run [K]", "K")),
                   figs_dir)
    mean_share = {c: (sum(v for v in bal.share[c] if math.isfinite(v)) /
                      max(1, sum(1 for v in bal.share[c] if math.isfinite(v)))) for c in bal.cells}
    doc.figure(Figure("module_map_share", f"Module map: mean current share of every cell ({where}).",
                      _plot_module_map(bal.cells, places, mean_share, "Cell mean current share [-]", "-")),
               figs_dir)
    _interconnect_share(doc, run)


def _nanmax(values: list[float]) -> float:
    f = [v for v in values if math.isfinite(v)]
    return max(f) if f else math.nan


def interconnect_heat_share(summary: dict) -> dict[str, float]:
    """Heat of the regions that are not cells (busbars, tabs, welds, bolts) against all heat:
    {"last_W", "total_W", "last_share", and over the run "run_J", "run_total_J", "run_share"}."""
    by_region = (summary.get("heat") or {}).get("by_region") or summary.get("heat_by_region") or {}
    out: dict[str, float] = {}
    if by_region:
        tot = {r: (v.get("total_W", 0.0) if isinstance(v, dict) else float(v)) for r, v in by_region.items()}
        inter = sum(v for r, v in tot.items() if not _CELL_NAME_RE.match(r) and not r.startswith("cell_"))
        allh = sum(tot.values())
        out.update(last_W=inter, total_W=allh, last_share=inter / allh if allh else math.nan)
    energy = (summary.get("energy") or {}).get("heat_by_region_J") or {}
    if energy:
        inter = sum(v for r, v in energy.items() if not r.startswith("cell_"))
        allh = sum(energy.values())
        out.update(run_J=inter, run_total_J=allh, run_share=inter / allh if allh else math.nan)
    return out


def _interconnect_share(doc: Doc, run: RunData) -> None:
    sh = interconnect_heat_share(run.summary)
    if not sh:
        return
    rows = []
    if "last_W" in sh:
        rows += [["interconnect heat at the last time [W]", sh["last_W"]], ["all heat at the last time [W]", sh["total_W"]],
                 ["interconnect share at the last time [%]", 100.0 * sh["last_share"]]]
    if "run_J" in sh:
        rows += [["interconnect heat over the run [J]", sh["run_J"]], ["all heat over the run [J]", sh["run_total_J"]],
                 ["interconnect share over the run [%]", 100.0 * sh["run_share"]]]
    doc.heading("Interconnect share of the heat", 3)
    doc.para("Interconnect: every region that is not a cell (busbars, tabs, welds, bolts), from summary.json "
             "heat.by_region and energy.heat_by_region_J.")
    doc.table(["quantity", "value"], rows)


def resistance_breakdown(summary: dict) -> list[dict]:
    """Per passive region (every region that is not a cell): Joule power P [W], its share of
    the passive Joule power, and with the terminal current I the region's part of the loss
    resistance P / I^2 [ohm] and of the voltage drop P / I [V]. Largest first; [] without
    Joule data or at zero current. In a single series path P / I is the potential drop
    across the region; with parallel paths it is the region's share of the module's drop."""
    joule = (summary.get("joule_power_W") or {}).get("by_region") or {}
    current = (summary.get("terminal") or {}).get("current_A")
    passive = {r: float(v) for r, v in joule.items() if not r.startswith("cell_")}
    total = sum(passive.values())
    if not passive or not current or not total:
        return []
    i = abs(float(current))
    return [{"region": r, "joule_W": p, "share": p / total, "resistance_ohm": p / i ** 2, "voltage_drop_V": p / i}
            for r, p in sorted(passive.items(), key=lambda kv: -kv[1])]


def _resistance_section(doc: Doc, run: RunData, figs_dir: Path) -> None:
    rows = resistance_breakdown(run.summary)
    if not rows:
        return
    doc.heading("Resistance breakdown by region")
    doc.para("Every passive region's Joule heat P at the last time, its share, and with the terminal current I "
             "its part of the loss resistance (P / I^2) and of the voltage drop (P / I). The parts add up to "
             "the interconnect resistance and its voltage drop.")
    total = {k: sum(r[k] for r in rows) for k in ("joule_W", "share", "resistance_ohm", "voltage_drop_V")}
    doc.table(["region", "Joule heat [W]", "share [%]", "resistance P/I^2 [micro-ohm]", "voltage drop P/I [mV]"],
              [[r["region"], r["joule_W"], 100.0 * r["share"], 1e6 * r["resistance_ohm"], 1e3 * r["voltage_drop_V"]]
               for r in rows] + [["total", total["joule_W"], 100.0 * total["share"], 1e6 * total["resistance_ohm"],
                                  1e3 * total["voltage_drop_V"]]])
    top = rows[:25]
    doc.figure(Figure("resistance_by_region", "Each passive region's part of the loss resistance P / I^2 "
                      "(largest 25).", _bar_chart([r["region"] for r in top], [r["resistance_ohm"] for r in top],
                                                 "resistance [ohm]", "Loss resistance per region P/I^2 [ohm]")),
               figs_dir)


def _timings_section(doc: Doc, run: RunData) -> None:
    tm = run.summary.get("timings_s") or {}
    if tm:
        doc.heading("Timings")
        doc.table(["phase", "seconds"], [[k, float(v)] for k, v in tm.items()])


def write_report(outdir: Path, comm=None, renders: bool = True) -> dict[str, Path]:
    """Write ``report.html`` and ``report.md`` (+ ``report_files/``) for a finished run.

    Only rank 0 of ``comm`` works (the others return ``{}`` at once); reads the output
    folder's files, so it also runs after the fact (``busbarfem report OUTDIR``).

    Args:
        outdir: the run's output folder.
        comm: MPI communicator (None: this process does the work).
        renders: include the pyvista renders (skipped with a note when rendering is
            impossible here).

    Returns:
        {"html": path, "md": path}.
    """
    if comm is not None and comm.rank != 0:
        return {}
    outdir = Path(outdir)
    run = load_run(outdir)
    if not run.summary and not run.columns:
        raise FileNotFoundError(f"{outdir} holds no summary.json or timeseries.csv: not a busbarfem output folder")
    figs_dir = outdir / REPORT_FILES
    if figs_dir.exists():
        for p in figs_dir.glob("*.png"):
            p.unlink()
    figs_dir.mkdir(exist_ok=True)
    if renders:  # the probe's child process runs while the plots are drawn
        from busbarfem.io import render

        render.probe_in_background()
    doc = Doc()
    name = run.case.get("name", run.summary.get("case", outdir.name))
    _case_section(doc, run)
    _results_section(doc, run)
    _error_estimate_section(doc, run)
    _timeseries_section(doc, run, figs_dir)
    _cells_section(doc, run)
    _abuse_section(doc, run, figs_dir)
    _cell_balance_section(doc, run, figs_dir)
    _heat_section(doc, run, figs_dir)
    _coolant_section(doc, run, figs_dir)
    _resistance_section(doc, run, figs_dir)
    _hotspot_section(doc, run)
    if renders:
        figs, note = _renders(run, figs_dir)
        doc.heading("Fields")
        if note:
            doc.html.append(f'<p class="note">{html.escape(note)}</p>')
            doc.md.append(f"> {note}\n")
        for f in figs:
            doc.figure(f, figs_dir)
        doc.para('Open fields.xdmf in ParaView with the "Xdmf3 Reader (Top Level Partition)" (Xdmf3ReaderT); '
                 "the default XDMF reader fails on DOLFINx files. Every output time is one grid carrying every "
                 "field, so Threshold on region_id keeps them all. paraview/open_result.py sets up log |J|, the "
                 "hottest region and a slice through the hot spot (python -m busbarfem.io.paraview OUTDIR "
                 "renders it headless).")
    _timings_section(doc, run)
    title = f"busbarfem report: {name}"
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>\n" + "\n".join(doc.html) + "\n</body></html>\n")
    out = {"html": outdir / "report.html", "md": outdir / "report.md"}
    out["html"].write_text(page, encoding="utf-8")
    out["md"].write_text(f"# {title}\n" + "\n".join(doc.md) + "\n", encoding="utf-8")
    return out
