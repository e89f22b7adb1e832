"""Bad input: one clear message with file, line, key and valid choices; exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import EXAMPLES

from busbarfem.cli import main

BASE = (EXAMPLES / "busbar_straight.yaml").read_text()


def run_cli(tmp_path: Path, text: str, capsys, *extra) -> tuple[int, str]:
    case = tmp_path / "case.yaml"
    case.write_text(text)
    code = main(["run", str(case), "-o", str(tmp_path / "out"), "-q", "--no-cache", *extra])
    err = capsys.readouterr().err
    return code, err


def line_of(text: str, needle: str) -> int:
    for i, ln in enumerate(text.splitlines(), 1):
        if needle in ln:
            return i
    raise AssertionError(needle)


def test_unknown_key_names_line_and_suggests(tmp_path, capsys):
    text = BASE.replace("      width: 0.010", "      widht: 0.010")
    code, err = run_cli(tmp_path, text, capsys)
    assert code == 2
    assert f"case.yaml:{line_of(text, 'widht')}" in err
    assert "geometry.busbars.0.widht" in err and "unknown key" in err
    assert "did you mean 'width'" in err
    assert "Traceback" not in err


def test_wrong_type(tmp_path, capsys):
    text = BASE.replace("h: 10.0", "h: lots")
    code, err = run_cli(tmp_path, text, capsys)
    assert code == 2
    assert f"case.yaml:{line_of(text, 'h: lots')}" in err and "thermal.boundaries.0.h" in err


def test_negative_thickness(tmp_path, capsys):
    text = BASE.replace("thickness: 0.002", "thickness: -0.002")
    code, err = run_cli(tmp_path, text, capsys)
    assert code == 2
    assert "geometry.busbars.0.thickness" in err and "greater than 0" in err
    assert f":{line_of(text, 'thickness: -0.002')}" in err


def test_missing_material(tmp_path, capsys):
    text = BASE.replace("material: copper", "material: coper")
    code, err = run_cli(tmp_path, text, capsys)
    assert code == 2
    assert "unknown material 'coper'" in err and "did you mean 'copper'" in err
    assert f":{line_of(text, 'material: coper')}" in err


def test_unknown_region_name(tmp_path, capsys):
    text = BASE.replace("regions: [exterior]", "regions: [busbar_7]")
    code, err = run_cli(tmp_path, text, capsys)
    assert code == 2
    assert "unknown region 'busbar_7'" in err and "busbar_1" in err
    assert "thermal.boundaries.0.regions.0" in err


def test_unknown_bc_type_lists_choices(tmp_path, capsys):
    text = BASE.replace("type: convection", "type: convektion")
    code, err = run_cli(tmp_path, text, capsys)
    assert code == 2
    assert "convection" in err and "temperature" in err


def test_unreadable_file(tmp_path, capsys):
    code = main(["validate", str(tmp_path / "nope.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "nope.yaml" in err and "cannot read" in err


def test_yaml_syntax_error_has_line(tmp_path, capsys):
    text = BASE.replace("  current: 100.0", "  current: [100.0")
    code, err = run_cli(tmp_path, text, capsys)
    assert code == 2 and "YAML syntax error" in err and "case.yaml:" in err


def test_nan_rejected(tmp_path, capsys):
    text = BASE.replace("current: 100.0", "current: .nan")
    code, err = run_cli(tmp_path, text, capsys)
    assert code == 2 and "load.current" in err and "finite" in err


def test_bad_override_is_located_on_command_line(tmp_path, capsys):
    code, err = run_cli(tmp_path, BASE, capsys, "--set", "mesh.sise=0.001")
    assert code == 2 and "command line --set" in err and "did you mean 'size'" in err


def test_existing_output_folder_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    code, err = run_cli(tmp_path, BASE, capsys)
    assert code == 2 and "--overwrite" in err and (out / "keep.txt").exists()


def test_schema_lists_sections(capsys):
    import json

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert {"geometry", "mesh", "load", "thermal", "solver", "materials", "cell"} <= set(schema["properties"])


def test_data_file_outside_case_folder_is_refused(tmp_path, capsys):
    text = BASE.replace("  current_type: constant\n  current: 100.0",
                        "  current_type: piecewise_linear\n  current_curve_fit_file: ../../etc/passwd")
    code, err = run_cli(tmp_path, text, capsys)
    assert code == 2 and "outside the case folder" in err and "load.current_curve_fit_file" in err


def test_bad_curve_file_line_is_reported(tmp_path, capsys):
    (tmp_path / "drive.txt").write_text("0 10\n10 twenty\n")
    text = BASE.replace("  current_type: constant\n  current: 100.0",
                        "  current_type: piecewise_linear\n  current_curve_fit_file: drive.txt")
    code, err = run_cli(tmp_path, text, capsys)
    assert code == 2 and "drive.txt:2" in err


def validate_cli(tmp_path: Path, text: str, capsys) -> tuple[int, str]:
    case = tmp_path / "case.yaml"
    case.write_text(text)
    code = main(["validate", str(case)])
    return code, capsys.readouterr().err


def test_validate_checks_face_references_without_meshing(tmp_path, capsys):
    text = (EXAMPLES / "busbar_l_bolted.yaml").read_text().replace(
        "negative: bolt_2.top", "negative: bolt_1.side")
    assert "bolt_1.side" in text
    code, err = validate_cli(tmp_path, text, capsys)
    assert code == 2
    assert f"case.yaml:{line_of(text, 'bolt_1.side')}: geometry.terminals.negative" in err
    assert "unknown face reference 'bolt_1.side'" in err
    assert "bolt_1.bottom, bolt_1.top, bolt_2.bottom, bolt_2.top, busbar_1.bottom" in err and "did you mean 'bolt_1.top'" in err


def test_validate_checks_boundary_regions_of_a_module(tmp_path, capsys):
    text = (EXAMPLES / "module_8s6p_cccv.yaml").read_text().replace(
        "regions: [cold_plate]", "regions: [cold_plat]")
    code, err = validate_cli(tmp_path, text, capsys)
    assert code == 2
    assert f"case.yaml:{line_of(text, 'cold_plat]')}" in err and "thermal.boundaries.1.regions.0" in err
    assert "unknown region 'cold_plat'" in err and "did you mean 'cold_plate'" in err
    # the names validate knows are the module's: 8 x 6 cells, 96 terminal nuggets
    ok = text.replace("regions: [cold_plat]", "regions: [cold_plate, cell_8_6, busbar_1, weld_96]")
    assert validate_cli(tmp_path, ok, capsys)[0] == 0
    for wrong in ("cell_9_1", "weld_97"):
        code, err = validate_cli(tmp_path, text.replace("[cold_plat]", f"[{wrong}]"), capsys)
        assert code == 2 and f"unknown region '{wrong}'" in err


def test_validate_needs_terminal_faces(tmp_path, capsys):
    text = BASE.replace("  terminals:\n    positive: busbar_1.start\n    negative: busbar_1.end\n", "")
    assert "terminals" not in text
    code, err = validate_cli(tmp_path, text, capsys)
    assert code == 2
    assert "geometry.terminals" in err and "busbar_1.start" in err and "Traceback" not in err


def test_validate_counts_cells_for_explicit_variation_factors(tmp_path, capsys):
    text = (EXAMPLES / "module_4s2p_discharge.yaml").read_text()
    assert "variation" not in text and "  initial_soc: 1.0\n" in text
    seven = text.replace("  initial_soc: 1.0\n", "  initial_soc: 1.0\n  variation: {R0_factors: [1, 1, 1, 1, 1, 1, 1]}\n")
    code, err = validate_cli(tmp_path, seven, capsys)
    assert code == 2
    assert "cell.variation.R0_factors" in err and "needs 8 values" in err and "got 7" in err
    eight = seven.replace("[1, 1, 1, 1, 1, 1, 1]", "[1, 1, 1, 1, 1, 1, 1, 1.1]")
    assert validate_cli(tmp_path, eight, capsys)[0] == 0
    no_cell = text[:text.index("\ncell:")] + "\n" + text[text.index("\nload:"):]
    code, err = validate_cli(tmp_path, no_cell, capsys)
    assert code == 2 and "8 cell bodies" in err and "'cell:' section" in err
