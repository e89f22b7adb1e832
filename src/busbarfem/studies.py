"""Design studies on top of the public API: parameter sweeps, optimisation, fault signatures.

Every study point is an ordinary case: the base case file plus ``key=value`` overrides
(the dotted paths ``--set`` takes, list indices included), validated like a file and run
with :func:`busbarfem.run` into its own folder. So any point can be reproduced alone with
``busbarfem run CASE --set key=value ...``.

* :func:`sweep`: a design (grid, zip or Latin hypercube) of points; ``sweep.csv`` and
  ``sweep.json`` with the varied keys and the headline results; plots and a report.
  Resumable (points whose folder holds a finished ``point.json`` are skipped); a point that
  fails is recorded and the sweep goes on. Under MPI the points run on sub-communicators
  of ``ranks_per_case`` ranks each.
* :func:`optimize`: minimise an expression of the results subject to constraints over
  continuous parameters (scipy's derivative-free COBYQA), every evaluation logged like a
  sweep point.
* :func:`faults`: degrade each weld nugget, via or bolt in turn (``conductivity_factors``)
  and report the change of terminal resistance, the current redistribution among the
  cells and the new hot spot, with what a terminal measurement of given resolution detects.
"""

from __future__ import annotations

import copy
import csv
import fnmatch
import itertools
import json
import math
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from busbarfem.case.loader import CaseSource, _apply_override, _parse_override, read_yaml, validate_case_data
from busbarfem.errors import CaseError, SolveError

MARKER = ".busbarfem-output"
"""Marker file in every folder busbarfem creates (so --overwrite may recognise it)."""

RESULT_COLUMNS = ["status", "R_ohm", "V_V", "I_A", "P_heat_W", "T_max_K", "T_max_region", "J_max_A_m2",
                  "J_max_region", "cell_I_min_A", "cell_I_max_A", "cell_I_spread", "soc_min", "soc_max",
                  "coolant_outlet_K", "coolant_heat_W", "coolant_dp_Pa", "cell_T_spread_K",
                  "stop_reason", "run_time_s", "error"]
"""Headline result columns of ``sweep.csv`` (after the varied keys)."""

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


# --------------------------------------------------------------------------- parameters
@dataclass
class Parameter:
    """A varied case key: explicit values, or bounds (``lo:hi``) for sampling and optimisation.

    Attributes:
        key: dotted case path (``geometry.busbars.0.thickness``).
        values: the values to take (sweeps); None when only bounds were given.
        bounds: ``(lo, hi)`` for Latin hypercube sampling and optimisation, if numeric.
    """

    key: str
    values: list | None = None
    bounds: tuple[float, float] | None = None

    @property
    def name(self) -> str:
        """The key as an identifier for expressions (dots and dashes become underscores)."""
        return re.sub(r"\W", "_", self.key)


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets/braces (a value may itself be a YAML list)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [s.strip() for s in out if s.strip()]


def parse_vary(text: str) -> Parameter:
    """Parse one ``--vary`` argument.

    Forms: ``KEY=V1,V2,...`` (values, parsed as ``--set`` values), ``KEY=start:stop:n``
    (n evenly spaced values, ends included) or ``KEY=lo:hi`` (bounds, for ``--lhs`` and
    ``optimize``).

    Raises:
        CaseError: not of these forms.
    """
    if "=" not in text:
        raise CaseError(f"--vary {text!r} must look like KEY=V1,V2,... or KEY=start:stop:n or KEY=lo:hi "
                        "(e.g. geometry.busbars.0.thickness=0.001:0.003:5)", file="command line --vary")
    key, spec = text.split("=", 1)
    key, spec = key.strip(), spec.strip()
    if not key or not spec:
        raise CaseError(f"--vary {text!r}: empty key or value list", file="command line --vary")
    m = re.fullmatch(rf"({_NUM}):({_NUM})(?::(\d+))?", spec)
    if m:
        lo, hi = float(m.group(1)), float(m.group(2))
        if m.group(3) is None:
            return Parameter(key, None, (min(lo, hi), max(lo, hi)))
        n = int(m.group(3))
        if n < 1:
            raise CaseError(f"--vary {text!r}: the number of values must be >= 1", file="command line --vary",
                            key=key)
        vals = [float(v) for v in np.linspace(lo, hi, n)]
        return Parameter(key, vals, (min(lo, hi), max(lo, hi)))
    vals = [_parse_override(f"{key}={v}")[1] for v in _split_top(spec)]
    nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
    bounds = (float(min(nums)), float(max(nums))) if len(nums) == len(vals) else None
    return Parameter(key, vals, bounds)


def design(params: list[Parameter], mode: str = "grid", n: int = 0, seed: int = 0) -> list[dict]:
    """The study points: one ``{key: value}`` per point.

    Args:
        params: the varied keys.
        mode: ``"grid"`` (every combination), ``"zip"`` (i-th value of each, equal lengths)
            or ``"lhs"`` (``n`` points of a scrambled Latin hypercube in the bounds).
        n: number of Latin hypercube points.
        seed: the hypercube's random seed (the same seed gives the same points).

    Raises:
        CaseError: values missing, unequal zip lengths, or no bounds for a hypercube.
    """
    if not params:
        raise CaseError("give at least one --vary KEY=...", file="command line --vary")
    keys = [p.key for p in params]
    if len(set(keys)) != len(keys):
        raise CaseError(f"a key is varied twice: {keys}", file="command line --vary")
    if mode == "lhs":
        from scipy.stats import qmc

        for p in params:
            if p.bounds is None:
                raise CaseError("--lhs needs numeric bounds KEY=lo:hi", file="command line --vary", key=p.key)
        if n < 1:
            raise CaseError("--lhs N needs N >= 1", file="command line --lhs")
        u = qmc.LatinHypercube(d=len(params), seed=seed).random(n)
        lo = np.array([p.bounds[0] for p in params])
        hi = np.array([p.bounds[1] for p in params])
        pts = qmc.scale(u, lo, hi) if np.all(hi > lo) else lo + u * (hi - lo)
        return [{p.key: float(x[j]) for j, p in enumerate(params)} for x in pts]
    for p in params:
        if not p.values:
            raise CaseError(f"give values for {p.key} (KEY=V1,V2 or KEY=start:stop:n); lo:hi bounds are "
                            "for --lhs and optimize", file="command line --vary", key=p.key)
    if mode == "zip":
        lens = {p.key: len(p.values) for p in params}
        if len(set(lens.values())) != 1:
            raise CaseError(f"--zip needs the same number of values for every key: {lens}",
                            file="command line --vary")
        return [{p.key: p.values[i] for p in params} for i in range(len(params[0].values))]
    if mode != "grid":
        raise CaseError(f"unknown design {mode!r}", choices=["grid", "zip", "lhs"], bad=mode)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(p.values for p in params))]


# --------------------------------------------------------------------------- cases
class BaseCase:
    """The base case file's data; makes one validated case per study point."""

    def __init__(self, path: str | Path, overrides: list[str] | tuple[str, ...] = ()):
        self.path = Path(path)
        self.data, self.src = read_yaml(self.path)
        for text in overrides:
            key, value = _parse_override(text)
            _apply_override(self.data, key, value)
            self.src.overrides.add(key)

    def case(self, point: dict):
        """The validated case of a point (``{key: value}`` overrides on the base data).

        Raises:
            CaseError: naming the key (``command line --vary``) and the valid choices.
        """
        data = copy.deepcopy(self.data)
        src = CaseSource(path=self.src.path, lines=self.src.lines, overrides=set(self.src.overrides))
        try:
            for key, value in point.items():
                _apply_override(data, key, value)
                src.overrides.add(key)
            case = validate_case_data(data, src)
        except CaseError as exc:
            if exc.file == "command line --set" and exc.key and _top_key(exc.key) in {_top_key(k) for k in point}:
                exc.file = "command line --vary"
            raise
        case._source = src
        return case


def _top_key(key: str) -> str:
    return key.split(".")[0]


def _summary_row(summary: dict) -> dict:
    """Headline numbers of a run, read defensively from its summary."""
    term = summary.get("terminal") or {}
    V, I = term.get("voltage_V"), term.get("current_A")
    is_module = "module" in summary or bool(summary.get("cells"))
    R = term.get("resistance_ohm") if not is_module else None
    if R is None and not is_module and V is not None and I:
        R = V / I
    tmax = summary.get("T_max") or {}
    jmax = summary.get("J_max") or {}
    cells = summary.get("cells") or {}
    cur = [c.get("current_A") for c in cells.values() if c.get("current_A") is not None]
    soc = [c.get("soc") for c in cells.values() if c.get("soc") is not None]
    mean = float(np.mean(np.abs(cur))) if cur else 0.0
    return {"R_ohm": R, "V_V": V, "I_A": I, "P_heat_W": (summary.get("heat") or {}).get("generated_W"),
            "T_max_K": tmax.get("value") if isinstance(tmax, dict) else tmax,
            "T_max_region": tmax.get("region") if isinstance(tmax, dict) else None,
            "J_max_A_m2": jmax.get("value") if isinstance(jmax, dict) else jmax,
            "J_max_region": jmax.get("region") if isinstance(jmax, dict) else None,
            "cell_I_min_A": min(cur) if cur else None, "cell_I_max_A": max(cur) if cur else None,
            "cell_I_spread": (max(cur) - min(cur)) / mean if cur and mean > 0 else None,
            "soc_min": min(soc) if soc else None, "soc_max": max(soc) if soc else None,
            **_coolant_row(summary.get("cooling")),
            "stop_reason": summary.get("stop_reason")}


def _coolant_row(block: dict | None) -> dict:
    """Cold-plate headline numbers (first circuit's outlet and dp, all circuits' heat; cells' spread)."""
    if not block or not block.get("circuits"):
        return {}
    first = next(iter(block["circuits"].values()))
    return {"coolant_outlet_K": first.get("outlet_temperature"), "coolant_heat_W": block.get("heat_removed_W"),
            "coolant_dp_Pa": first.get("pressure_drop"), "cell_T_spread_K": block.get("cell_temperature_spread_K")}


def conductor_mass(case) -> float:
    """Mass of the explicit busbars and tabs [kg]: centre-line length x width x thickness x density
    (holes, nuggets and bends' inner detail neglected); 0 for module, STEP or mesh-file geometries."""
    from busbarfem.materials import resolve_materials

    mats = resolve_materials(case.materials)
    g = case.geometry
    total = 0.0
    for strip in [*g.busbars, *(t.as_busbar() for t in g.tabs)]:
        total += strip.centre_length() * strip.width * strip.thickness * mats[strip.material].rho
    return total


# --------------------------------------------------------------------------- running points
def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def mark(folder: Path) -> None:
    """Write the marker that says busbarfem created ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("created by busbarfem\n")


def point_done(folder: Path) -> dict | None:
    """The record of a finished point (``point.json`` with status ok), or None."""
    rec = folder / "point.json"
    if not rec.exists():
        return None
    try:
        data = json.loads(rec.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if data.get("status") == "ok" else None


def run_point(base: BaseCase, point: dict, folder: Path, comm: Any, cache_dir: str | Path | None = None,
              report: bool = False) -> dict:
    """Run one point into ``folder`` on ``comm``; returns its record (also ``folder/point.json``).

    A failure of the solve is recorded (status ``failed``, the reason), not raised.
    """
    import yaml

    from busbarfem.api import run

    case = base.case(point)
    if comm.rank == 0 and folder.exists():
        shutil.rmtree(folder)  # an unfinished earlier attempt (only called inside our study folder)
    comm.Barrier()
    t0 = time.perf_counter()
    rec: dict = {"point": point, "folder": folder.name}
    try:
        res = run(case, comm=comm, outdir=folder, cache_dir=cache_dir)
        rec.update(status="ok", **_summary_row(res.summary), run_time_s=time.perf_counter() - t0, error=None)
        if report and case.output.report:
            from busbarfem.io.report import write_report

            write_report(folder, comm)
    except (SolveError, CaseError) as exc:
        msg = exc.format() if isinstance(exc, CaseError) else f"{exc} (step {exc.step})"
        rec.update(status="failed", run_time_s=time.perf_counter() - t0, error=msg)
        summ = folder / "summary.json"
        if comm.rank == 0 and summ.exists():
            rec.update({k: v for k, v in _summary_row(json.loads(summ.read_text())).items() if v is not None})
    if comm.rank == 0:
        mark(folder)
        resolved = case.model_dump(mode="json")
        resolved["_provenance"] = {"case_file": str(base.path.resolve()), "point": point}
        (folder / "case.resolved.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
        _write_json(folder / "point.json", rec)
    return comm.bcast(rec, root=0)


def split_comm(comm, ranks_per_case: int):
    """Sub-communicators of ``ranks_per_case`` ranks: ``(sub, group index, number of groups)``.

    Raises:
        CaseError: the world size is not a multiple of ``ranks_per_case``.
    """
    k = max(1, int(ranks_per_case))
    if comm.size % k:
        raise CaseError(f"--ranks-per-case {k} must divide the number of MPI ranks ({comm.size})",
                        file="command line --ranks-per-case")
    color = comm.rank // k
    return comm.Split(color, comm.rank), color, comm.size // k


# --------------------------------------------------------------------------- sweep
@dataclass
class StudyResult:
    """What a study produced (identical on every rank).

    Attributes:
        rows: one record per point: ``point`` (the varied keys), ``status``, the headline
            results (:data:`RESULT_COLUMNS`) and, for optimisation, ``objective``/``constraints``.
        outdir: the study folder.
        extra: study-specific results (optimum, fault table).
    """

    rows: list[dict]
    outdir: Path
    extra: dict = field(default_factory=dict)


def _check_study_root(comm, root: Path, kind: str, spec: dict, resume: bool) -> None:
    """Create the study folder, or accept it for resuming if it holds the same study."""
    err = None
    if comm.rank == 0:
        meta = root / f"{kind}.json"
        if root.exists() and any(p.name != MARKER for p in root.iterdir()):
            old = None
            if meta.exists():
                try:
                    old = json.loads(meta.read_text()).get("spec")
                except json.JSONDecodeError:
                    old = None
            if not resume or old is None:
                err = (f"output folder {root} exists and is not empty" +
                       ("" if old is None else f"; it holds this {kind} (resume with --resume)") +
                       "; give a new folder with -o")
            elif json.loads(json.dumps(old, default=str)) != json.loads(json.dumps(spec, default=str)):
                err = f"output folder {root} holds a different {kind}; give a new folder with -o"
        if err is None:
            mark(root)
            if not meta.exists():
                _write_json(meta, {"spec": spec, "rows": []})
    err = comm.bcast(err, root=0)
    if err:
        raise CaseError(err)


def validate_points(base: BaseCase, points: list[dict]) -> None:
    """Validate every point's case before running any (raises the first CaseError)."""
    for p in points:
        base.case(p)


def sweep(case_file: str | Path, params: list[Parameter], outdir: str | Path, *, mode: str = "grid",
          n: int = 0, seed: int = 0, overrides: list[str] | tuple[str, ...] = (), comm: Any = None,
          ranks_per_case: int = 1, cache_dir: str | Path | None = None, resume: bool = False,
          point_reports: bool = False,
          log: Callable[[str], None] | None = None) -> StudyResult:
    """Run a parameter sweep.

    Args:
        case_file: the base case (YAML).
        params: the varied keys (:func:`parse_vary`).
        outdir: the sweep folder (``point_<i>/`` per point, ``sweep.csv``, ``sweep.json``, plots, report).
        mode: the design, ``"grid"``, ``"zip"`` or ``"lhs"`` (:func:`design`).
        n: number of Latin hypercube points.
        seed: the hypercube's seed.
        overrides: ``--set`` overrides applied to the base case first.
        comm: MPI communicator (default COMM_WORLD); every rank calls ``sweep``.
        ranks_per_case: ranks per point; the points are dealt round-robin to the groups.
        cache_dir: mesh cache (None: mesh every point).
        resume: accept an existing folder of the same sweep and skip its finished points.
        point_reports: also write report.html/report.md in each point folder.
        log: progress messages (rank 0).

    Raises:
        CaseError: a bad key or value in any point (before anything runs), or a bad folder.
    """
    import dolfinx_solver  # noqa: F401
    from mpi4py import MPI

    comm = MPI.COMM_WORLD if comm is None else comm
    log = log or (lambda s: None)
    root = Path(outdir)
    base = BaseCase(case_file, overrides)
    points = design(params, mode, n, seed)
    validate_points(base, points)
    spec = {"case": str(Path(case_file).resolve()), "overrides": list(overrides), "mode": mode,
            "keys": [p.key for p in params], "points": points}
    _check_study_root(comm, root, "sweep", spec, resume)
    sub, group, ngroups = split_comm(comm, ranks_per_case)
    width = max(3, len(str(len(points) - 1)))
    mine = []
    for i, pt in enumerate(points):
        folder = root / f"point_{i:0{width}d}"
        if i % ngroups != group:
            continue
        done = None
        if sub.rank == 0:
            done = point_done(folder)
        done = sub.bcast(done, root=0)
        if done is not None:
            mine.append((i, done))
            if sub.rank == 0:
                log(f"  point {i}: done earlier, skipped")
            continue
        rec = run_point(base, pt, folder, sub, cache_dir=cache_dir, report=point_reports)
        if sub.rank == 0:
            log(f"  point {i} ({_fmt_point(pt)}): {rec['status']}"
                + (f", {rec['error']}" if rec["status"] != "ok" else _fmt_result(rec)))
        mine.append((i, rec))
    sub.Free()
    gathered = comm.gather(mine if comm.rank % max(1, ranks_per_case) == 0 else [], root=0)
    rows = None
    if comm.rank == 0:
        recs = dict(itertools.chain.from_iterable(gathered))
        rows = [recs[i] for i in range(len(points))]
        write_table(root / "sweep.csv", [p.key for p in params], rows)
        _write_json(root / "sweep.json", {"spec": spec, "rows": rows})
        write_study_report(root, "sweep", [p.key for p in params], rows, title=f"Sweep of {base.path.name}")
    rows = comm.bcast(rows, root=0)
    return StudyResult(rows=rows, outdir=root)


def _fmt_point(pt: dict) -> str:
    return ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in pt.items())


def _fmt_result(rec: dict) -> str:
    parts = []
    if rec.get("R_ohm") is not None:
        parts.append(f"R = {rec['R_ohm'] * 1e6:.6g} micro-ohm")
    if rec.get("T_max_K") is not None:
        parts.append(f"T_max = {rec['T_max_K']:.2f} K in {rec.get('T_max_region')}")
    return ", " + ", ".join(parts) if parts else ""


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def write_table(path: Path, keys: list[str], rows: list[dict], extra: list[str] = ()) -> None:
    """``sweep.csv``-style table: the varied keys, then the result columns (full precision)."""
    cols = [*keys, *extra, *RESULT_COLUMNS]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["point", *cols])
        for i, r in enumerate(rows):
            pt = r.get("point", {})
            w.writerow([i, *(_cell(pt.get(k)) for k in keys), *(_cell(r.get(c)) for c in [*extra, *RESULT_COLUMNS])])


PLOTTED = [("R_ohm", "R [ohm]"), ("P_heat_W", "heat [W]"), ("T_max_K", "T_max [K]"),
           ("J_max_A_m2", "peak |J| [A/m^2]"), ("cell_I_spread", "cell current spread [-]"),
           ("soc_min", "min cell SOC [-]"), ("soc_max", "max cell SOC [-]")]


def write_study_report(root: Path, kind: str, keys: list[str], rows: list[dict], title: str,
                       extra_md: str = "") -> None:
    """Plots of each result against each numeric varied key, ``report.md`` and a self-contained ``report.html``."""
    import base64

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("status") == "ok"]
    figs = []
    for key in keys:
        xs = [r["point"].get(key) for r in ok]
        if not xs or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs):
            continue
        present = [(c, lab) for c, lab in PLOTTED if any(r.get(c) is not None for r in ok)]
        if not present:
            continue
        ncol = min(3, len(present))
        nrow = math.ceil(len(present) / ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
        for ax, (c, lab) in zip(axes.flat, present):
            pts = sorted((x, r[c]) for x, r in zip(xs, ok) if r.get(c) is not None)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-" if kind == "sweep" else "o")
            ax.set_xlabel(key, fontsize=8)
            ax.set_ylabel(lab)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(present):]:
            ax.axis("off")
        fig.tight_layout()
        name = f"{kind}_{re.sub(r'[^A-Za-z0-9]+', '_', key)}.png"
        fig.savefig(root / name, dpi=100)
        plt.close(fig)
        figs.append((key, name))
    failed = [(i, r) for i, r in enumerate(rows) if r.get("status") != "ok"]
    md = [f"# {title}", "", f"{len(rows)} points, {len(ok)} finished, {len(failed)} failed. "
          f"Table: [{kind}.csv]({kind}.csv), [{kind}.json]({kind}.json).", ""]
    if extra_md:
        md += [extra_md, ""]
    md += ["| point | " + " | ".join(keys) + " | R [micro-ohm] | T_max [K] | region | status |",
           "|---" * (len(keys) + 5) + "|"]
    for i, r in enumerate(rows):
        pt = r.get("point", {})
        R = r.get("R_ohm")
        T = r.get("T_max_K")
        md.append(f"| {i} | " + " | ".join(f"{pt.get(k):.6g}" if isinstance(pt.get(k), float) else str(pt.get(k))
                                          for k in keys)
                  + f" | {'' if R is None else f'{R * 1e6:.6g}'} | {'' if T is None else f'{T:.2f}'} | "
                  f"{r.get('T_max_region') or ''} | {r.get('status')} |")
    for i, r in failed:
        md += ["", f"Point {i} failed: {r.get('error')}"]
    for key, name in figs:
        md += ["", f"## Results against {key}", "", f"![{key}]({name})"]
    (root / "report.md").write_text("\n".join(md) + "\n")
    html = ["<!doctype html><html><head><meta charset='utf-8'><title>" + title + "</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}</style></head><body>"]
    html.append(_md_to_html(md, root))
    html.append("</body></html>")
    (root / "report.html").write_text("\n".join(html))


def _md_to_html(md: list[str], root: Path) -> str:
    """Just enough Markdown for the study report (headings, tables, images, paragraphs)."""
    import base64
    import html as h

    out, in_table = [], False
    for line in md:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            if not in_table:
                out.append("<table>")
                in_table = True
            out.append("<tr>" + "".join(f"<td>{h.escape(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        m = re.fullmatch(r"!\[(.*)\]\((.*)\)", line)
        if m:
            data = base64.b64encode((root / m.group(2)).read_bytes()).decode()
            out.append(f"<img alt='{h.escape(m.group(1))}' src='data:image/png;base64,{data}'>")
        elif line.startswith("#"):
            lev = len(line) - len(line.lstrip("#"))
            out.append(f"<h{lev}>{h.escape(line[lev:].strip())}</h{lev}>")
        elif line:
            out.append(f"<p>{h.escape(line)}</p>")
    if in_table:
        out.append("</table>")
    return "\n".join(out)


# --------------------------------------------------------------------------- expressions
_SAFE = {"abs": abs, "min": min, "max": max, "sqrt": math.sqrt, "log": math.log, "exp": math.exp,
         "log10": math.log10, "pi": math.pi}


def expression_names(params: list[Parameter]) -> list[str]:
    """Names an objective or constraint may use."""
    return sorted({*(c for c in RESULT_COLUMNS if c not in ("status", "stop_reason", "error", "T_max_region",
                                                            "J_max_region")),
                   "R", "P", "T_max", "J_max", "V", "I", "spread", "mass", *(p.name for p in params)})


def _namespace(rec: dict, params: list[Parameter], mass: float) -> dict:
    ns = {k: rec.get(k) for k in RESULT_COLUMNS}
    ns.update(R=rec.get("R_ohm"), P=rec.get("P_heat_W"), T_max=rec.get("T_max_K"), J_max=rec.get("J_max_A_m2"),
              V=rec.get("V_V"), I=rec.get("I_A"), spread=rec.get("cell_I_spread"), mass=mass)
    for p in params:
        ns[p.name] = rec["point"][p.key]
    return ns


def compile_expression(text: str, params: list[Parameter], what: str):
    """Check an expression's names now (exit 2 on a bad one), so no run is wasted."""
    import ast

    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CaseError(f"cannot parse {text!r}: {exc.msg}", file=f"command line {what}") from None
    valid = expression_names(params)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in valid and node.id not in _SAFE:
            raise CaseError(f"unknown name '{node.id}' in {text!r}", file=f"command line {what}",
                            choices=valid, bad=node.id)
        if isinstance(node, (ast.Attribute, ast.Lambda, ast.Subscript)):
            raise CaseError(f"{text!r}: only names, numbers, arithmetic and abs/min/max/sqrt/log/exp",
                            file=f"command line {what}")
    return compile(tree, what, "eval")


def parse_constraint(text: str, params: list[Parameter]) -> tuple[str, Any]:
    """``"T_max <= 353"`` -> ``("ineq", code of (353) - (T_max))`` (>= 0 when satisfied); ``==`` gives "eq"."""
    m = re.fullmatch(r"(.+?)(<=|>=|==)(.+)", text.strip())
    if not m:
        raise CaseError(f"--subject-to {text!r} must be EXPR <= EXPR, EXPR >= EXPR or EXPR == EXPR",
                        file="command line --subject-to")
    lhs, op, rhs = m.groups()
    body = {"<=": f"({rhs}) - ({lhs})", ">=": f"({lhs}) - ({rhs})", "==": f"({lhs}) - ({rhs})"}[op]
    return ("eq" if op == "==" else "ineq"), compile_expression(body, params, "--subject-to")


def _evaluate(code, ns: dict) -> float:
    missing = [k for k in code.co_names if k in ns and ns[k] is None]
    if missing:
        raise ValueError(f"no value for {missing} in this case")
    return float(eval(code, {"__builtins__": {}, **_SAFE}, ns))  # noqa: S307 (names checked above)


# --------------------------------------------------------------------------- optimise
def optimize(case_file: str | Path, params: list[Parameter], outdir: str | Path, *, minimize: str,
             subject_to: list[str] | tuple[str, ...] = (), overrides: list[str] | tuple[str, ...] = (),
             comm: Any = None, cache_dir: str | Path | None = None, max_evals: int = 40, tol: float = 1e-3,
             log: Callable[[str], None] | None = None) -> StudyResult:
    """Minimise ``minimize`` over the bounded parameters subject to ``subject_to`` constraints.

    scipy's COBYQA (derivative-free, bounds and nonlinear constraints) on parameters scaled to
    [0, 1]; it starts at the middle of the box and stops at a trust radius of ``tol`` (a fraction
    of each range) or after ``max_evals`` runs. Every evaluation is a point folder
    ``eval_<i>/`` and a row of ``optimize.csv``. A failing run counts as infeasible.

    Expressions use the result names of :func:`expression_names`: ``R``, ``P``, ``T_max``,
    ``J_max``, ``V``, ``I``, ``spread``, ``mass`` (explicit busbars and tabs, kg), the
    ``sweep.csv`` columns and each varied key with dots as underscores.

    Raises:
        CaseError: a parameter without bounds, a bad expression, or a bad case at the bounds.
    """
    import dolfinx_solver  # noqa: F401
    from mpi4py import MPI
    from scipy.optimize import NonlinearConstraint
    from scipy.optimize import minimize as sp_minimize

    comm = MPI.COMM_WORLD if comm is None else comm
    log = log or (lambda s: None)
    for p in params:
        if p.bounds is None or not p.bounds[1] > p.bounds[0]:
            raise CaseError("optimize needs a range KEY=lo:hi with lo < hi", file="command line --vary", key=p.key)
    obj = compile_expression(minimize, params, "--minimize")
    cons = [parse_constraint(c, params) for c in subject_to]
    root = Path(outdir)
    base = BaseCase(case_file, overrides)
    lo = np.array([p.bounds[0] for p in params])
    hi = np.array([p.bounds[1] for p in params])
    validate_points(base, [{p.key: float(v) for p, v in zip(params, x)} for x in (lo, hi, (lo + hi) / 2)])
    spec = {"case": str(Path(case_file).resolve()), "overrides": list(overrides), "keys": [p.key for p in params],
            "bounds": [list(p.bounds) for p in params], "minimize": minimize, "subject_to": list(subject_to)}
    _check_study_root(comm, root, "optimize", spec, resume=False)
    rows: list[dict] = []
    cache: dict[tuple, dict] = {}

    def evaluate(u: np.ndarray) -> dict:
        x = lo + np.clip(u, 0.0, 1.0) * (hi - lo)
        key = tuple(float(v) for v in x)
        if key in cache:
            return cache[key]
        pt = {p.key: float(v) for p, v in zip(params, x)}
        i = len(rows)
        rec = run_point(base, pt, root / f"eval_{i:03d}", comm, cache_dir=cache_dir)
        ns = _namespace(rec, params, conductor_mass(base.case(pt)))
        if rec["status"] == "ok":
            try:
                rec["objective"] = _evaluate(obj, ns)
                rec["constraints"] = [_evaluate(c, ns) for _, c in cons]
            except (ValueError, ZeroDivisionError, OverflowError) as exc:
                rec.update(status="failed", error=f"cannot evaluate the expressions: {exc}")
        if rec["status"] != "ok":
            rec["objective"] = None
            rec["constraints"] = None
        rows.append(rec)
        log(f"  eval {i} ({_fmt_point(pt)}): " + (f"objective {rec['objective']:.6g}"
                                                   + (f", constraints {[f'{c:.4g}' for c in rec['constraints']]}"
                                                      if cons else "") if rec["status"] == "ok"
                                                   else f"failed: {rec['error']}"))
        cache[key] = rec
        return rec

    big = 1e30

    def f(u):
        r = evaluate(u)
        return r["objective"] if r["objective"] is not None else big

    constraints = [NonlinearConstraint(
        (lambda u, j=j: (evaluate(u)["constraints"] or [-big] * len(cons))[j]),
        0.0, 0.0 if kind == "eq" else np.inf) for j, (kind, _) in enumerate(cons)]
    from scipy.optimize import Bounds

    res = sp_minimize(f, np.full(len(params), 0.5), method="COBYQA", bounds=Bounds(0.0, 1.0),
                      constraints=constraints,
                      options={"maxfev": max_evals, "initial_tr_radius": 0.25, "final_tr_radius": tol,
                               "disp": False})
    feasible = [(i, r) for i, r in enumerate(rows) if r["status"] == "ok" and all(
        (c >= -1e-6 * (1 + abs(c))) if kind == "ineq" else abs(c) <= 1e-3 * (1 + abs(c))
        for (kind, _), c in zip(cons, r["constraints"]))]
    best_i, best = (min(feasible, key=lambda ir: ir[1]["objective"]) if feasible else (None, None))
    extra = {"success": bool(res.success) and best is not None, "message": str(res.message),
             "evaluations": len(rows), "best_eval": best_i,
             "best_point": best["point"] if best else None, "best_objective": best["objective"] if best else None,
             "best_constraints": best["constraints"] if best else None}
    if comm.rank == 0:
        keys = [p.key for p in params]
        write_table(root / "optimize.csv", keys, rows, extra=["objective", "constraints"])
        _write_json(root / "optimize.json", {"spec": spec, "result": extra, "rows": rows})
        md = (f"Minimise `{minimize}`" + (f" subject to {', '.join(f'`{c}`' for c in subject_to)}" if subject_to else "")
              + f": {extra['message']}. Best: evaluation {best_i}, "
              + (f"{_fmt_point(best['point'])}, objective {best['objective']:.6g}." if best else "none feasible."))
        write_study_report(root, "optimize", keys, rows, title=f"Optimisation of {base.path.name}", extra_md=md)
    return StudyResult(rows=rows, outdir=root, extra=extra)


# --------------------------------------------------------------------------- faults
FAULT_PATTERNS = ("weld_*", "via_*", "bolt_*")
"""Regions degraded by default: every weld nugget, via and bolt (joint) of the mesh."""


def fault_targets(regions: list[str], targets: list[str] | None) -> list[list[str]]:
    """The fault list: each entry a group of regions degraded together.

    Args:
        regions: conductor regions of the baseline mesh.
        targets: ``None`` (each region matching :data:`FAULT_PATTERNS` alone) or entries like
            ``weld_*`` (each match alone) or ``weld_1+weld_2`` (these together).

    Raises:
        CaseError: an entry that matches no region (with the valid names).
    """
    def natural(n):
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)]

    regions = sorted(regions, key=natural)
    out: list[list[str]] = []
    for entry in targets or list(FAULT_PATTERNS):
        if "+" in entry:
            group = [g.strip() for g in entry.split("+")]
            for g in group:
                if g not in regions:
                    raise CaseError(f"no conductor region '{g}'", file="command line --targets",
                                    choices=regions, bad=g)
            out.append(group)
            continue
        hits = [r for r in regions if fnmatch.fnmatchcase(r, entry)]
        if not hits and targets is not None:
            raise CaseError(f"'{entry}' matches no conductor region", file="command line --targets",
                            choices=regions, bad=entry)
        out.extend([h] for h in hits)
    return out


def _shares(summary: dict) -> dict[str, float]:
    """Each cell's share of its series stage's current (cell names ``cell_<stage>_<parallel>``)."""
    cells = summary.get("cells") or {}
    stage_sum: dict[str, float] = {}
    for n, c in cells.items():
        s = n.split("_")[1] if n.count("_") >= 2 else ""
        stage_sum[s] = stage_sum.get(s, 0.0) + c.get("current_A", 0.0)
    return {n: (c.get("current_A", 0.0) / stage_sum[n.split("_")[1] if n.count("_") >= 2 else ""]
                if stage_sum[n.split("_")[1] if n.count("_") >= 2 else ""] else 0.0) for n, c in cells.items()}


def terminal_resistance(summary: dict) -> float | None:
    """Resistance seen from the terminals [ohm]: V/I for conductors; for modules -dV/dI is not
    available from one run, so the fault study uses differences of V/I (see :func:`faults`)."""
    term = summary.get("terminal") or {}
    V, I = term.get("voltage_V"), term.get("current_A")
    return V / I if V is not None and I else None


def faults(case_file: str | Path, outdir: str | Path, *, factor: float = 1e-6, targets: list[str] | None = None,
           resolution: float = 1e-6, overrides: list[str] | tuple[str, ...] = (), comm: Any = None,
           ranks_per_case: int = 1, cache_dir: str | Path | None = None, resume: bool = False,
           log: Callable[[str], None] | None = None) -> StudyResult:
    """Fault signature study: degrade each joint in turn and compare with the healthy case.

    The baseline runs first (``baseline/``); then each fault (:func:`fault_targets`) is the
    base case with ``conductivity_factors.<region>=factor`` (``factor`` 1e-6 = open; e.g. 0.1
    = a poor weld), run like a sweep point (``fault_<i>/``). Reported per fault: the change of
    the resistance seen from the terminals ``dR = (V_fault - V_base)/I`` for a conductor
    (V = R I) and ``(V_base - V_fault)/I`` for a module (V = E - R I) [micro-ohm], whether a
    measurement of ``resolution`` [ohm] detects it, each cell's change of current share, the
    most affected cell and the new hot spot. Writes ``faults.csv``, ``faults.json``,
    ``faults.png`` and a report.

    Raises:
        CaseError: a bad case or target (before any fault runs), or a bad folder.
    """
    import dolfinx_solver  # noqa: F401
    from mpi4py import MPI

    comm = MPI.COMM_WORLD if comm is None else comm
    log = log or (lambda s: None)
    if not factor > 0:
        raise CaseError(f"--factor {factor} must be > 0 (1e-6 models an open joint)", file="command line --factor")
    root = Path(outdir)
    base = BaseCase(case_file, overrides)
    base.case({})
    spec = {"case": str(Path(case_file).resolve()), "overrides": list(overrides), "factor": factor,
            "targets": targets}
    _check_study_root(comm, root, "faults", spec, resume)
    # the healthy case runs on a group of ranks_per_case ranks like every fault, so that each dR
    # compares two runs on the same partition
    sub, group, ngroups = split_comm(comm, ranks_per_case)
    folder = root / "baseline"
    baseline = None
    if group == 0:
        done = point_done(folder) if sub.rank == 0 else None
        done = sub.bcast(done, root=0)
        baseline = done or run_point(base, {}, folder, sub, cache_dir=cache_dir)
    baseline = comm.bcast(baseline, root=0)
    if baseline["status"] != "ok":
        raise SolveError(f"the healthy case failed: {baseline['error']}", step=0)
    bsum = json.loads((folder / "summary.json").read_text()) if comm.rank == 0 else None
    bsum = comm.bcast(bsum, root=0)
    regions = list((bsum.get("joule_power_W") or {}).get("by_region", {}))
    cell_names = set(bsum.get("cells") or {})
    groups = fault_targets([r for r in regions if r not in cell_names], targets)
    points = [{f"conductivity_factors.{r}": factor for r in g} for g in groups]
    validate_points(base, points)
    log(f"  baseline: V = {bsum['terminal']['voltage_V']:.9g} V, T_max = {baseline['T_max_K']:.2f} K; "
        f"{len(groups)} fault(s)")
    mine = []
    for i, pt in enumerate(points):
        if i % ngroups != group:
            continue
        fdir = root / f"fault_{i:03d}"
        d = point_done(fdir) if sub.rank == 0 else None
        d = sub.bcast(d, root=0)
        rec = d or run_point(base, pt, fdir, sub, cache_dir=cache_dir)
        summ = None
        if sub.rank == 0 and rec["status"] == "ok":
            summ = json.loads((fdir / "summary.json").read_text())
        mine.append((i, rec, summ))
        if sub.rank == 0:
            log(f"  fault {i} ({'+'.join(groups[i])}): {rec['status']}")
    sub.Free()
    gathered = comm.gather(mine if comm.rank % max(1, ranks_per_case) == 0 else [], root=0)
    table = None
    if comm.rank == 0:
        byi = {i: (rec, s) for i, rec, s in itertools.chain.from_iterable(gathered)}
        is_module = bool(bsum.get("cells"))
        Vb, Ib = bsum["terminal"]["voltage_V"], bsum["terminal"]["current_A"]
        sb = _shares(bsum)
        table = []
        for i, g in enumerate(groups):
            rec, s = byi[i]
            row = {"fault": "+".join(g), "regions": g, "factor": factor, "folder": f"fault_{i:03d}",
                   "status": rec["status"], "error": rec.get("error")}
            if s is not None:
                V = s["terminal"]["voltage_V"]
                dR = ((Vb - V) if is_module else (V - Vb)) / Ib
                sf = _shares(s)
                dshare = {n: sf[n] - sb[n] for n in sb if n in sf}
                worst = max(dshare, key=lambda n: abs(dshare[n])) if dshare else None
                row.update(dR_uohm=dR * 1e6, detectable=bool(abs(dR) >= resolution), V_V=V,
                           T_max_K=rec.get("T_max_K"), T_max_region=rec.get("T_max_region"),
                           dT_max_K=rec["T_max_K"] - baseline["T_max_K"],
                           J_max_A_m2=rec.get("J_max_A_m2"), J_max_region=rec.get("J_max_region"),
                           share_change=dshare, most_affected_cell=worst,
                           most_affected_share_change=dshare.get(worst) if worst else None)
            table.append(row)
        _write_fault_outputs(root, base, bsum, baseline, table, resolution, factor)
    table = comm.bcast(table, root=0)
    return StudyResult(rows=table, outdir=root, extra={"baseline": baseline, "resolution_ohm": resolution})


def _write_fault_outputs(root: Path, base: BaseCase, bsum: dict, baseline: dict, table: list[dict],
                         resolution: float, factor: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = ["fault", "factor", "status", "dR_uohm", "detectable", "most_affected_cell",
            "most_affected_share_change", "T_max_K", "T_max_region", "dT_max_K", "J_max_A_m2", "J_max_region",
            "folder", "error"]
    with (root / "faults.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in table:
            w.writerow([_cell(r.get(c)) for c in cols])
    _write_json(root / "faults.json", {"baseline": {"summary_row": baseline, "terminal": bsum.get("terminal"),
                                                   "cell_shares": _shares(bsum)},
                                      "factor": factor, "resolution_ohm": resolution, "faults": table})
    ok = [r for r in table if r.get("dR_uohm") is not None]
    if ok:
        fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * len(ok) + 2), 4))
        vals = [abs(r["dR_uohm"]) for r in ok]
        ax.bar(range(len(ok)), [max(v, 1e-12) for v in vals],
               color=["tab:red" if r["detectable"] else "tab:gray" for r in ok])
        ax.axhline(resolution * 1e6, color="k", ls="--", label=f"resolution {resolution * 1e6:g} micro-ohm")
        ax.set_yscale("log")
        ax.set_xticks(range(len(ok)), [r["fault"] for r in ok], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("|dR| at the terminals [micro-ohm]")
        ax.set_title("fault signatures (red: detectable)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(root / "faults.png", dpi=100)
        plt.close(fig)
    md = [f"# Fault signatures of {base.path.name}", "",
          f"Each joint's electrical conductivity scaled by {factor:g} in turn "
          f"({'open' if factor <= 1e-4 else 'degraded'}); terminal resolution {resolution * 1e6:g} micro-ohm. "
          "Table: [faults.csv](faults.csv).", "",
          "| fault | dR [micro-ohm] | detectable | most affected cell | share change | T_max [K] | hot spot |",
          "|---|---|---|---|---|---|---|"]
    for r in table:
        if r.get("dR_uohm") is None:
            md.append(f"| {r['fault']} | failed: {r.get('error')} | | | | | |")
            continue
        sc = r.get("most_affected_share_change")
        md.append(f"| {r['fault']} | {r['dR_uohm']:.4g} | {'yes' if r['detectable'] else 'no'} | "
                  f"{r.get('most_affected_cell') or ''} | {'' if sc is None else f'{sc * 100:+.3g} %'} | "
                  f"{r['T_max_K']:.2f} | {r.get('T_max_region')} |")
    if ok:
        md += ["", "![faults](faults.png)"]
    (root / "report.md").write_text("\n".join(md) + "\n")
    (root / "report.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>faults</title><style>body{font-family:"
        "sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}td{border:1px solid #ccc;"
        "padding:2px 6px;font-size:90%}</style></head><body>" + _md_to_html(md, root) + "</body></html>")
