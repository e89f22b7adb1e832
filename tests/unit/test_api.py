"""The public Python API (docs/api.md): load or build a case, run it, read the result.

Checked against the analytic straight-bar resistance R = L/(sigma A) and against the CLI's
own summary.json for the same case (the CLI and the API must give the same numbers).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from helpers import EXAMPLES, ROOT

import busbarfem

SIGMA = 5.80e7
L, W, TH = 0.1, 0.010, 0.002
CU0 = ["materials.cu0.sigma_ref=5.8e7", "materials.cu0.alpha=0", "materials.cu0.k=398",
       "materials.cu0.rho=8933", "materials.cu0.cp=385", "geometry.busbars.0.material=cu0"]


def test_public_names_are_exported():
    for name in ("load_case", "case_from_dict", "run", "read_result", "Result", "Case", "CaseError", "SolveError"):
        assert name in busbarfem.__all__ and hasattr(busbarfem, name)


def test_run_from_yaml_gives_the_analytic_resistance(tmp_path):
    case = busbarfem.load_case(EXAMPLES / "busbar_straight.yaml", overrides=CU0)
    res = busbarfem.run(case, outdir=tmp_path / "out")
    term = res.summary["terminal"]
    R = term["voltage_V"] / term["current_A"]
    assert R == pytest.approx(L / (SIGMA * W * TH), rel=0.005)
    assert res.stop_reason
    # the files the CLI writes are there and agree with the in-memory result
    back = busbarfem.read_result(tmp_path / "out")
    assert back.summary["terminal"]["voltage_V"] == pytest.approx(term["voltage_V"], rel=1e-12)
    assert set(back.columns) == set(res.columns)
    assert back.columns["T_max [K]"] == pytest.approx(res.columns["T_max [K]"], rel=1e-12)


def test_case_built_in_python_equals_the_yaml_case():
    data = yaml.safe_load((EXAMPLES / "busbar_straight.yaml").read_text())
    data["mesh"]["size"] = 0.004
    from_dict = busbarfem.run(busbarfem.case_from_dict(data))
    from_file = busbarfem.run(busbarfem.load_case(EXAMPLES / "busbar_straight.yaml", ["mesh.size=0.004"]))
    # and from the pydantic models directly (re-validated as a whole by run)
    model = busbarfem.Case.model_validate(data)
    from_model = busbarfem.run(model)
    v = from_file.summary["terminal"]["voltage_V"]
    assert from_dict.summary["terminal"]["voltage_V"] == pytest.approx(v, rel=1e-12)
    assert from_model.summary["terminal"]["voltage_V"] == pytest.approx(v, rel=1e-12)


def test_python_case_errors_name_the_key():
    data = yaml.safe_load((EXAMPLES / "busbar_straight.yaml").read_text())
    data["load"]["curent"] = 3.0
    with pytest.raises(busbarfem.CaseError) as err:
        busbarfem.case_from_dict(data)
    text = err.value.format()
    assert "load.curent" in text and "current" in text


def test_api_and_cli_agree(tmp_path):
    out = tmp_path / "cli"
    res = subprocess.run([sys.executable, "-m", "busbarfem", "run", str(EXAMPLES / "busbar_straight.yaml"),
                          "-o", str(out), "-q", "--no-report", "--set", "mesh.size=0.004"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    cli = json.loads((out / "summary.json").read_text())
    api = busbarfem.run(busbarfem.load_case(EXAMPLES / "busbar_straight.yaml", ["mesh.size=0.004"])).summary
    assert api["terminal"]["voltage_V"] == pytest.approx(cli["terminal"]["voltage_V"], rel=1e-10)
    assert api["joule_power_W"]["total"] == pytest.approx(cli["joule_power_W"]["total"], rel=1e-10)


def test_lumped_module_result_series_and_cells():
    case = busbarfem.load_case(EXAMPLES / "module_4s2p_discharge.yaml")
    res = busbarfem.run(case, lumped=True)
    t = res.time
    assert t.size > 2 and np.all(np.diff(t) > 0)
    cells = res.cells()
    assert len(cells) == 8 and {"name", "current_A", "soc"} <= set(cells[0])
    # charge delivered = integral of the module current (trapezoid over the series)
    q = np.trapezoid(res.columns["current [A]"], t) / 3600.0
    assert q == pytest.approx(res.summary["energy"]["charge_out_Ah"], rel=0.02)
    ax = res.plot("voltage [V]")
    assert ax.get_lines()[0].get_ydata().size == t.size
    with pytest.raises(KeyError, match="columns are"):
        res.plot("no such column")


def test_notebook_example_runs():
    """examples/api_notebook.py (the documented walk-through) runs as a script."""
    res = subprocess.run([sys.executable, str(ROOT / "examples" / "api_notebook.py"), "--quick"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "R =" in res.stdout
