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


def _plot_group(time: Column, cols: list[Column], title: str, stacked: bool) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if stacked:
        fig, axes = plt.subplots(len(cols), 1, figsize=(7.5, 2.1 * len(cols) + 0.4), sharex=True, squeeze=False)
        for ax, c in zip(axes[:, 0], cols):
            ax.plot(time.values, c.values, lw=1.5)
            ax.set_ylabel(c.header)
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel(time.header)
        axes[0, 0].set_title(title)
    else:
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        for c in cols:
            m = _CELL_RE.match(c.name)
            ax.plot(time.values, c.values, lw=1.2, label=m["cell"] if m else c.name)
        ax.set_xlabel(time.header)
        ax.set_ylabel(f"[{cols[0].unit}]")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=max(1, len(cols) // 8), loc="best")
    return _png(fig)


def _bar_chart(labels: list[str], values: list[float], xlabel: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(labels) + 1.2))
    ax.barh(labels[::-1], values[::-1], color="#c0504d")
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
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
                     None, "Current-density magnitude |J| on the geometry; markers: |J| hot spots."))
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
    return figs, ""


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
                          _plot_group(t, groups["module"], "Module terminal", stacked=True)), figs_dir)
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
                          _plot_group(t, cols, f"[{unit}]", stacked=False)), figs_dir)
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
                      _bar_chart(order, [totals[r] for r in order], "heat [W]")), figs_dir)
    if energy and any(energy.values()):
        order = sorted(energy, key=lambda r: -energy[r])
        doc.figure(Figure("heat_energy_by_region", "Heat generated per region over the run, all sources "
                          "(summary.json energy.heat_by_region_J).",
                          _bar_chart(order, [energy[r] for r in order], "heat [J]")), figs_dir)


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
    doc = Doc()
    name = run.case.get("name", run.summary.get("case", outdir.name))
    _case_section(doc, run)
    _results_section(doc, run)
    _error_estimate_section(doc, run)
    _timeseries_section(doc, run, figs_dir)
    _cells_section(doc, run)
    _heat_section(doc, run, figs_dir)
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
                 "the default XDMF reader fails on DOLFINx files.")
    _timings_section(doc, run)
    title = f"busbarfem report: {name}"
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>\n" + "\n".join(doc.html) + "\n</body></html>\n")
    out = {"html": outdir / "report.html", "md": outdir / "report.md"}
    out["html"].write_text(page, encoding="utf-8")
    out["md"].write_text(f"# {title}\n" + "\n".join(doc.md) + "\n", encoding="utf-8")
    return out
