"""The ``abuse:`` case section: valid input, located errors for bad values, the lumped runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import EXAMPLES

from busbarfem.case.loader import load_case
from busbarfem.cells.abuse_lumped import cell_index, grid_conductance, run_case_lumped
from busbarfem.cli import main

BASE = (EXAMPLES / "module_4s2p_discharge.yaml").read_text()
ABUSE = """
abuse:
  kinetics: Kim2007
  evaluation: cell
  triggers:
    - {type: heater, cell: cell_1_1, power: 30.0, until_temperature: 473.15}
  onset: {rate: 1.0, temperature: 473.15}
  stop: {halt_rate: 0.01, halt_time: 300.0}
"""


def validate(tmp_path: Path, text: str, capsys) -> tuple[int, str]:
    case = tmp_path / "case.yaml"
    case.write_text(text)
    code = main(["validate", str(case)])
    return code, capsys.readouterr().err


def line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


def test_abuse_section_validates(tmp_path, capsys):
    code, err = validate(tmp_path, BASE + ABUSE, capsys)
    assert code == 0, err


@pytest.mark.parametrize("bad, key, words", [
    ("kinetics: Kim2007", "kinetics: Kim2008", ("abuse.kinetics", "valid sets: Kim2007")),
    ("cell: cell_1_1, power", "cell: cell1, power", ("abuse.triggers.0", "cell_<stage>_<parallel>")),
    ("power: 30.0", "power: -30.0", ("abuse.triggers.0.power", "greater than 0")),
    (", until_temperature: 473.15", "", ("abuse.triggers.0", "until_temperature")),
    ("rate: 1.0", "rate: 0", ("abuse.onset.rate", "greater than 0")),
    ("evaluation: cell", "evaluation: mesh", ("abuse.evaluation", "valid choices: cell, node")),
])
def test_bad_abuse_values_are_located(tmp_path, capsys, bad, key, words):
    text = BASE + ABUSE.replace(bad, key)
    code, err = validate(tmp_path, text, capsys)
    assert code == 2, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err
    needle = key.split(",")[0] if key else "type: heater"
    assert f"case.yaml:{line_of(text, needle)}" in err, err


def test_inline_kinetics_are_checked(tmp_path, capsys):
    text = BASE + ABUSE.replace("kinetics: Kim2007", "kinetics: {model: one_equation, parameters: {A: 1.0e10}}")
    code, err = validate(tmp_path, text, capsys)
    assert code == 2 and "one_equation parameters" in err and "abuse.kinetics" in err, err


def test_grid_helpers():
    assert cell_index("cell_2_1", 2) == 2 and cell_index("cell_4_2", 2) == 7
    G = grid_conductance(2, 2, 0.5)
    assert G.sum() == pytest.approx(4 * 2 * 0.5) and G[0, 3] == 0


def test_run_case_lumped_heater_on_an_isolated_cell(tmp_path):
    """4s2p of 21700s, heater on cell_1_1, no gap conductance: only that cell runs away;
    its heater energy equals P times the time to 200 C."""
    path = tmp_path / "case.yaml"
    path.write_text(BASE + ABUSE)
    case, _ = load_case(path)
    res = run_case_lumped(case, t_end=3600.0, gap_conductance=0.0, dt_max=20.0, max_temperature_change=2.0)
    assert np.isfinite(res.onset_time[0]) and np.all(np.isnan(res.onset_time[1:]))
    assert res.stop_reason == "halted"
    assert np.all(np.abs(res.T[:, 1:] - 298.15) < 0.01)  # only the (tiny) SEI self-heating at 25 C
    t200 = res.times[np.argmax(res.T[:, 0] >= 473.15)]
    assert res.heater_energy[0] == pytest.approx(30.0 * t200, rel=1e-9)


def test_outputs_written(tmp_path):
    """Summary JSON, temperature CSV and the two plots of a lumped run."""
    import json

    from busbarfem.cells.abuse import kinetics_from_set
    from busbarfem.cells.abuse_lumped import Heater, LumpedCells, row_conductance, run_lumped, write_outputs

    cells = LumpedCells.cylinders(2, 0.018, 0.065, 2580.0, 830.0, h=10.0, T_amb=298.15,
                                  conductance=row_conductance(2, 0.0))
    res = run_lumped(kinetics_from_set("Kim2007"), cells, 900.0, dt_max=20.0, max_temperature_change=2.0,
                     heaters=[Heater(cell=0, power=30.0, until_temperature=473.15)])
    paths = write_outputs(res, tmp_path, ["cell_1_1", "cell_2_1"])
    assert all(p.is_file() for p in paths) and len(paths) == 4
    info = json.loads(paths[0].read_text())
    assert info["propagation_order"] == ["cell_1_1"]
    assert info["cells"][0]["onset_time_s"] == pytest.approx(res.onset_time[0])
    assert info["cells"][1]["onset_time_s"] is None
    assert sum(info["cells"][0]["released_J"].values()) == pytest.approx(res.released[0].sum())
    csv = np.loadtxt(paths[1], delimiter=",", skiprows=1)
    assert csv.shape == (res.times.size, 3) and csv[-1, 1] == pytest.approx(res.T[-1, 0])


def test_run_refuses_abuse_in_a_steady_or_lumped_run(tmp_path, capsys):
    """The 3D transient solves the abuse section; a steady analysis and --lumped cannot and say
    so (exit 2, located at the key to change) instead of ignoring it."""
    case = tmp_path / "case.yaml"
    text = (BASE + ABUSE).replace("analysis: transient", "analysis: steady")
    case.write_text(text)
    code = main(["run", str(case), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "needs a 3D transient" in err and "Traceback" not in err
    assert f"case.yaml:{line_of(text, 'analysis: steady')}" in err, err
    case.write_text(BASE + ABUSE)
    code = main(["run", str(case), "--lumped", "-o", str(tmp_path / "out2")])
    err = capsys.readouterr().err
    assert code == 2 and "--lumped" in err and "Traceback" not in err, err
    assert f"case.yaml:{line_of(BASE + ABUSE, 'abuse:')}" in err, err


def test_module_holder_region_and_its_checks(gmsh_session):
    """The holder block of a cylindrical module: a region 'holder' that shares facets with
    every cell can, with the analytic volume (block minus the cells); it is refused for a
    prismatic stack and when taller than the cells."""
    from pydantic import ValidationError

    from busbarfem.case.geometry import Geometry, MeshOptions
    from busbarfem.geometry import generate_model
    from busbarfem.geometry.inspect import mesh_measure, shared_facets

    geo = Geometry.model_validate({"module": {"series": 1, "parallel": 2, "cell": {"preset": "18650"},
                                              "pitch": [0.021, 0.021], "holder": {"material": "pa66",
                                                                                 "margin": 0.002}}})
    info = generate_model(geo, MeshOptions(size=0.01, cell_size=0.02, curvature_elements=16, optimize=False))
    R, H = 0.009, 0.065
    assert info.volumes["holder"] == pytest.approx((0.021 + 2 * 0.011) * 2 * 0.011 * H - 2 * np.pi * R**2 * H,
                                                   rel=1e-12)
    assert mesh_measure("holder") == pytest.approx(info.volumes["holder"], rel=0.03)
    for cell in ("cell_1_1", "cell_1_2"):
        assert shared_facets("holder", cell) > 0
    with pytest.raises(ValidationError, match="cylindrical cells only"):
        Geometry.model_validate({"module": {"series": 2, "parallel": 1, "cell": {"type": "prismatic"},
                                            "holder": {"material": "pa66"}}})
    with pytest.raises(ValidationError, match="exceeds the cell height"):
        Geometry.model_validate({"module": {"series": 1, "parallel": 1, "cell": {"preset": "18650"},
                                            "holder": {"material": "pa66", "height": 0.07}}})


SINGLE_3D = """name: one_cell
geometry:
  module: {series: 1, parallel: 1, cell: {preset: "18650"}, busbars: both}
mesh: {size: 0.01, cell_size: 0.03, elements_through_thickness: 1, thin_aspect: 4, curvature_elements: 8,
       optimize: false}
cell: {preset: LG_M50}
load: {electrical_input_type: current, current: 0.0}
solver: {analysis: transient, t_end: 10.0, dt: 5.0}
abuse:
  triggers:
    - TRIGGER
"""


@pytest.mark.parametrize("trigger,key,words", [
    ("{type: heater, cell: cell_9_9, power: 5.0, duration: 5.0}", "abuse.triggers.0.cell",
     ("no cell region 'cell_9_9'", "cell_1_1")),
    ("{type: internal_short, cell: cell_1_3, resistance: 0.01, at_time: 1.0}", "abuse.triggers.0.cell",
     ("no cell region 'cell_1_3'", "cell_1_1")),
])
def test_3d_run_locates_trigger_errors(tmp_path, capsys, trigger, key, words):
    """In the 3D run a trigger naming a cell the mesh lacks is a located input error (exit 2,
    the trigger's line), not a traceback."""
    text = SINGLE_3D.replace("TRIGGER", trigger)
    case = tmp_path / "case.yaml"
    case.write_text(text)
    code = main(["run", str(case), "-o", str(tmp_path / "out"), "--no-cache"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and all(w in err for w in words), err
    assert f"case.yaml:{line_of(text, trigger[:20])}" in err, err


def test_external_short_switch_defaults():
    """An external short is on from t = 0 unless given a time or a temperature; the module form
    takes at_temperature (the hottest cell's mean)."""
    from busbarfem.case.abuse import ExternalShortTrigger

    on = ExternalShortTrigger.model_validate({"type": "external_short", "module": True, "resistance": 0.01})
    assert on.at_time == 0.0 and on.at_temperature is None
    hot = ExternalShortTrigger.model_validate({"type": "external_short", "module": True, "resistance": 0.01,
                                              "at_temperature": 400.0})
    assert hot.at_time is None and hot.at_temperature == 400.0
    with pytest.raises(ValueError, match="exactly one of"):
        ExternalShortTrigger.model_validate({"type": "external_short", "module": True, "cell": "cell_1_1",
                                             "resistance": 0.01})


def test_resistance_terminal_mode():
    """The ``resistance`` terminal mode solves I0 + G V = V / R (a resistor across the terminals):
    for a source I0 = 10 A, G = -2 S, R = 0.5 ohm, V = 10 / (2 + 2) = 2.5 V and I = 5 A = V / R;
    R = 0 is a dead short (V = 0); a resistor matching a passive conductance has no solution."""
    from busbarfem.errors import SolveError
    from busbarfem.physics.electrical import ElectricalProblem

    V = ElectricalProblem._terminal_voltage("resistance", 0.5, 10.0, -2.0)
    assert V == pytest.approx(2.5, rel=1e-15)
    assert 10.0 - 2.0 * V == pytest.approx(V / 0.5, rel=1e-15)
    assert ElectricalProblem._terminal_voltage("resistance", 0.0, 10.0, -2.0) == 0.0
    with pytest.raises(SolveError, match="no solution"):
        ElectricalProblem._terminal_voltage("resistance", 0.5, 0.0, 2.0)


# ------------------------------------------------- numbers written 1e5 / 1.667e15 (issue 21)
def _leaves(value, where=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{where}.{k}" if where else str(k))
    else:
        yield where, value


def test_bundled_abuse_set_reads_exponent_numbers_as_numbers():
    """PyYAML's own reader makes 1.667e15 (exponent without a sign) a string; the bundled set
    is read with the case files' core-schema reader, so every kinetic value is a float."""
    import yaml

    from busbarfem.cells.abuse import load_set

    data = load_set("Kim2007")
    for where, v in _leaves(data["parameters"]):
        assert isinstance(v, float) and not isinstance(v, bool), (where, v)
    assert data["parameters"]["sei"]["A"] == 1.667e15 and data["parameters"]["electrolyte"]["Ea"] == 2.74e5
    assert all(isinstance(v, float) for _, v in _leaves(data["cell_18650"]))
    # the defect being guarded against is real: PyYAML's YAML 1.1 reads these as text
    assert yaml.safe_load("A: 1.667e15")["A"] == "1.667e15"


def test_inline_kinetics_accept_exponents_without_dot_or_sign(tmp_path, capsys):
    inline = ("kinetics: {model: one_equation, parameters: {A: 1e10, Ea: 1e5, H: 3e5, W: 1221, "
              "m: 1, n: 1, alpha0: 4e-2}}")
    text = BASE + ABUSE.replace("kinetics: Kim2007", inline)
    code, err = validate(tmp_path, text, capsys)
    assert code == 0, err
    case_file = tmp_path / "case.yaml"
    kin = load_case(case_file)[0].abuse.build_kinetics()
    assert (kin.A, kin.Ea, kin.H, kin.W, kin.alpha0) == (1e10, 1e5, 3e5, 1221, 0.04)
    # a --set override written the same way is a number too
    assert load_case(case_file, ["abuse.kinetics.parameters.A=2e10"])[0].abuse.build_kinetics().A == 2e10
    # and the resulting rate is a number: A exp(-Ea/RT) alpha (1 - alpha) H W at 450 K
    dydt, q = kin.rates(np.array([450.0]), kin.initial_state(1))
    expect = 1e10 * np.exp(-1e5 / (8.314462618 * 450.0)) * 0.04 * 0.96
    assert dydt[0, 0] == pytest.approx(expect, rel=1e-12) and q[0, 0] == pytest.approx(expect * 3e5 * 1221)


@pytest.mark.parametrize("value, shown", [('"1.667e15"', "'1.667e15'"), ("fast", "'fast'"), ("true", "True"),
                                          ("[1, x]", "'x'")])
def test_inline_kinetics_refuse_a_non_number_by_its_key(tmp_path, capsys, value, shown):
    inline = f"kinetics: {{model: one_equation, parameters: {{A: {value}, Ea: 1e5, H: 3e5, W: 1221}}}}"
    text = BASE + ABUSE.replace("kinetics: Kim2007", inline)
    code, err = validate(tmp_path, text, capsys)
    assert code == 2, err
    assert "Traceback" not in err
    assert "parameters.A" in err and shown in err and "is not a number" in err, err
    assert f"case.yaml:{line_of(text, 'kinetics: {model')}" in err, err


def test_cell_file_numbers_without_dot_or_sign(tmp_path):
    """A user cell file (preset: file.yaml) is read with the core schema too: 1e-3 is a number,
    and a YAML problem in it is a ValueError naming the file and line."""
    from busbarfem.case.cells import load_preset

    (tmp_path / "mycell.yaml").write_text("name: mine\ncell:\n  R0: 1e-3\n  sigma_pos: 1.58e6\n")
    data = load_preset("mycell.yaml", tmp_path)
    assert data["cell"] == {"R0": 1e-3, "sigma_pos": 1.58e6}
    assert load_preset("LG_M50")["cell"]["sigma_pos"] == 1.58e6
    (tmp_path / "bad.yaml").write_text("name: mine\ncell:\n  R0: 1e-3\n  R0: 2e-3\n")
    with pytest.raises(ValueError, match=r"bad.yaml:4: key 'R0' appears twice"):
        load_preset("bad.yaml", tmp_path)


def test_fit_ecm_base_file_is_read_with_the_core_schema(tmp_path, capsys):
    """`fit-ecm --base file.yaml` reads the file as a cell file: a YAML problem in it is
    exit 2 naming the file and line (PyYAML's safe_load kept the last of two keys silently)."""
    bad = tmp_path / "base.yaml"
    bad.write_text("cell:\n  rho: 2.5e3\n  rho: 2.6e3\n")
    data = Path(__file__).resolve().parents[1] / "data" / "LG_M50_DFN_Chen2020_1C_300s.csv"
    code = main(["fit-ecm", str(data), "-o", str(tmp_path / "fit.yaml"), "--base", str(bad), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "base.yaml:3" in err and "'rho' appears twice" in err, err
