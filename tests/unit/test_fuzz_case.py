"""Hostile and broken case files: property-based fuzzing of the case pipeline.

Valid cases (the bundled examples, a small module case with cell tables and a load table,
and a STEP-import case) are mutated by hypothesis: wrong types, zero/negative/NaN/inf/enormous values,
unit strings where numbers belong, missing and extra keys, empty and non-monotonic tables,
broken YAML text, random bytes, unreadable files. Every mutant goes through
``busbarfem validate`` in-process and must end with exit code 0, or 2 with one
``error:`` message and no traceback - never an escaped exception, never a hang.

A smaller sample goes through ``busbarfem run`` in a subprocess with a timeout
(``slow``): exit 0, 2 or 3 (a stated solve failure), a clear message on failure, and no
``summary.json`` that claims success when the exit code is not 0.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from helpers import Hang, time_limit  # noqa: F401  (Hang: raised on a hang)
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from busbarfem.cli import main

# (not 'from helpers import ...': tests/unit/conftest.py shadows tests/conftest.py)
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

PYTHON = str(ROOT / ".venv" / "bin" / "python")
VALIDATE_TIMEOUT_S = 20
RUN_TIMEOUT_S = 90

MODULE_CASE = """\
name: module_2s1p
geometry:
  module:
    series: 2
    parallel: 1
    cell: {preset: "21700"}
cell:
  capacity: 5.0
  ocv: [[0.0, 3.0], [0.5, 3.6], [1.0, 4.2]]
  entropic_coefficient: [[0.0, -1.0e-4], [1.0, 1.0e-4]]
  R0: [[0.0, 0.03], [1.0, 0.02]]
  rc_pairs:
    - {R: 0.01, tau: 30.0}
  initial_soc: 0.9
  variation: {capacity_std: 0.02, R0_std: 0.05, seed: 1}
load:
  electrical_input_type: current
  current_type: piecewise_linear
  current_curve_fit_values: [[0.0, 5.0], [60.0, 10.0], [120.0, 0.0]]
thermal:
  boundaries:
    - {type: convection, regions: [exterior], h: 5.0}
    - {type: temperature, regions: [cold_plate], T: 298.15}
solver:
  analysis: transient
  t_end: 120.0
  dt: 10.0
"""

STEP_CASE = """\
name: step_bar
geometry:
  step:
    file: part.step
    unit: m
    rules:
      - {match: {name: "."}, region: busbar_1, material: copper}
    terminals:
      positive: {bbox: [-0.001, -1, -1, 0.0001, 1, 1]}
      negative: {bbox: [0.0999, -1, -1, 1, 1, 1]}
mesh: {size: 0.005}
load: {current: 100.0}
thermal:
  boundaries:
    - {type: convection, regions: [exterior], h: 10.0}
"""

BASE_TEXTS = {
    "busbar_straight": (EXAMPLES / "busbar_straight.yaml").read_text(),
    "busbar_l_bolted": (EXAMPLES / "busbar_l_bolted.yaml").read_text(),
    "module_2s1p": MODULE_CASE,
    "step_bar": STEP_CASE,
}
BASES = {name: yaml.safe_load(text) for name, text in BASE_TEXTS.items()}

SUCCESS_STOPS = ("steady state reached", "end time reached", "temperature limit", "thermal runaway")

# ------------------------------------------------------------------------- strategies
HOSTILE_CONSTANTS = [
    None, True, False, "", " ", "abc", "5 mm", "0.002 m", "100 A", "1e3 W", "25 degC", "nan", "inf",
    "-inf", "1,5", "0x10", [], {}, [[]], [None], [1, 2, 3], {"a": 1}, {"type": "bogus"},
    0, -1, 0.0, -0.0, -1e-9, 1e-300, 5e-324, 1e308, -1e308, 1.7976931348623157e308,
    float("nan"), float("inf"), float("-inf"), 10**30, -(10**30), 2**63, 2**64 + 1, 10**400,
    [[0.0, 1.0]], [[1.0, 1.0], [0.0, 2.0]], [[0.0, float("nan")], [1.0, 2.0]],
    [[0.0, 1.0], [0.0, 2.0]], [[0.0], [1.0, 2.0]], [["a", "b"], ["c", "d"]],
]

hostile_value = st.one_of(
    st.sampled_from(HOSTILE_CONSTANTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.text(max_size=12),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4),
    st.lists(st.tuples(st.floats(-2, 2), st.floats(-10, 10)), max_size=5),
)

# Text put in place of a YAML scalar: YAML syntax the structured mutations cannot make.
HOSTILE_SCALAR_TEXT = [
    "5 mm", ".nan", ".inf", "-.inf", "[", "{", "]", "}", "&a", "*undefined_alias", "!!python/object:os.system",
    "!!binary AAAA", "? ", "- x", "'unterminated", '"bad \\q escape"', "1e999", "-1e999", "~", "''", "@", "`",
    "%YAML 1.1", "0b101", "1_000", "0o17", "12:30:00", "2024-01-01", "yes", "no", "on", "|", ">", "\t1.0",
]


def _paths(node, prefix=()):
    """Every path (tuple of keys/indices) below ``node``."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append(prefix + (k,))
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append(prefix + (i,))
            out.extend(_paths(v, prefix + (i,)))
    return out


def _parent(data, path):
    cur = data
    for p in path[:-1]:
        cur = cur[p]
    return cur


def _dump(data) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@st.composite
def mutated_case(draw):
    """(description, case file bytes, extra files {name: bytes}, --set overrides)."""
    base_name = draw(st.sampled_from(sorted(BASES)))
    data = copy.deepcopy(BASES[base_name])
    kind = draw(st.sampled_from(["replace", "replace", "replace", "delete", "extra", "empty", "wrap",
                                 "multi", "table", "text", "truncate", "bytes", "curve_file", "override",
                                 "step_string"]))
    files: dict[str, bytes] = {}
    overrides: list[str] = []
    paths = _paths(data)
    desc = f"{base_name}/{kind}"
    if kind in ("replace", "multi"):
        for _ in range(1 if kind == "replace" else draw(st.integers(2, 5))):
            paths = _paths(data)
            path = draw(st.sampled_from(paths))
            _parent(data, path)[path[-1]] = copy.deepcopy(draw(hostile_value))
            desc += f" {'.'.join(map(str, path))}"
    elif kind == "delete":
        path = draw(st.sampled_from(paths))
        del _parent(data, path)[path[-1]]
        desc += f" -{'.'.join(map(str, path))}"
    elif kind == "extra":
        dicts = [()] + [p for p in paths if isinstance(_parent(data, p)[p[-1]], dict)]
        path = draw(st.sampled_from(dicts))
        target = data if not path else _parent(data, path)[path[-1]]
        key = draw(st.one_of(st.sampled_from(["widht", "sigma", "type", "extra", "Current", "regions ", ""]),
                             st.text(min_size=1, max_size=8)))
        target[key] = copy.deepcopy(draw(hostile_value))
        desc += f" +{'.'.join(map(str, path))}.{key!r}"
    elif kind == "empty":
        containers = [p for p in paths if isinstance(_parent(data, p)[p[-1]], (dict, list))]
        path = draw(st.sampled_from(containers))
        _parent(data, path)[path[-1]] = type(_parent(data, path)[path[-1]])()
        desc += f" {'.'.join(map(str, path))}=empty"
    elif kind == "wrap":
        path = draw(st.sampled_from(paths))
        val = _parent(data, path)[path[-1]]
        _parent(data, path)[path[-1]] = draw(st.sampled_from([[val], {"value": val}, [val, val]]))
        desc += f" {'.'.join(map(str, path))} wrapped"
    elif kind == "table":
        table = copy.deepcopy(draw(st.one_of(
            st.sampled_from([[], [[0.0, 1.0]], [[1.0, 1.0], [0.0, 2.0]], [[0.0, 1.0], [0.0, 1.0]],
                             [[0.0, float("nan")], [1.0, 2.0]], [[0.0, 1.0], [float("inf"), 2.0]],
                             [[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]], [[-0.5, 3.0], [1.5, 4.0]],
                             [[0.0, 4.2], [1.0, 3.0]], [[0.0, -1.0], [1.0, 2.0]], [[0.0, 1e308], [1.0, 1e308]]]),
            st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=True),
                               st.floats(allow_nan=True, allow_infinity=True)), max_size=6))))
        where = draw(st.sampled_from(["load", "ocv", "entropic_coefficient", "R0", "rc_R"]))
        if where == "load":
            data["load"] = {"electrical_input_type": "current", "current_type": "piecewise_linear",
                            "current_curve_fit_values": table}
            data.setdefault("solver", {}).update({"analysis": "transient", "t_end": 10.0})
        else:
            data = copy.deepcopy(BASES["module_2s1p"])
            if where == "rc_R":
                data["cell"]["rc_pairs"][0]["R"] = table
            else:
                data["cell"][where] = table
        desc += f" {where}={table!r}"
    elif kind == "curve_file":
        name = draw(st.sampled_from(["curve.txt", "missing.txt", "sub", "../outside.txt", "/etc/hostname"]))
        content = draw(st.one_of(
            st.sampled_from([b"", b"0 1\n", b"0 1\n0 2\n", b"0 1\n1 x\n", b"0 nan\n1 2\n", b"1 1\n0 2\n",
                             b"0 1 2\n1 2 3\n", b"\xff\xfe\x00\x01", b"0,1\n1,2\n2,inf\n", b"# only comments\n"]),
            st.binary(max_size=64)))
        if name == "curve.txt":
            files[name] = content
        elif name == "sub":
            files["sub/"] = b""
        data["load"] = {"electrical_input_type": "current", "current_type": "piecewise_linear",
                        "current_curve_fit_file": name}
        data.setdefault("solver", {}).update({"analysis": "transient", "t_end": 10.0})
        desc += f" file={name} {content[:20]!r}"
    elif kind == "override":
        path = draw(st.sampled_from(paths))
        key = ".".join(map(str, path))
        val = draw(st.one_of(st.sampled_from(HOSTILE_SCALAR_TEXT), st.text(max_size=10)))
        key = draw(st.sampled_from([key, key + ".nope", "nope." + key, key.replace(".", ".."), "", "=", key + "="]))
        overrides = [f"{key}={val}" if key and not key.endswith("=") else key]
        desc += f" --set {overrides[0]!r}"
    elif kind == "step_string":
        step = draw(st.one_of(
            st.sampled_from(["Discharge at 1C until 2.5 V", "Discharge at 0 A for 10 s", "Rest for -5 minutes",
                             "Charge at 1e999 A for 10 s", "Hold at nan V", "Discharge at C/0 until 3 V",
                             "Rest for 1e999 s", "Discharge at 1C until 3 V or", "Discharge", "",
                             "Charge at 2 A until 4.3 V", "Rest for 10 parsecs", "Discharge at 5 mm",
                             "Discharge at 1C for 1 hour for 2 hours", "Hold at 4.2 V until 0% SOC"]),
            st.text(max_size=30)))
        data["load"] = {"steps": [step]}
        desc += f" steps=[{step!r}]"
    raw = _dump(data).encode()
    if kind == "text":
        lines = raw.decode().splitlines()
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        token = draw(st.one_of(st.sampled_from(HOSTILE_SCALAR_TEXT), st.text(max_size=8)))
        if ":" in line:
            head = line.split(":", 1)[0]
            lines[i] = f"{head}: {token}"
        else:
            lines[i] = line + token
        raw = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
        desc += f" line {i + 1} -> {lines[i]!r}"
    elif kind == "truncate":
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut]
        desc += f" truncated at {cut}"
    elif kind == "bytes":
        raw = draw(st.one_of(st.binary(max_size=200),
                             st.sampled_from([b"\xff\xfe\xfd", b"\x00" * 10, b"---\n...\n", b"- 1\n- 2\n",
                                              b"just a string", b"42", b"{a: [}", b"\t- x:\n"])))
        desc += f" bytes {raw[:30]!r}"
    return desc, raw, files, overrides


# ------------------------------------------------------------------------- helpers


def write_case(folder: Path, raw: bytes, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        if name.endswith("/"):
            (folder / name).mkdir(parents=True, exist_ok=True)
        else:
            (folder / name).write_bytes(content)
    path = folder / "case.yaml"
    path.write_bytes(raw)
    return path


def validate_in_process(path: Path, overrides=(), timeout: int = VALIDATE_TIMEOUT_S) -> tuple[int, str]:
    """``busbarfem validate`` in this process: (exit code, stderr)."""
    err, out = io.StringIO(), io.StringIO()
    argv = ["validate", str(path), "-q"]
    for o in overrides:
        argv += ["--set", o]
    with time_limit(timeout), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse rejects e.g. an empty --set; it prints usage and exits 2
            code = exc.code
    return code, err.getvalue()


def assert_clean_outcome(code, err: str, desc: str) -> None:
    assert code in (0, 2), f"{desc}: exit code {code}\n{err}"
    assert "Traceback" not in err, f"{desc}: traceback\n{err}"
    if code == 2:
        assert "error:" in err, f"{desc}: exit 2 without an 'error:' message\n{err!r}"
        assert len(err) < 5000, f"{desc}: error message is {len(err)} characters long"


# Bugs found by this fuzz and not fixed yet, each pinned by a strict xfail test: (exception
# type, function where it is raised) -> that test. The fuzz rejects these inputs so that it
# keeps looking for new bugs; delete an entry when its fix lands. (Empty: the first round -
# --set through scalars, C/0, recursive YAML - was fixed in 9ee1982; their tests below now
# assert the fixed behaviour.)
KNOWN_BUGS: dict[tuple[type, str], str] = {}


def known_bug(exc: BaseException) -> str | None:
    """The xfail test that pins ``exc``, if it is a known bug."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    func = tb.tb_frame.f_code.co_name if tb is not None else ""
    for (etype, where), test in KNOWN_BUGS.items():
        if isinstance(exc, etype) and func == where:
            return test
    return None


# ------------------------------------------------------------------------- validate fuzz
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_case())
def test_validate_never_crashes_on_mutated_cases(mutant):
    desc, raw, files, overrides = mutant
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "case"
        folder.mkdir()
        path = write_case(folder, raw, files)
        before = sorted(p.name for p in folder.rglob("*"))
        try:
            code, err = validate_in_process(path, overrides)
        except Exception as exc:
            if known_bug(exc):
                reject()
            raise
        assert_clean_outcome(code, err, desc)
        assert sorted(p.name for p in folder.rglob("*")) == before, f"{desc}: validate wrote files"


@pytest.mark.parametrize("name", sorted(BASES))
def test_unmutated_bases_are_valid(tmp_path, name):
    """The fuzz starts from valid cases (else every mutant would trivially fail)."""
    code, err = validate_in_process(write_case(tmp_path, BASE_TEXTS[name].encode(), {}))
    assert code == 0, err


# ------------------------------------------------------------------------- unreadable files
def _unreadable(tmp_path: Path, kind: str) -> Path:
    p = tmp_path / "case.yaml"
    if kind == "missing":
        return tmp_path / "nope.yaml"
    if kind == "directory":
        p.mkdir()
    elif kind == "invalid_utf8":
        p.write_bytes(b"name: \xff\xfe\n")
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "symlink_loop":
        p.symlink_to(p)
    elif kind == "top_level_list":
        p.write_text("- geometry\n- load\n")
    elif kind == "nul_bytes":
        p.write_bytes(b"name: a\x00b\n")
    elif kind == "yaml_tag":
        p.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    elif kind == "utf16":
        p.write_bytes((EXAMPLES / "busbar_straight.yaml").read_text().encode("utf-16"))
    elif kind == "recursive":
        p.write_text("name: x\ngeometry: &g\n  busbars: [*g]\nload: {current: 1}\n")
    elif kind == "alias_bomb":
        # a "billion laughs" document: 9 levels of 9 aliases = 387 million leaves if expanded
        lines = ["a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]"]
        for i in range(1, 10):
            lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
        p.write_text("\n".join(lines) + "\ngeometry: *a9\n")
    return p


UNREADABLE = ["missing", "directory", "invalid_utf8", "empty", "symlink_loop", "top_level_list", "nul_bytes",
              "yaml_tag", "utf16"]


@pytest.mark.parametrize("kind", UNREADABLE)
def test_unreadable_case_files(tmp_path, kind):
    code, err = validate_in_process(_unreadable(tmp_path, kind))
    assert code == 2, err
    assert_clean_outcome(code, err, kind)
    assert "pwned" not in err


def test_alias_bomb_answers_quickly(tmp_path):
    """A case file must not be able to make validate run for hours (9 levels of 9 aliases)."""
    code, err = validate_in_process(_unreadable(tmp_path, "alias_bomb"), timeout=5)
    assert code == 2 and "error:" in err




@pytest.fixture(scope="module")
def real_step(tmp_path_factory) -> bytes:
    """A valid STEP file of a 100 x 10 x 2 mm bar (written by gmsh/OpenCASCADE)."""
    import gmsh

    path = tmp_path_factory.mktemp("step") / "bar.step"
    was_initialized = gmsh.isInitialized()
    if not was_initialized:
        gmsh.initialize(interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    current = gmsh.model.getCurrent() if gmsh.model.list() else None
    gmsh.model.add("fuzz_step")
    gmsh.model.occ.addBox(0, 0, 0, 0.1, 0.01, 0.002)
    gmsh.model.occ.synchronize()
    gmsh.write(str(path))
    gmsh.model.remove()
    if current:
        gmsh.model.setCurrent(current)
    if not was_initialized:
        gmsh.finalize()
    return path.read_bytes()


def _not_step(kind: str, good: bytes) -> bytes | None:
    data = good.index(b"DATA;") + len(b"DATA;")
    return {
        "empty": b"",
        "stl_text": b"solid ascii stl\nendsolid\n",
        "random_bytes": bytes(range(256)) * 8,
        "truncated": good[: len(good) // 2],
        "header_only": good[:data],
        "no_solids": good[:data] + b"\n#1 = FOO(#2);\n#2 = BAR(#1);\nENDSEC;\nEND-ISO-10303-21;\n",
        "utf16": good.decode("ascii", "replace").encode("utf-16"),
        "directory": None,
    }[kind]


@pytest.mark.parametrize("kind", [
    "empty", "random_bytes", "truncated", "no_solids",
    pytest.param("stl_text", marks=pytest.mark.slow), pytest.param("header_only", marks=pytest.mark.slow),
    pytest.param("utf16", marks=pytest.mark.slow), pytest.param("directory", marks=pytest.mark.slow),
])
def test_run_with_a_step_file_that_is_not_step(tmp_path, real_step, kind):
    content = _not_step(kind, real_step)
    if content is None:
        (tmp_path / "part.step").mkdir()
    else:
        (tmp_path / "part.step").write_bytes(content)
    path = write_case(tmp_path, STEP_CASE.encode(), {})
    out = tmp_path / "out"
    code, err = run_subprocess(path, out)
    assert code == 2, (kind, code, err[-2000:])
    assert_run_outcome(code, err, out, kind)
    assert "geometry.step" in err, err


@pytest.mark.slow
def test_run_with_a_real_step_file(tmp_path, real_step):
    """Control for the test above: the same case with a real STEP file runs."""
    (tmp_path / "part.step").write_bytes(real_step)
    path = write_case(tmp_path, STEP_CASE.encode(), {})
    out = tmp_path / "out"
    code, err = run_subprocess(path, out)
    assert code == 0, err[-2000:]
    assert_run_outcome(code, err, out, "real STEP")


@pytest.mark.parametrize("ext, content", [
    ("msh", b"$MeshFormat\n4.1 0 8\n$EndMeshFormat\n$Nodes\n"), ("vtu", b"this is not a mesh"),
    pytest.param("inp", b"\x00\x01\x02", marks=pytest.mark.slow), pytest.param("med", b"", marks=pytest.mark.slow)])
def test_run_with_a_broken_mesh_file(tmp_path, ext, content):
    (tmp_path / f"m.{ext}").write_bytes(content)
    data = {"name": "broken_mesh", "geometry": {"mesh_file": {"file": f"m.{ext}", "regions": {
        "busbar_1": {"material": "copper"}}}}, "load": {"current": 100.0}}
    path = write_case(tmp_path, _dump(data).encode(), {})
    out = tmp_path / "out"
    code, err = run_subprocess(path, out)
    assert code == 2, (ext, code, err[-2000:])
    assert_run_outcome(code, err, out, f"broken .{ext}")


def test_recursive_yaml_is_a_case_error(tmp_path):
    code, err = validate_in_process(_unreadable(tmp_path, "recursive"))
    assert code == 2 and "error:" in err


# ------------------------------------------------------------------------- bugs found here (fixed)
@pytest.mark.parametrize("step", ["Discharge at 1e999 A for 10 s", "Rest for 1e999 s",
                                  "Discharge at 1C until 1e999 V"])
def test_step_string_rejects_infinite_numbers(tmp_path, step):
    data = copy.deepcopy(BASES["module_2s1p"])
    data["load"] = {"steps": [step], "minimum_cell_voltage": 2.5}
    code, err = validate_in_process(write_case(tmp_path, _dump(data).encode(), {}))
    assert code == 2 and "finite" in err, (code, err)


@pytest.mark.parametrize("override", ["name.a.b=1", "load.current.x=1", "geometry.busbars.x.width=1",
                                      "geometry.busbars.0.path.0.0.1=3"])
def test_override_through_a_scalar_is_a_case_error(tmp_path, override):
    path = write_case(tmp_path, BASE_TEXTS["busbar_straight"].encode(), {})
    try:
        code, err = validate_in_process(path, [override])
    except (TypeError, ValueError) as exc:
        pytest.fail(f"--set {override}: {type(exc).__name__}: {exc}")
    assert code == 2 and "command line --set" in err, (code, err)


def test_c_rate_over_zero_is_a_case_error(tmp_path):
    data = copy.deepcopy(BASES["module_2s1p"])
    data["load"] = {"steps": ["Discharge at C/0 until 3 V"]}
    code, err = validate_in_process(write_case(tmp_path, _dump(data).encode(), {}))
    assert code == 2 and "C/0" in err, (code, err)


# ------------------------------------------------------------------------- run sample (slow)
def run_subprocess(path: Path, out: Path, overrides=()) -> tuple[int | str, str]:
    cmd = [PYTHON, "-m", "busbarfem", "run", str(path), "-o", str(out), "-q", "--no-cache"]
    for o in overrides:
        cmd += ["--set", o]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env, cwd=path.parent)
    except subprocess.TimeoutExpired:
        return "timeout", ""
    return r.returncode, r.stderr


def assert_run_outcome(code, err: str, out: Path, desc: str) -> None:
    assert code != "timeout", f"{desc}: run did not finish within {RUN_TIMEOUT_S} s"
    # 3 = a stated solve failure (e.g. NaN from an enormous current): a clear message, results kept
    assert code in (0, 2, 3), f"{desc}: exit code {code}\n{err[-3000:]}"
    assert "Traceback" not in err, f"{desc}: traceback\n{err[-3000:]}"
    summary = out / "summary.json"
    if code != 0:
        assert "error:" in err, f"{desc}: failure without an 'error:' message\n{err[-3000:]}"
        if summary.exists():
            stop = json.loads(summary.read_text()).get("stop_reason", "")
            assert not stop.startswith(SUCCESS_STOPS), f"{desc}: exit {code} but summary says {stop!r}"
    else:
        assert summary.exists(), f"{desc}: exit 0 without summary.json"
        s = json.loads(summary.read_text())
        assert s["stop_reason"].startswith(SUCCESS_STOPS), (desc, s["stop_reason"])


# Coarse meshes keep each run to seconds; the mutation is applied on top.
FAST = {"busbar_straight": {"mesh": {"size": 0.005}}, "busbar_l_bolted": {"mesh": {"size": 0.008}}}


def _merge(data, extra):
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            _merge(data[k], v)
        else:
            data[k] = v
    return data


@st.composite
def run_mutant(draw):
    """A conductor case with one hostile value (the run sample: numbers, not syntax)."""
    base_name = draw(st.sampled_from(sorted(FAST)))
    data = _merge(copy.deepcopy(BASES[base_name]), FAST[base_name])
    numeric = [p for p in _paths(data) if isinstance(_parent(data, p)[p[-1]], (int, float))
               and not isinstance(_parent(data, p)[p[-1]], bool)]
    path = draw(st.sampled_from(numeric))
    # Absurd but finite lengths (1e-12 m, 1e12 m) must end as a CaseError from the Gmsh
    # failure wrapper or the element-count guard (both added after this fuzz found them).
    caught_by_schema = [0, -1.0, float("nan"), float("inf"), "5 mm", None]
    anything = [*caught_by_schema, 1e-12, 1e-6, 1e6, 1e12, 1e300]
    value = draw(st.sampled_from(anything))
    _parent(data, path)[path[-1]] = value
    return f"{base_name} {'.'.join(map(str, path))}={value!r}", _dump(data).encode()


@pytest.mark.slow
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(run_mutant())
def test_run_sample_exits_cleanly(mutant):
    desc, raw = mutant
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = write_case(folder, raw, {})
        out = folder / "out"
        code, err = run_subprocess(path, out)
        assert_run_outcome(code, err, out, desc)


@pytest.mark.slow
@pytest.mark.parametrize("desc, edit", [
    ("enormous current", {"load": {"current": 1e308}}),
    ("no terminals", {"geometry": {"terminals": None}}),
    ("no busbars", {"geometry": {"busbars": []}}),
    ("insulator", {"materials": {"copper": {"sigma_ref": 0.0, "k": 400.0, "rho": 8900.0, "cp": 385.0}}}),
    ("no cooling", {"thermal": {"boundaries": []}}),
    ("bad terminal", {"geometry": {"terminals": {"positive": "busbar_1.start\x00", "negative": "busbar_1.end"}}}),
])
def test_run_curated_hostile_inputs(tmp_path, desc, edit):
    data = _merge(copy.deepcopy(BASES["busbar_straight"]), {**FAST["busbar_straight"]})
    data = _merge(data, copy.deepcopy(edit))
    path = write_case(tmp_path, _dump(data).encode(), {})
    out = tmp_path / "out"
    code, err = run_subprocess(path, out)
    assert_run_outcome(code, err, out, desc)


@pytest.mark.slow
def test_run_absurd_coordinates_is_a_case_error(tmp_path):
    data = _merge(copy.deepcopy(BASES["busbar_straight"]), {"geometry": {"busbars": [
        {**BASES["busbar_straight"]["geometry"]["busbars"][0], "path": [[0.0, 0.0], [1e308, 0.0]]}]}})
    path = write_case(tmp_path, _dump(data).encode(), {})
    code, err = run_subprocess(path, tmp_path / "out")
    assert code == 2 and "Traceback" not in err, (code, err[-2000:])


@pytest.mark.slow
def test_run_absurd_width_is_a_case_error(tmp_path):
    bar = {**BASES["busbar_straight"]["geometry"]["busbars"][0], "width": 1e-12}
    data = _merge(copy.deepcopy(BASES["busbar_straight"]), {"geometry": {"busbars": [bar]}})
    path = write_case(tmp_path, _dump(data).encode(), {})
    code, err = run_subprocess(path, tmp_path / "out")
    assert code == 2 and "Traceback" not in err, (code, err[-2000:])


@pytest.mark.slow
def test_run_absurd_mesh_size_is_refused_quickly(tmp_path):
    data = _merge(copy.deepcopy(BASES["busbar_straight"]), {"mesh": {"size": 1e-6}})
    path = write_case(tmp_path, _dump(data).encode(), {})
    cmd = [PYTHON, "-m", "busbarfem", "run", str(path), "-o", str(tmp_path / "out"), "-q", "--no-cache"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail("no answer within 30 s")
    assert r.returncode == 2 and "error:" in r.stderr, (r.returncode, r.stderr[-2000:])
