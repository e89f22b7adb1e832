"""One regression test per defect of issue 13 ("Hostile input and faults").

Most run ``busbarfem`` in-process (validate, or run/report where the error comes before
any meshing); the mesh time limit, Ctrl-C during meshing and special files that could
block (FIFOs) run in subprocesses with a timeout.
"""

from __future__ import annotations

import copy
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fuzz_support import EXAMPLES, run_cli

from busbarfem.case.loader import MAX_NESTING
from busbarfem.safeio import MAX_CASE_BYTES

STRAIGHT = yaml.safe_load((EXAMPLES / "busbar_straight.yaml").read_text())
LAMINATED = yaml.safe_load((EXAMPLES / "laminated_vias.yaml").read_text())
WELDS = yaml.safe_load((EXAMPLES / "weld_nuggets.yaml").read_text())
MODULE = yaml.safe_load((EXAMPLES / "module_4s2p_discharge.yaml").read_text())
PYTHON = sys.executable


def write(tmp_path: Path, data, name="case.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return p


def validate(path: Path, *sets: str, timeout: float = 5) -> tuple[int, str]:
    argv = ["validate", str(path), "-q"]
    for s in sets:
        argv += ["--set", s]
    code, _, err = run_cli(argv, timeout=timeout)
    assert "Traceback" not in err
    return code, err


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


@pytest.fixture(scope="module", autouse=True)
def _warm():
    """Import everything once, so the timings below measure the checks, not the imports."""
    run_cli(["validate", str(EXAMPLES / "busbar_straight.yaml"), "-q"], timeout=60)


# ----------------------------------------------------------- memory/time before meshing
def test_400_overlapping_vias_rejected_before_building(tmp_path):
    d = copy.deepcopy(LAMINATED)
    d["geometry"]["vias"][0]["pattern"] = {"center": [0.045, 0.0], "count": 400, "pitch": 1e-5}
    p = write(tmp_path, d)
    t0 = time.perf_counter()
    code, err = validate(p)
    assert code == 2 and "geometry.vias.0.pattern" in err and "overlap" in err, err
    assert f"{p}:{line_of(p.read_text(), 'pattern:')}:" in err, err
    assert time.perf_counter() - t0 < 2.0


def test_1000s1000p_module_rejected_by_the_element_estimate(tmp_path):
    d = copy.deepcopy(MODULE)
    d["geometry"]["module"].update(series=1000, parallel=1000)
    d["geometry"]["module"].pop("parallel_connected_units", None)
    p = write(tmp_path, d)
    t0 = time.perf_counter()
    code, err = validate(p)
    assert code == 2 and "max_elements" in err and "geometry.module" in err, err
    assert f"{p}:{line_of(p.read_text(), 'module:')}:" in err
    assert time.perf_counter() - t0 < 2.0


def test_element_estimate_is_a_lower_bound_of_the_real_mesh():
    """The pre-build estimate never exceeds gmsh's count, and is within 10x of it (else useless)."""
    import gmsh

    from busbarfem.case.loader import load_case
    from busbarfem.case.plausible import estimate_elements
    from busbarfem.geometry import generate_model

    for name, size in (("busbar_straight", "0.002"), ("laminated_vias", "0.003")):
        case, _ = load_case(EXAMPLES / f"{name}.yaml", [f"mesh.size={size}", "mesh.order=1"])  # linear tets (type 4)
        est = sum(estimate_elements(case.geometry, case.mesh).values())
        gmsh.initialize(interruptible=False)
        try:
            gmsh.option.setNumber("General.Terminal", 0)
            gmsh.model.add(name)
            generate_model(case.geometry, case.mesh, None)
            real = sum(len(t) for t in gmsh.model.mesh.getElementsByType(4)[:1])
        finally:
            gmsh.finalize()
        assert est <= real <= 10 * est, (name, est, real)


def test_self_intersecting_path_names_key_and_line(tmp_path):
    d = copy.deepcopy(STRAIGHT)
    d["geometry"]["busbars"][0]["path"] = [[0, 0], [0.1, 0], [0.1, 0.05], [0.05, -0.05]]
    p = write(tmp_path, d)
    code, err = validate(p)
    assert code == 2 and "geometry.busbars.0.path" in err and "itself" in err, err
    assert f"{p}:{line_of(p.read_text(), 'path:')}:" in err


@pytest.mark.parametrize("where, key", [((), "["), (("solver",), "x[1]"), (("solver",), "function-after")])
def test_unknown_key_that_looks_like_a_validator_tag(tmp_path, where, key):
    """pydantic's error locations hold validator tags (``function-after[...]``); an unknown key
    of the case spelt like one was dropped with them, and the error path came out empty (an
    IndexError and a raw traceback; found by test_fuzz_case on ``'[': null``)."""
    d = copy.deepcopy(STRAIGHT)
    node = d
    for w in where:
        node = node[w]
    node[key] = None
    p = write(tmp_path, d)
    code, err = validate(p)
    dotted = ".".join([*where, key])
    assert code == 2 and f"{dotted}: unknown key '{key}'" in err and "valid choices" in err, err
    assert f"{p}:{line_of(p.read_text(), yaml.safe_dump({key: None}).strip())}:" in err, err


def test_tab_one_metre_above_its_busbar(tmp_path):
    d = copy.deepcopy(WELDS)
    d["geometry"]["tabs"][0]["z0"] = d["geometry"]["tabs"][0].get("z0", 0.0) + 1.0
    p = write(tmp_path, d)
    code, err = validate(p)
    assert code == 2 and "geometry.tabs.0.z0" in err and "mm vs m" in err, err


def test_terminal_positive_equals_negative(tmp_path):
    d = copy.deepcopy(STRAIGHT)
    d["geometry"]["terminals"]["negative"] = d["geometry"]["terminals"]["positive"]
    p = write(tmp_path, d)
    code, err = validate(p)
    assert code == 2 and "geometry.terminals.negative" in err and "same face" in err, err


@pytest.mark.parametrize("where, value, bound", [
    ("thermal.initial_temperature", "1e-300", "20 .. 3000 K"),
    ("thermal.ambient_temperature", "1.0e4", "20 .. 3000 K"),
    ("thermal.boundaries.0.h", "1e300", "0 .. 1e+06 W/m^2/K"),
    ("materials.copper", "{sigma_ref: 5.8e7, k: 1.0e300, rho: 8900.0, cp: 385.0}", "0.001 .. 10000 W/m/K"),
    ("materials.copper", "{sigma_ref: 1.0e15, k: 400.0, rho: 8900.0, cp: 385.0}", "0 .. 1e+12 S/m"),
    ("thermal.boundaries", "[{type: heat_flux, regions: [exterior], flux: -1.0e12}]", "-1e+08 .. 1e+08 W/m^2"),
])
def test_non_physical_inputs_are_input_errors(tmp_path, where, value, bound):
    """Formerly 'thermal runaway' with exit 0; now exit 2 naming the key and the bound."""
    p = write(tmp_path, STRAIGHT)
    code, err = validate(p, f"{where}={value}")
    assert code == 2 and bound in err and "command line --set" in err, err


def test_bounds_accept_the_bundled_examples():
    for ex in sorted(EXAMPLES.glob("*.yaml")):
        code, err = validate(ex)
        assert code == 0, (ex.name, err)


# ----------------------------------------------------------- YAML dialect
def test_duplicate_section_is_an_error_at_the_second(tmp_path):
    text = (EXAMPLES / "busbar_straight.yaml").read_text() + "geometry:\n  busbars: []\n"
    p = write(tmp_path, text)
    code, err = validate(p)
    n = len(text.splitlines()) - 1
    assert code == 2 and f"{p}:{n}:" in err and "'geometry' appears twice" in err, err
    assert f"line {line_of(text, 'geometry:')}" in err


@pytest.mark.parametrize("value, what", [("yes", "ambiguous"), ("on", "ambiguous"), ("1:30", "base-60"),
                                         ("1_000", "ambiguous")])
def test_yaml_11_surprises_are_errors(tmp_path, value, what):
    text = (EXAMPLES / "busbar_straight.yaml").read_text().replace("current: 100.0", f"current: {value}")
    p = write(tmp_path, text)
    code, err = validate(p)
    assert code == 2 and what in err and f"{p}:{line_of(text, 'current: ')}:" in err, err


def test_yaml_12_numbers_and_quoted_text(tmp_path):
    """Control: 1e2 is a number (PyYAML's 1.1 reads a string), quoted 'yes' is text."""
    from busbarfem.case.loader import parse_yaml

    data, _ = parse_yaml("a: 1e2\nb: 0x1f\nc: 'yes'\nd: true\ne: 0o17\nf: 2024-01-01\ng: 010\n")
    assert data == {"a": 100.0, "b": 31, "c": "yes", "d": True, "e": 15, "f": "2024-01-01", "g": 10}


@pytest.mark.parametrize("value", ["inf", "'inf'", '"1e999"', "1e999", "-.inf", ".nan", "'NaN'"])
def test_non_finite_numbers_in_any_spelling(tmp_path, value):
    text = (EXAMPLES / "busbar_straight.yaml").read_text().replace("width: 0.010", f"width: {value}")
    p = write(tmp_path, text)
    code, err = validate(p)
    assert code == 2 and "finite" in err and "geometry.busbars.0.width" in err, err


def test_deep_nesting_in_file_and_in_set(tmp_path):
    deep = "[" * 5000 + "1" + "]" * 5000
    p = write(tmp_path, (EXAMPLES / "busbar_straight.yaml").read_text() + f"extra: {deep}\n")
    code, err = validate(p)
    assert code == 2 and f"deeper than {MAX_NESTING}" in err, err
    p2 = write(tmp_path, STRAIGHT, "ok.yaml")
    code, err = validate(p2, f"load.current={deep}")
    assert code == 2 and "command line --set" in err and f"deeper than {MAX_NESTING}" in err, err
    code, err = validate(p2, ".".join(["a"] * 5000) + "=1")
    assert code == 2 and "command line --set" in err, err


@pytest.mark.parametrize("value", ['"bad\\x1b[2Jname"', '"nul\\0"', '"\\ud800"'])
def test_control_characters_and_surrogates_in_strings(tmp_path, value):
    text = (EXAMPLES / "busbar_straight.yaml").read_text().replace("name: busbar_straight", f"name: {value}")
    p = write(tmp_path, text)
    code, err = validate(p)
    assert code == 2 and "control character" in err and f"{p}:{line_of(text, 'name: ')}:" in err, err


def test_huge_case_file_refused_without_reading_it(tmp_path):
    p = tmp_path / "huge.yaml"
    with open(p, "wb") as f:
        f.truncate(MAX_CASE_BYTES + 1)  # sparse: instant
    code, err = validate(p)
    assert code == 2 and "MiB limit" in err, err


# ----------------------------------------------------------- special files
def test_special_files_as_case(tmp_path):
    fifo = tmp_path / "case.fifo"
    os.mkfifo(fifo)
    for path, what in ((fifo, "FIFO"), ("/dev/zero", "character device"), ("/dev/null", "character device"),
                       ("/proc/self/status", "pseudo-file"), (tmp_path, "folder"), ("", "empty")):
        code, _, err = run_cli(["validate", str(path), "-q"], timeout=5)
        assert code == 2 and what in err and "Traceback" not in err, (path, err)


def test_special_files_as_data_file(tmp_path):
    fifo = tmp_path / "cycle.txt"
    os.mkfifo(fifo)
    d = copy.deepcopy(STRAIGHT)
    d["allow_external_paths"] = True
    d["solver"] = {"analysis": "transient", "t_end": 10.0}
    for name, what in (("cycle.txt", "FIFO"), ("/dev/zero", "character device"), ("/proc/self/environ", "pseudo")):
        d["load"] = {"electrical_input_type": "current", "current_type": "piecewise_linear",
                     "current_curve_fit_file": name}
        p = write(tmp_path, d)
        code, err = validate(p)
        assert code == 2 and what in err and "current_curve_fit_file" in err, (name, err)


def test_special_files_as_output_folder(tmp_path):
    p = write(tmp_path, STRAIGHT)
    f = tmp_path / "a_file"
    f.write_text("x")
    for out in ("/dev/null", str(f)):
        code, _, err = run_cli(["run", str(p), "-o", out, "-q", "--no-cache"], timeout=10)
        assert code == 2 and "not a folder" in err and "Traceback" not in err, (out, err)


def test_report_on_corrupt_and_special_artefacts(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "timeseries.csv").write_text("time [s],T_max [K]\n0,300\n")
    cases = {
        "truncated": '{"stop_reason": "steady state reached", "T_max": {"val',
        "list": "[1, 2, 3]",
        "deep": "[" * 100000 + "]" * 100000,
        "wrong shape": '{"T_max": "hot", "J_max": 3, "terminal": [], "heat_W": "x"}',
    }
    for what, content in cases.items():
        (out / "summary.json").write_text(content)
        code, _, err = run_cli(["report", str(out), "-q", "--no-renders"], timeout=30)
        assert code in (0, 2) and "Traceback" not in err, (what, err)
        if what != "wrong shape":
            assert code == 2 and "summary.json" in err, (what, err)
    (out / "summary.json").unlink()
    os.mkfifo(out / "summary.json")
    code, _, err = run_cli(["report", str(out), "-q", "--no-renders"], timeout=10)
    assert code == 2 and "FIFO" in err, err
    code, _, err = run_cli(["report", "/dev/null", "-q"], timeout=10)
    assert code == 2 and "not a folder" in err, err


# ----------------------------------------------------------- CLI arguments
@pytest.mark.parametrize("argv, what", [
    (["critical-current", "{case}", "--rtol", "nan"], "--rtol"),
    (["critical-current", "{case}", "--rtol", "0"], "--rtol"),
    (["critical-current", "{case}", "--rtol", "inf"], "--rtol"),
    (["critical-current", "{case}", "--start", "-5"], "--start"),
    (["run", "{case}", "--checkpoint-every", "-2"], "--checkpoint-every"),
    (["run", "{case}", "--checkpoint-every", "0"], "--checkpoint-every"),
    (["run", "{case}", "--restart", ""], "--restart"),
    (["run", "{case}", "-o", ""], "--output"),
    (["validate", ""], "case"),
    (["validate", "{case}", "--set", "=1"], "--set"),
    (["validate", "{case}", "--set", "geometry..x=1"], "--set"),
])
def test_bad_cli_arguments_exit_2(tmp_path, argv, what):
    p = write(tmp_path, STRAIGHT)
    code, _, err = run_cli([a.replace("{case}", str(p)) for a in argv], timeout=10)
    assert code == 2 and what in err and "Traceback" not in err, err


# ----------------------------------------------------------- geometry found while building
def test_via_sticking_out_names_the_via_array(tmp_path):
    """'solids overlap or inserts stick out' (found by OpenCASCADE) now names file, line, key."""
    d = copy.deepcopy(LAMINATED)
    d["geometry"]["vias"][0]["pattern"] = {"center": [0.045, 0.0095], "count": 1}
    d["mesh"] = {"size": 0.01}
    p = write(tmp_path, d)
    code, _, err = run_cli(["run", str(p), "-o", str(tmp_path / "out"), "-q", "--no-cache"], timeout=60)
    # the via itself keeps its full volume; its hosts lose the wrong amount: they are named
    assert code == 2 and "stick out" in err, err
    assert re.search(re.escape(str(p)) + r":\d+: geometry\.(busbars|vias)\.\d+: ", err), err
    assert "busbar_1 [geometry.busbars.0]" in err


# ----------------------------------------------------------- mesh cache
def test_corrupt_cache_entry_is_discarded_and_rebuilt(tmp_path):
    import gmsh

    from busbarfem.case.loader import load_case
    from busbarfem.geometry import cache as mesh_cache
    from busbarfem.geometry import generate_model

    case, _ = load_case(EXAMPLES / "busbar_straight.yaml", ["mesh.size=0.005"])
    cache = tmp_path / "cache"

    def build():
        gmsh.initialize(interruptible=False)
        try:
            gmsh.option.setNumber("General.Terminal", 0)
            gmsh.model.add("c")
            info = generate_model(case.geometry, case.mesh, cache)
            return info, len(gmsh.model.mesh.getElementsByType(4)[0])
        finally:
            gmsh.finalize()

    info, n = build()
    assert info.parameters["cache"]["hit"] is False
    msh = next(cache.glob("*.msh"))
    good = msh.read_bytes()
    for damage in (good[: len(good) // 2], b"", good[:-10] + b"0123456789"):
        msh.write_bytes(damage)
        info2, n2 = build()
        assert info2.parameters["cache"]["hit"] is False and n2 == n  # rebuilt, same mesh
        assert msh.read_bytes() == good  # the rebuilt entry replaced the corrupt one
        assert build()[0].parameters["cache"]["hit"] is True
    side = msh.with_suffix(".json")
    side.write_text("{not json")
    assert build()[0].parameters["cache"]["hit"] is False
    assert json.loads(side.read_text())["msh_sha256"] == mesh_cache._sha256(msh)


# ----------------------------------------------------------- subprocess: time limit, Ctrl-C
SLOW = {**copy.deepcopy(STRAIGHT), "mesh": {"size": 0.0002}}  # ~1.5 M tets: a minute of meshing


def _as_from_a_terminal() -> None:
    """In the child before exec: SIGINT unblocked and at its default, as a shell starts a command.

    The signal mask is inherited through exec, and something earlier in a full xdist worker
    leaves SIGINT blocked in the worker (found 2026-12-02; not identified): the child then never
    receives the Ctrl-C this test sends (reproduced by blocking SIGINT in the pytest process)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_run(tmp_path, *extra):
    p = write(tmp_path, SLOW)
    cmd = [PYTHON, "-m", "busbarfem", "run", str(p), "-o", str(tmp_path / "out"), "-q", "--no-cache",
           "--log-level", "INFO", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
                            cwd=tmp_path, preexec_fn=_as_from_a_terminal)


def _wait_for(proc, text: str, timeout: float) -> str:
    buf, t0 = "", time.monotonic()
    while text not in buf:
        assert time.monotonic() - t0 < timeout, f"no {text!r} within {timeout} s: {buf[-500:]}"
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, f"ended early: {buf}"
            buf += line
    return buf


def test_mesh_time_limit_stops_meshing_with_exit_2(tmp_path):
    proc = _start_run(tmp_path, "--set", "mesh.time_limit=1.5")
    try:
        _wait_for(proc, "Ctrl-C stops", 60)
        t0 = time.monotonic()
        err = proc.communicate(timeout=30)[1]
    finally:
        proc.kill()
    assert proc.returncode == 2 and "mesh.time_limit" in err and "1.5 s" in err, err
    assert "Traceback" not in err and time.monotonic() - t0 < 10


def test_ctrl_c_stops_meshing(tmp_path):
    proc = _start_run(tmp_path)
    try:
        _wait_for(proc, "Ctrl-C stops", 60)
        time.sleep(1.0)  # inside gmsh's mesher now
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        err = proc.communicate(timeout=20)[1]
        waited = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert waited < 5, f"took {waited:.1f} s to stop"


def test_subnormal_thickness_is_refused_not_a_division_by_zero(tmp_path):
    """Found by the hypothesis tier: a sheet 1e-300 m thick made the element estimate divide
    by h**3 == 0 (ZeroDivisionError). It is now an element-budget error located at the key."""
    data = copy.deepcopy(STRAIGHT)
    data["geometry"]["busbars"][0]["thickness"] = 1e-300
    code, err = validate(write(tmp_path, data))
    assert code == 2, err
    assert "geometry.busbars.0.thickness" in err or "mesh.size" in err, err
