"""Fuzz tier, property-based half (hypothesis): properties of the case-file loader, the
physical bounds and the command line that must hold for every input, not just examples.
"""

from __future__ import annotations

import argparse
import math
import re

import pytest
import yaml
from fuzz_support import EXAMPLES, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from busbarfem.case.checks import PHYSICAL_BOUNDS
from busbarfem.case.loader import CaseYamlError, parse_yaml
from busbarfem.cli import _parser

def fast(n: int) -> settings:
    """n seeded (derandomized, reproducible) examples without deadline."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
STRAIGHT_TEXT = (EXAMPLES / "busbar_straight.yaml").read_text()


@fast(300)
@given(st.lists(st.sampled_from(list("[]{}:,-?&*!|>'\"#%@` \n\tab01.e+") + ["yes", "1:3", "\x00", "  "]),
                max_size=120).map("".join))
def test_parse_yaml_only_raises_yaml_errors(text):
    """Any text: a value, or a YAMLError (located by the caller) - never another exception."""
    try:
        parse_yaml(text)
    except yaml.YAMLError:
        pass


@fast(200)
@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**30), 10**30), st.booleans()))
def test_core_schema_round_trip(value):
    """What a YAML 1.2 writer (repr / json) writes for a number or a bool reads back equal and typed."""
    text = f"v: {'true' if value is True else 'false' if value is False else repr(value)}\n"
    data, _ = parse_yaml(text)
    assert data["v"] == value and type(data["v"]) is type(value), (text, data)


@fast(100)
@given(st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), min_size=1, max_size=8, unique=True),
       st.data())
def test_duplicate_key_reported_at_its_second_line(keys, data):
    lines = [f"{k}: {i}" for i, k in enumerate(keys)]
    first = data.draw(st.integers(0, len(keys) - 1))
    at = data.draw(st.integers(first + 1, len(lines)))
    lines.insert(at, f"{keys[first]}: dup")
    with pytest.raises(CaseYamlError) as exc:
        parse_yaml("\n".join(lines) + "\n")
    assert exc.value.problem_mark.line + 1 == at + 1
    assert f"first on line {first + 1}" in exc.value.problem


@fast(60)
@given(st.one_of(st.floats(-1e4, 1e4), st.floats(1e-310, 1e-300), st.floats(1e300, 1.7e308),
                 st.sampled_from([19.999, 20.0, 3000.0, 3000.001])))
def test_initial_temperature_is_accepted_exactly_inside_its_bounds(tmp_path, t):
    lo, hi, _, _ = PHYSICAL_BOUNDS["temperature"]
    p = tmp_path / "case.yaml"
    p.write_text(STRAIGHT_TEXT)
    code, _, err = run_cli(["validate", str(p), "-q", "--set", f"thermal.initial_temperature={t!r}"])
    assert code == (0 if lo <= t <= hi else 2), (t, err)
    if code == 2:
        assert "thermal.initial_temperature" in err and "Traceback" not in err


@fast(200)
@given(st.one_of(st.text(max_size=12), st.floats(allow_nan=True, allow_infinity=True).map(repr)))
def test_rtol_accepted_iff_finite_fraction(text):
    try:
        value = float(text)
        ok = math.isfinite(value) and 0 < value < 1
    except ValueError:
        ok = False
    parser = _parser()
    parser.exit = lambda status=0, message=None: (_ for _ in ()).throw(argparse.ArgumentError(None, message or ""))
    try:
        args = parser.parse_args(["critical-current", "c.yaml", "--rtol", text])
        accepted = True
        assert args.rtol == value
    except argparse.ArgumentError:
        accepted = False
    except SystemExit:
        accepted = False
    assert accepted == ok, text


@fast(200)
@given(st.sampled_from(["load.current", "mesh.size", "geometry.busbars.0.width", "thermal.boundaries.0.h",
                        "name", "geometry.terminals.positive", "solver.analysis", "thermal", "geometry.busbars.0",
                        "x", "geometry.busbars.5.width"]),
       st.one_of(st.text(max_size=20), st.sampled_from(["[", "{a: [}", "&a 1", "*a", "!!python/object:os.system",
                                                        "yes", "1:30", ".nan", "1e999", "0x", "- 1"])))
def test_any_set_value_is_valid_or_a_located_error(tmp_path, key, value):
    p = tmp_path / "case.yaml"
    p.write_text(STRAIGHT_TEXT)
    code, _, err = run_cli(["validate", str(p), "-q", "--set", f"{key}={value}"])
    assert code in (0, 2), err
    if code == 2:
        assert "Traceback" not in err and err.startswith("error:")
        assert "command line --set" in err or re.search(re.escape(str(p)) + r":\d+: ", err), err


@fast(150)
@given(st.binary(max_size=300))
def test_random_bytes_as_case_file(tmp_path, raw):
    p = tmp_path / "case.yaml"
    p.write_bytes(raw)
    code, _, err = run_cli(["validate", str(p), "-q"])
    assert code == 2 and err.startswith("error:") and str(p) in err and "Traceback" not in err, (raw, err)
