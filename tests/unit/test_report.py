"""report.html / report.md: self-contained, every number from the run's files, real renders."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import dolfinx_solver  # noqa: F401
import numpy as np
import pytest
import yaml
from mpi4py import MPI

from busbarfem.io import render
from busbarfem.io.hotspots import hotspots
from busbarfem.io.report import Column, group_columns, load_run, read_timeseries, write_report

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def solved_outdir(outdir: Path, case: str, overrides=()) -> Path:
    """Solve in-process, write hotspots.json and a case.resolved.yaml as the CLI does."""
    from helpers import solve_case

    outdir.mkdir(parents=True)
    sim = solve_case(EXAMPLES / case, overrides, comm=MPI.COMM_SELF, outdir=outdir)
    sim.fields.refresh_for_hotspots()
    hotspots(sim.bundle, sim.fields.T, sim.fields.J_magnitude, outdir)
    resolved = sim.case.model_dump(mode="json")
    resolved["_provenance"] = {"case_file": str(EXAMPLES / case), "overrides": list(overrides),
                               "versions": {"busbarfem": "test", "mpi_size": 1}, "created": "now"}
    (outdir / "case.resolved.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    return outdir


@pytest.fixture(scope="module")
def steady(tmp_path_factory) -> Path:
    out = solved_outdir(tmp_path_factory.mktemp("steady") / "out", "busbar_l_bolted.yaml")
    write_report(out)
    return out


class Cells(HTMLParser):
    """Collects (data-value, text) of numeric cells per table, images and links."""

    def __init__(self):
        super().__init__()
        self.values: list[float] = []
        self.imgs: list[str] = []
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-value" in a:
            self.values.append(float(a["data-value"]))
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for k in ("href", "src"):
            if k in a:
                self.refs.append(a[k])


def parse(path: Path) -> Cells:
    p = Cells()
    p.feed(path.read_text())
    return p


def test_report_html_is_self_contained(steady):
    text = (steady / "report.html").read_text()
    assert 'src="http' not in text and "href=" not in text and "<link" not in text and "<script" not in text
    p = parse(steady / "report.html")
    assert all(r.startswith("data:image/png;base64,") for r in p.refs)
    for src in p.imgs:  # every embedded image is a real PNG
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_numbers_come_from_summary_and_hotspots(steady):
    s = json.loads((steady / "summary.json").read_text())
    h = json.loads((steady / "hotspots.json").read_text())
    vals = parse(steady / "report.html").values
    for v in (s["T_max"]["value"], s["T_min"]["value"], s["J_max"]["value"], s["terminal"]["voltage_V"],
              s["terminal"]["current_A"], s["terminal"]["resistance_ohm"], s["joule_power_W"]["total"],
              s["heat"]["energy_balance_residual_W"], *s["joule_power_W"]["by_region"].values(),
              *(p["value"] for p in h["T"] + h["J_magnitude"])):
        assert v in vals, v  # exact: data-value holds repr(float)
    text = (steady / "report.html").read_text()
    case = yaml.safe_load((steady / "case.resolved.yaml").read_text())
    assert case["name"] in text and case["description"] in text
    for region in s["joule_power_W"]["by_region"]:
        assert region in text


def test_report_steady_uses_tables_not_plots(steady):
    md = (steady / "report.md").read_text()
    assert "Single output time" in md
    assert "ts_module" not in md  # no degenerate one-point plot
    assert "heat_by_region.png" in md


def test_report_md_images_exist(steady):
    md = (steady / "report.md").read_text()
    imgs = re.findall(r"!\[[^\]]*\]\((report_files/[^)]+)\)", md)
    assert imgs
    for rel in imgs:
        assert (steady / rel).stat().st_size > 1000
    assert "| \\|J\\| max" in md or "J" in md  # pipes escaped in markdown tables


@pytest.mark.skipif(not render.render_available()[0], reason=render.render_available()[1] or "no rendering")
def test_report_has_the_three_renders(steady):
    md = (steady / "report.md").read_text()
    for name in ("render_T", "render_J", "render_T_section"):
        assert f"report_files/{name}.png" in md
    assert "Section through the temperature maximum" in md


def png_stats(path: Path) -> tuple[float, int]:
    import matplotlib.image as mpimg

    img = mpimg.imread(path)[..., :3]
    q = (img * 255).astype(np.uint8).reshape(-1, 3)
    return float(q.std()), len(np.unique(q, axis=0))


@pytest.mark.skipif(not render.render_available()[0], reason=render.render_available()[1] or "no rendering")
@pytest.mark.parametrize("field", ["T", "J_magnitude"])
def test_render_is_a_real_picture_with_markers_on_the_part(steady, tmp_path, field):
    h = json.loads((steady / "hotspots.json").read_text())
    spots = h[field]
    info = render.render_field(steady, field, tmp_path / f"{field}.png", markers=spots)
    std, ncolours = png_stats(info.png)
    assert std > 10 and ncolours > 100
    w, hgt = info.image_size
    umin, vmin, umax, vmax = info.bbox_px
    assert 0 <= umin < umax <= w and 0 <= vmin < vmax <= hgt  # the part is in the picture
    assert len(info.markers_px) == len(spots)
    for u, v in info.markers_px:
        assert umin <= u <= umax and vmin <= v <= vmax
    s = json.loads((steady / "summary.json").read_text())
    key = "T_max_final" if field == "T" else "J_max_final"  # the render shows the last time
    assert info.value_range[1] == pytest.approx(s[key]["value"], rel=1e-12)


@pytest.mark.skipif(not render.render_available()[0], reason=render.render_available()[1] or "no rendering")
def test_clipped_render_goes_through_the_hot_spot(steady, tmp_path):
    s = json.loads((steady / "summary.json").read_text())
    info = render.render_field(steady, "T", tmp_path / "clip.png", markers=[s["T_max"]],
                               clip_through=s["T_max"]["x"])
    std, ncolours = png_stats(info.png)
    assert std > 10 and ncolours > 50
    assert info.clip_origin == s["T_max"]["x"]
    w, hgt = info.image_size
    (u, v), = info.markers_px
    assert abs(u - w / 2) < 2 and abs(v - hgt / 2) < 2  # the cut is centred on the hot spot


def test_transient_report_plots_time_series(tmp_path):
    out = solved_outdir(tmp_path / "out", "busbar_straight.yaml",
                        ["solver.analysis=transient", "solver.t_end=4", "solver.dt=1"])
    paths = write_report(out, renders=False)
    md = paths["md"].read_text()
    assert "report_files/ts_module.png" in md and "report_files/ts_unit_K.png" in md
    cols = read_timeseries(out / "timeseries.csv")
    assert cols[0].values[-1] == 4.0 and len(cols[0].values) >= 4
    last_T = next(c for c in cols if c.header == "T_max [K]").values[-1]
    assert last_T in parse(paths["html"]).values


def test_per_cell_columns_are_grouped_and_plotted(tmp_path):
    """A module-like time series (synthetic files): one plot per per-cell quantity."""
    cells = ["cell_1_1", "cell_1_2", "cell_2_1"]
    header = ["time [s]", "voltage [V]", "current [A]", "power [W]", "T_max [K]"]
    for c in cells:
        header += [f"I_{c} [A]", f"SOC_{c} [-]", f"T_mean_{c} [K]", f"V_{c} [V]"]
    rows = []
    for k in range(5):
        r = [10.0 * k, 7.4 - 0.01 * k, 10.0, 74.0, 300.0 + k]
        for j, _ in enumerate(cells):
            r += [5.0 + j, 1.0 - 0.01 * k, 299.0 + k + j, 3.7]
        rows.append(r)
    (tmp_path / "timeseries.csv").write_text(
        ",".join(header) + "\n" + "\n".join(",".join(repr(v) for v in r) for r in rows) + "\n")
    summary = {"case": "synthetic", "stop_reason": "end time reached",
               "cells": {c: {"current_A": 5.0 + j, "soc": 0.96} for j, c in enumerate(cells)},
               "joule_power_W": {"total": 3.0, "by_region": {"busbar_1": 1.0, "weld_1": 2.0}},
               "heat_by_region": {"busbar_1": 1.5, "weld_1": 2.5, "cell_1_1": 4.0}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    groups = group_columns(read_timeseries(tmp_path / "timeseries.csv"))
    assert sorted(groups) == ["cell:I", "cell:SOC", "cell:T_mean", "cell:V", "module", "unit:K"]
    assert [c.header for c in groups["cell:I"]] == [f"I_{c} [A]" for c in cells]
    paths = write_report(tmp_path, renders=False)
    md = paths["md"].read_text()
    for q in ("I", "SOC", "T_mean", "V"):
        assert f"report_files/ts_cell_{q}.png" in md
    vals = parse(paths["html"]).values
    assert 2.5 in vals and 4.0 in vals and 2.0 in vals  # heat_by_region and Joule per region
    assert "cell_1_2" in paths["html"].read_text()


def test_column_grouping_of_units():
    cols = [Column("time [s]", "time", "s", [0.0]), Column("heat_stored [W]", "heat_stored", "W", [1.0]),
            Column("energy_residual_rel [-]", "energy_residual_rel", "-", [0.0])]
    assert sorted(group_columns(cols)) == ["unit:-", "unit:W"]


def test_report_refuses_a_non_output_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path)


def test_load_run_reads_everything(steady):
    run = load_run(steady)
    assert run.summary and run.hotspots and run.case and run.time is not None


def test_report_of_a_lumped_run(tmp_path):
    """`busbarfem report` on a --lumped output folder (no fields, no places): extrema over the
    run with their time and cell, and the heat per cell, all from summary.json."""
    from busbarfem.cli import main

    out = tmp_path / "lumped"
    assert main(["run", str(EXAMPLES / "drive_cycle.yaml"), "-o", str(out), "-q", "--no-report", "--lumped"]) == 0
    assert main(["report", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    cols = {c.header: c.values for c in read_timeseries(out / "timeseries.csv")}
    temps = np.array([v for h, v in cols.items() if h.startswith("T_mean_")])
    # over the run (the cycle ends at rest and the cells cool): the hottest row, not the last
    assert s["T_max"]["value"] == pytest.approx(np.max(temps), rel=1e-13)  # csv: 15 digits
    assert s["T_max_final"]["value"] == pytest.approx(np.max(temps[:, -1]), rel=1e-13)
    assert s["T_max_final"]["value"] < s["T_max"]["value"]
    assert s["T_max"]["time_s"] == pytest.approx(cols["time [s]"][int(np.argmax(np.max(temps, axis=0)))])
    heat = s["heat"]["by_region"]
    assert sum(r["total_W"] for r in heat.values()) == pytest.approx(s["heat"]["generated_W"], rel=1e-12)
    vals = parse(out / "report.html").values
    for v in (s["T_max"]["value"], s["T_max_final"]["value"], *s["energy"]["heat_by_region_J"].values(),
              s["resistance"]["cells_R0_ohm"]):
        assert v in vals, v
    md = (out / "report.md").read_text()
    assert "T max over the run [K]" in md and f"t = {s['T_max']['time_s']:.6g} s" in md
    assert "heat over the run [J]" in md


@pytest.fixture(scope="module")
def weld(tmp_path_factory) -> Path:
    return solved_outdir(tmp_path_factory.mktemp("weld") / "out", "weld_nuggets.yaml", ["mesh.size=0.004"])


@pytest.mark.skipif(not render.render_available()[0], reason=render.render_available()[1] or "no rendering")
def test_weld_J_render_uses_a_log_scale_spanning_the_data(weld, tmp_path):
    """Acceptance: on the weld example the |J| colour scale spans at least two decades where
    |J| does (a linear scale set by the nugget rim peak would leave the plate one colour), and
    the crowding region (|J| >= half the maximum) is outlined."""
    from busbarfem.io import readback

    _, J, _ = readback.read_last(weld, "J_magnitude")
    pos = J[J > 0]
    assert pos.max() / pos.min() >= 100  # the data span two decades
    info = render.render_field(weld, "J_magnitude", tmp_path / "J.png")
    lo, hi = info.clim
    assert info.log_scale and hi == pytest.approx(float(J.max()), rel=1e-12) and hi / lo >= 100
    assert lo == pytest.approx(float(np.percentile(pos, 1.0)), rel=1e-12)
    assert info.crowding_threshold == pytest.approx(0.5 * float(J.max()), rel=1e-12)
    assert info.crowding_cells == int(np.sum(J >= 0.5 * J.max()))
    std, ncolours = png_stats(info.png)
    assert std > 10 and ncolours > 50


def test_weld_resistance_breakdown_adds_up(weld):
    """Per-region P/I^2 adds up to the solver's interconnect resistance; P/I to V - (cell EMF 0)
    for this conductor-only case, i.e. to the terminal voltage."""
    from busbarfem.io.report import resistance_breakdown

    s = json.loads((weld / "summary.json").read_text())
    rows = resistance_breakdown(s)
    assert sum(r["resistance_ohm"] for r in rows) == pytest.approx(s["resistance"]["interconnect_ohm"], rel=1e-12)
    assert sum(r["voltage_drop_V"] for r in rows) == pytest.approx(s["terminal"]["voltage_V"], rel=1e-6)
    assert any(r["region"].startswith("weld_") for r in rows)
    paths = write_report(weld, renders=False)
    vals = parse(paths["html"]).values
    for r in rows[:3]:
        assert 1e6 * r["resistance_ohm"] in vals


# ---------------------------------------------------------------------------- plot hygiene
def _tick_texts(fig, ax) -> list[str]:
    fig.canvas.draw()
    return [t.get_text() for t in ax.get_yticklabels()] + [ax.yaxis.get_offset_text().get_text()]


def test_constant_current_axis_reads_plain_numbers():
    """A constant 10 A (to rounding) reads "10", never "1e-11+1e1"; SI prefixes on |J|."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from busbarfem.io.report import tidy_axis

    fig, ax = plt.subplots()
    ax.plot([0, 1, 2, 3], [10.0, 10.0 + 1e-11, 10.0 - 1e-11, 10.0])
    tidy_axis(ax, "A", "s")
    texts = _tick_texts(fig, ax)
    assert not any("e" in t for t in texts), texts
    lo, hi = ax.get_ylim()
    assert lo < 10.0 < hi and hi - lo == pytest.approx(1.0)  # +-5 % around the value
    fig2, bx = plt.subplots()
    bx.plot([0, 1], [1e6, 5e6])
    tidy_axis(bx, "A/m^2", "s")
    texts = _tick_texts(fig2, bx)
    assert any(t.endswith("M") for t in texts) and not any("e" in t for t in texts), texts
    plt.close("all")


def test_critical_current_axis_is_set_by_the_physical_solves(tmp_path):
    """The bisection's last solves below I_crit reach 7e6 K; the axis stays near the curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from busbarfem.io import report

    seen = {}
    real_savefig = matplotlib.figure.Figure.savefig

    def spy(self, *a, **kw):
        seen["ylim"] = self.axes[0].get_ylim()
        seen["title"] = self.axes[0].get_title()
        return real_savefig(self, *a, **kw)

    curve = [(100.0, 320.0), (200.0, 380.0), (400.0, 700.0), (600.0, 7e6), (590.0, 5e4), (800.0, None)]
    matplotlib.figure.Figure.savefig = spy
    try:
        report.critical_current_plot(curve, 600.0, tmp_path / "icrit.png", T_ref=298.15)
    finally:
        matplotlib.figure.Figure.savefig = real_savefig
    lo, hi = seen["ylim"]
    assert lo < 320.0 and 700.0 < hi < 298.15 + 3.2 * (700.0 - 298.15)
    assert "T_max [K]" in seen["title"] and "current [A]" in seen["title"]
    assert (tmp_path / "icrit.png").stat().st_size > 5000
    plt.close("all")


def test_region_families_for_the_preview_legend():
    from busbarfem.geometry.preview import region_family

    assert [region_family(n) for n in ("cell_2_1", "tab_pos_1_2", "weld_16", "busbar", "bar_a")] == \
        ["cell", "tab_pos", "weld", "busbar", "bar_a"]


def test_background_render_probe_runs_once_and_is_waited_for(monkeypatch):
    """write_report starts the off-screen probe in a thread so its child process overlaps the
    plots; a render_available() call while it runs waits for it, and the child runs once."""
    import time
    from types import SimpleNamespace

    calls = []

    def fake_run(*a, **k):
        calls.append(a)
        time.sleep(0.3)
        return SimpleNamespace(returncode=0, stdout="ok\n", stderr="")

    monkeypatch.setattr(render.subprocess, "run", fake_run)
    monkeypatch.setattr(render, "_probe_thread", None)
    render._probe.cache_clear()
    try:
        t0 = time.perf_counter()
        render.probe_in_background()
        assert time.perf_counter() - t0 < 0.2  # returned at once
        render.probe_in_background()  # a second start is a no-op
        assert render.render_available() == (True, "")
        assert time.perf_counter() - t0 >= 0.3  # waited for the probe
        assert render.render_available() == (True, "")
        assert len(calls) == 1
    finally:
        render._probe.cache_clear()  # the real probe again for later tests
