"""Progress display: plain lines every N steps off a terminal, nothing when quiet or not rank 0."""

from __future__ import annotations

import io
from types import SimpleNamespace

from busbarfem.io.progress import Progress


def rows(n):
    return [{"time [s]": 10.0 * (k + 1), "T_max [K]": 300.0 + k, "voltage [V]": 14.8 - 0.01 * k,
             "current [A]": 10.0} for k in range(n)]


def test_plain_lines_every_n_steps_and_the_last():
    out = io.StringIO()
    with Progress(None, total_time=250.0, every=10, stream=out, interactive=False) as p:
        with p.stage("meshing"):
            pass
        for r in rows(25):
            p.update(r)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("  meshing:")
    steps = [ln for ln in lines if "step" in ln]
    assert [ln.split()[1] for ln in steps] == ["1", "10", "20", "25"]
    assert "t=250 s/250" in steps[-1] and "Tmax=324.00 K" in steps[-1] and "V=14.56 V" in steps[-1]
    assert "dt=10 s" in steps[1] and "ETA" in steps[1]


def test_quiet_and_other_ranks_print_nothing():
    for comm, quiet in ((None, True), (SimpleNamespace(rank=1), False)):
        out = io.StringIO()
        with Progress(comm, total_time=10.0, quiet=quiet, stream=out, interactive=True) as p:
            with p.stage("meshing"):
                pass
            for r in rows(3):
                p.update(r)
            p.log("hello")
        assert out.getvalue() == ""
        assert p.step == 3


def test_interactive_bar_shows_status():
    out = io.StringIO()
    with Progress(None, total_time=30.0, stream=out, interactive=True) as p:
        with p.stage("meshing"):
            pass
        for r in rows(3):
            p.update(r)
    text = out.getvalue()
    assert "meshing" in text and "solve" in text and "Tmax=302.00 K" in text


def test_not_a_tty_means_plain():
    assert Progress(None, stream=io.StringIO()).interactive is False


def test_steady_single_row():
    out = io.StringIO()
    with Progress(None, total_time=None, stream=out, interactive=False) as p:
        p.update({"time [s]": 0.0, "T_max [K]": 341.0, "voltage [V]": 0.068})
    assert out.getvalue().splitlines() == ["  step 1  t=0 s  Tmax=341.00 K  V=0.068 V"]


def test_live_bar_and_eta_fit_80_columns():
    """At 80 columns the bar, the percentage, the ETA and the T_max stay on one line each."""
    from rich.console import Console

    out = io.StringIO()
    with Progress(None, total_time=250.0, stream=out, interactive=True, width=80) as p:
        with p.stage("meshing"):
            pass
        for r in rows(10):
            p.update(r)
        shot = Console(width=80, record=True, file=io.StringIO(), color_system=None)
        shot.print(p._rich.get_renderable())
    lines = [ln for ln in shot.export_text().splitlines() if ln.strip()]
    assert all(len(ln) <= 80 for ln in lines), lines
    solve = next(ln for ln in lines if "solve" in ln)
    assert "ETA" in solve and "40%" in solve and "\u2501" in solve  # the bar's line glyph
    assert "Tmax=309.00 K" in solve
    assert len(lines) == 2  # meshing and solve, nothing wrapped
