"""``cell.model: pybamm`` in the case file: schema, located errors, contribution choice."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from busbarfem.cli import main

CASE = """name: pyb
geometry:
  module:
    series: 2
    parallel: 1
    cell: {{preset: "21700"}}
mesh: {{size: 0.02}}
cell:
  model: {model}
  pybamm: {pybamm}
  preset: LG_M50
  initial_soc: 0.9
load: {{electrical_input_type: current, current: 5.0}}
thermal:
  boundaries: [{{type: convection, regions: [exterior], h: 10.0}}]
solver: {{analysis: transient, t_end: 60, dt: 30}}
"""


def validate(tmp_path: Path, capsys, model="pybamm", pybamm="{model: SPMe, parameter_set: Chen2020}", *extra):
    case = tmp_path / "case.yaml"
    case.write_text(CASE.format(model=model, pybamm=pybamm))
    code = main(["validate", str(case), "-q", *extra])
    return code, capsys.readouterr().err


def line_of(tmp_path: Path, needle: str) -> int:
    text = (tmp_path / "case.yaml").read_text().splitlines()
    return next(i for i, ln in enumerate(text, 1) if needle in ln)


def test_pybamm_cell_validates_and_takes_the_parameter_set_capacity():
    pytest.importorskip("pybamm")
    from busbarfem.case.cells import CellModel

    c = CellModel.model_validate({"model": "pybamm", "preset": "LG_M50",
                                  "pybamm": {"model": "DFN", "parameter_set": "Ecker2015"}})
    # Ecker2015's nominal capacity (PyBaMM parameter set), not the LG_M50 preset's 5 Ah
    assert c.capacity == pytest.approx(0.15625, rel=1e-3)
    assert c.ocv is None and c.R0 is None and c.rc_pairs == []
    assert c.k == (1.2, 1.2, 25.0)  # the preset's thermal values are kept
    c = CellModel.model_validate({"model": "pybamm", "capacity": 4.8, "pybamm": {}})
    assert (c.capacity, c.pybamm.model, c.pybamm.parameter_set) == (4.8, "SPMe", "Chen2020")
    assert CellModel.model_validate({"preset": "LG_M50"}).model == "ecm"


@pytest.mark.parametrize("pybamm, key, words", [
    ("{model: P2D}", "cell.pybamm.model", ["'P2D'", "SPM", "SPMe", "DFN"]),
    ("{parameter_set: Chen2021}", "cell.pybamm.parameter_set", ["unknown PyBaMM parameter set", "Chen2020"]),
    ("{options: {thermal: lumped}}", "cell.pybamm.options", ["isothermal", "3D heat equation"]),
    ("{options: {SEI: bogus}}", "cell.pybamm.options", ["invalid PyBaMM option"]),
    ("{options: {particel: Fickian diffusion}}", "cell.pybamm.options", ["invalid PyBaMM option", "particel"]),
])
def test_bad_pybamm_section_is_a_located_error(tmp_path, capsys, pybamm, key, words):
    pytest.importorskip("pybamm")
    code, err = validate(tmp_path, capsys, pybamm=pybamm)
    assert code == 2, err
    assert key in err and f"case.yaml:{line_of(tmp_path, 'pybamm:')}" in err
    for w in words:
        assert w in err, (w, err)
    assert "Traceback" not in err


def test_unknown_cell_model_lists_the_choices(tmp_path, capsys):
    code, err = validate(tmp_path, capsys, model="p2d")
    assert code == 2 and "cell.model" in err and "ecm" in err and "pybamm" in err
    assert f"case.yaml:{line_of(tmp_path, 'model: p2d')}" in err


def test_missing_pybamm_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pybamm", None)  # import pybamm -> ImportError
    code, err = validate(tmp_path, capsys)
    assert code == 2, err
    assert "cell.model" in err and "install busbarfem[pybamm]" in err
    assert f"case.yaml:{line_of(tmp_path, 'model: pybamm')}" in err
    assert "Traceback" not in err


def test_ecm_fields_do_not_mix_with_a_pybamm_cell(tmp_path, capsys):
    pytest.importorskip("pybamm")
    case = tmp_path / "case.yaml"
    case.write_text(CASE.format(model="pybamm", pybamm="{}").replace("  initial_soc: 0.9\n",
                                                                  "  initial_soc: 0.9\n  R0: 0.02\n"))
    assert main(["validate", str(case), "-q"]) == 2
    err = capsys.readouterr().err
    assert "R0" in err and "do not apply to model: pybamm" in err
    case.write_text(CASE.format(model="ecm", pybamm="{}"))
    assert main(["validate", str(case), "-q"]) == 2
    assert "needs model: pybamm" in capsys.readouterr().err
    case.write_text(CASE.format(model="pybamm", pybamm="null"))
    assert main(["validate", str(case), "-q"]) == 2
    assert "needs a 'pybamm' section" in capsys.readouterr().err


def test_ecm_without_ocv_still_names_the_missing_keys(tmp_path, capsys):
    case = tmp_path / "case.yaml"
    case.write_text(CASE.format(model="ecm", pybamm="null").replace("  preset: LG_M50\n", "  capacity: 5.0\n"))
    assert main(["validate", str(case), "-q"]) == 2
    err = capsys.readouterr().err
    assert "ocv, R0" in err and "cell" in err


def test_lumped_refuses_a_pybamm_cell(tmp_path, capsys):
    pytest.importorskip("pybamm")
    case = tmp_path / "case.yaml"
    case.write_text(CASE.format(model="pybamm", pybamm="{}"))
    code = main(["run", str(case), "-o", str(tmp_path / "out"), "-q", "--lumped"])
    err = capsys.readouterr().err
    assert code == 2 and "cell.model" in err and "3D only" in err


def test_ecm_and_pybamm_contributions_exclude_each_other():
    """The ECM factory steps aside for model: pybamm and the PyBaMM one for model: ecm."""
    from busbarfem.physics.cells import _ecm_cells
    from busbarfem.physics.pybamm_cells import _pybamm_cells

    bundle = SimpleNamespace(volume_names=lambda: ["cell_1_1"],
                             regions={"cell_1_1": SimpleNamespace(kind="cell", stage=1, parallel=1)})
    pyb = SimpleNamespace(cell=SimpleNamespace(model="pybamm"))
    ecm = SimpleNamespace(cell=SimpleNamespace(model="ecm"))
    assert _ecm_cells(pyb, bundle) is None
    assert _pybamm_cells(ecm, bundle) is None
    assert _pybamm_cells(SimpleNamespace(cell=None), bundle) is None
