"""Load section: step strings, seed-style inputs, curve files, LoadController decisions."""

import numpy as np
import pytest
from pydantic import ValidationError

from busbarfem.case.loads import STEP_EXAMPLES, Load, Step, parse_step, read_curve_file
from busbarfem.errors import CaseError
from busbarfem.loads import LoadController, Profile


def _strip(step):
    return step.model_copy(update={"description": None})


@pytest.mark.parametrize("text, expected", [
    ("Discharge at 1C until 2.5 V", dict(kind="discharge", c_rate=1.0, until_voltage=2.5)),
    ("Charge at 2 A until 4.2 V", dict(kind="charge", current=2.0, until_voltage=4.2)),
    ("Hold at 4.2 V until C/50", dict(kind="hold", voltage=4.2, until_c_rate=0.02)),
    ("Rest for 30 minutes", dict(kind="rest", duration=1800.0)),
    ("Discharge at 20 W for 10 minutes", dict(kind="discharge", power=20.0, duration=600.0)),
    ("Charge at 1C for 1 hour or until 4.1 V",
     dict(kind="charge", c_rate=1.0, duration=3600.0, until_voltage=4.1)),
    ("discharge at 500 mA until 10% SOC", dict(kind="discharge", current=0.5, until_soc=0.1)),
    ("Discharge at C/3 until 3.0 V or 45 degC",
     dict(kind="discharge", c_rate=1 / 3, until_voltage=3.0, until_temperature=318.15)),
    ("Hold at 4.2 V until 50 mA.", dict(kind="hold", voltage=4.2, until_current=0.05)),
])
def test_step_strings_parse_to_typed_steps_and_round_trip(text, expected):
    step = parse_step(text)
    assert _strip(step) == Step(**expected)
    assert _strip(parse_step(step.to_string())) == _strip(step)


def test_every_documented_example_parses():
    for text in STEP_EXAMPLES:
        parse_step(text)


@pytest.mark.parametrize("text, why", [
    ("Discharge at 1C untill 2.5 V", "cannot read the quantity"),
    ("Sprint at 1C", "starts with Discharge, Charge, Hold or Rest"),
    ("Hold at 2 A", "Hold needs a voltage"),
    ("Rest", "Rest needs 'for <duration>'"),
    ("Rest for 3 fortnights", "cannot read the duration"),
    ("Charge at -1C", "positive magnitude"),
    ("Discharge at 1C until 3 W", "cannot stop on"),
])
def test_bad_step_strings_answer_with_examples(text, why):
    with pytest.raises(CaseError) as info:
        parse_step(text)
    msg = str(info.value)
    assert why in msg and "Discharge at 1C until 2.5 V" in msg and "Rest for 30 minutes" in msg


def test_bad_step_inside_load_names_its_index():
    with pytest.raises(ValidationError, match=r"(?s)steps\[1\].*valid examples"):
        Load(steps=["Rest for 1 minute", "Dicharge at 1C"], minimum_cell_voltage=2.5)


def test_steps_as_mappings_and_strings_mix():
    load = Load(steps=["Discharge at 1C until 3.2 V", {"kind": "rest", "duration": 60}])
    assert [s.kind for s in load.compiled_steps()] == ["discharge", "rest"]


def test_step_below_minimum_voltage_is_rejected_with_the_fix():
    with pytest.raises(ValidationError, match="set minimum_cell_voltage: 2.5"):
        Load(steps=["Discharge at 1C until 2.5 V"])


def test_steps_and_seed_input_are_exclusive():
    with pytest.raises(ValidationError, match="either steps or the AcuSolve-style input keys"):
        Load(steps=["Rest for 1 minute"], current=3.0)


def test_seed_style_inputs_compile_to_steps():
    assert _strip(Load(current=20.0).compiled_steps()[0]) == Step(kind="discharge", current=20.0)
    assert Load(current=-5.0, current_type="const").compiled_steps()[0].kind == "charge"
    cccv = Load(electrical_input_type="standard_charge_profile", charging_profile_type="cccv",
                current_type="constant", current=-20.0, cut_off_current_percent=0.1).compiled_steps()
    assert (cccv[0].kind, cccv[0].current, cccv[0].until_voltage) == ("charge", 20.0, 4.2)
    assert (cccv[1].kind, cccv[1].voltage, cccv[1].until_c_rate) == ("hold", 4.2, 0.1)
    cpcv = Load(electrical_input_type="standard_charge_profile",
                charging_profile_type="constant_power_constant_voltage", power=300).compiled_steps()
    assert cpcv[0].power == 300 and cpcv[1].kind == "hold"
    volt = Load(electrical_input_type="voltage", voltage=16.0).compiled_steps()[0]
    assert volt.voltage_basis == "module" and volt.voltage == 16.0
    with pytest.raises(ValidationError, match="cccv charging needs 'current'"):
        Load(electrical_input_type="standard_charge_profile", charging_profile_type="cccv")
    with pytest.raises(ValidationError, match="current_curve_fit_values"):
        Load(current_type="linear")
    with pytest.raises(ValidationError, match="cubic_spline"):
        Load(current_type="cubic", current=1.0)


def test_curve_file_read_and_bad_line(tmp_path):
    good = tmp_path / "time_current.txt"
    good.write_text("# t [s]  I [A]\n0               0.66809696\n9.61104062      0.66809696\n"
                    "12.5842409      0.66809696\n13.34691228     15.37136268\n")
    table = read_curve_file(good)
    assert table.shape == (4, 2) and table[3, 1] == pytest.approx(15.37136268)
    load = Load.model_validate({"current_type": "piecewise_linear",
                                "current_curve_fit_file": "time_current.txt"},
                               context={"case_dir": tmp_path})
    np.testing.assert_array_equal(load.curve("current"), table)
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1.0\n10 2.0\n20 two\n30 1.0\n")
    with pytest.raises(CaseError) as info:
        Load.model_validate({"current_type": "linear", "current_curve_fit_file": "bad.txt"},
                            context={"case_dir": tmp_path})
    assert info.value.line == 3 and info.value.file.endswith("bad.txt")
    assert "bad.txt:3" in str(info.value) and "'20 two'" in str(info.value)
    back = tmp_path / "back.txt"
    back.write_text("0 1\n10 2\n5 3\n")
    with pytest.raises(CaseError, match="time must increase") as info:
        read_curve_file(back)
    assert info.value.line == 3
    with pytest.raises(CaseError, match="cannot read curve-fit file"):
        read_curve_file(tmp_path / "missing.txt")


def test_natural_cubic_spline_profile():
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    prof = Profile(np.column_stack([t, t**3]), "cubic_spline")
    np.testing.assert_allclose(prof(t), t**3)  # interpolates the knots
    lin = Profile(np.column_stack([t, 2.0 * t + 1.0]), "cubic_spline")
    np.testing.assert_allclose(lin([0.5, 2.25, 3.9]), [2.0, 5.5, 8.8])  # exact on lines
    # natural spline through (0,0),(1,1),(2,0): moments m1 = -3, value at 0.5 = 0.6875
    hat = Profile([[0, 0], [1, 1], [2, 0]], "cubic_spline")
    assert hat(0.5) == pytest.approx(0.6875)


def test_controller_targets_and_breakpoints():
    load = Load(c_rate_type="linear", c_rate_curve_fit_values=[[0, 1.0], [100, 2.0], [300, 0.0]],
                minimum_cell_voltage=2.5)
    ctl = LoadController(load, capacity_Ah=5.0, n_series=4, n_parallel=2)
    tgt = ctl.target(50.0)
    assert (tgt.mode, tgt.value, tgt.step_index) == ("current", pytest.approx(15.0), 0)
    assert ctl.next_event_time(0.0) == 100.0 and ctl.next_event_time(100.0) == 300.0
    assert ctl.next_event_time(300.0) is None
    ev = ctl.update(290.0, 10.0, 15.0, 1.0, np.full(8, 3.8), np.full(8, 0.5))
    assert ev.stop and "end of profile" in ev.reason


def test_controller_limits_name_the_cell_and_restart():
    load = Load(steps=["Discharge at 1C until 3.3 V", "Rest for 10 minutes"])
    ctl = LoadController(load, capacity_Ah=5.0, n_series=3, n_parallel=2)
    v = np.full((3, 2), 3.6)
    assert ctl.update(0.0, 10.0, 10.8, 10.0, v, np.full((3, 2), 0.5)) is None
    v[2, 0] = 3.29
    ev = ctl.update(10.0, 10.0, 10.5, 10.0, v, np.full((3, 2), 0.5))
    assert not ev.stop and ev.cell == "cell_3_1" and "3.3 V reached by cell_3_1" in ev.reason
    assert ctl.target(25.0).value == 0.0 and ctl.next_event_time(20.0) == pytest.approx(620.0)
    saved = ctl.state_dict()
    other = LoadController(load, capacity_Ah=5.0, n_series=3, n_parallel=2)
    other.load_state_dict(saved)
    assert other.step_index == 1 and other.next_event_time(20.0) == pytest.approx(620.0)
    ev = other.update(610.0, 10.0, 10.8, 0.0, np.full(6, 3.4), np.full(6, 0.5))
    assert ev.stop and "end of load sequence" in ev.reason


def test_global_limits_stop_the_run():
    ctl = LoadController(Load(current=10.0), capacity_Ah=5.0, n_series=2, n_parallel=1)
    ev = ctl.check(5.0, 6.0, 10.0, [3.1, 2.99], [0.5, 0.5])
    # a default limit says so, and names the key that changes it
    assert ev.stop and ev.reason == (
        "minimum cell voltage 3 V reached by cell_2_1: the default minimum_cell_voltage limit "
        "(AcuSolve BATTERY_MODULE's default); set load.minimum_cell_voltage to change it")
    assert (ev.kind, ev.key) == ("voltage", "load.minimum_cell_voltage")
    ev = ctl.check(5.0, 6.0, 10.0, [3.5, 3.5], [0.5, 0.049])
    assert ev.stop and "minimum cell state of charge 0.05 reached by cell_2_1" in ev.reason
    assert "set load.minimum_cell_state_of_charge to change it" in ev.reason
    assert "seed" not in ev.reason.lower() and "design" not in ev.reason.lower()
    # a limit the case sets is reported without the note
    own = LoadController(Load(current=10.0, minimum_cell_voltage=3.0), 5.0, 2, 1)
    assert own.check(5.0, 6.0, 10.0, [3.1, 2.99], [0.5, 0.5]).reason == (
        "minimum cell voltage 3 V reached by cell_2_1")
    chg = LoadController(Load(current=-10.0), capacity_Ah=5.0, n_series=2, n_parallel=1)
    ev = chg.check(5.0, 8.0, -10.0, [4.21, 4.0], [0.5, 0.5])
    assert ev.stop and "maximum cell voltage 4.2 V reached by cell_1_1" in ev.reason
    hot = LoadController(Load(current=10.0, maximum_cell_temperature=333.15), 5.0, 1, 1)
    assert "maximum temperature" in hot.check(1.0, 3.6, 10.0, [3.6], [0.5], 340.0).reason
