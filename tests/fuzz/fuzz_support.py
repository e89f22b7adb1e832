"""Shared machinery of the fuzz tier: seeded mutations of the bundled examples and an
in-process ``busbarfem`` runner with a time limit.

Every mutation operator here makes a case that MUST be rejected (exit code 2) - it is
not enough that the command survives: a hostile input that is accepted is a defect too.
Each mutant records where the error must be reported (the line of the mutated text, or
the ``--set`` option), so a message that names the wrong place fails the test.
"""

from __future__ import annotations

import contextlib
import copy
import io
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from helpers import Hang, time_limit  # noqa: F401  (Hang: raised on a hang)

from busbarfem.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))
DATA_FILES = sorted(p for p in EXAMPLES.iterdir() if p.is_file() and p.suffix != ".yaml")

#: Fixed seed: a failure names (example, index) and reproduces exactly.
SEED = 20261201
#: Per-case wall-time limit for an in-process ``validate`` [s].
CASE_TIMEOUT_S = 5




def run_cli(argv: list[str], timeout: float = CASE_TIMEOUT_S) -> tuple[int, str, str]:
    """``busbarfem <argv>`` in this process: (exit code, stdout, stderr).

    A traceback would escape as an exception and fail the calling test with it; argparse
    errors (SystemExit 2) are returned as code 2 with their usage message.
    """
    out, err = io.StringIO(), io.StringIO()
    with time_limit(timeout), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------- mutants
@dataclass
class Mutant:
    """One hostile case derived from an example.

    Attributes:
        desc: what was done (reproduces the case with the example and index).
        text: the case file bytes.
        overrides: ``--set`` strings.
        line: the 1-based line the error must name (None: any line of the case file).
        where: "file" (``case.yaml:<line>:``) or "set" (``command line --set``).
        needs: a substring the message must contain (e.g. the physical bound).
    """

    desc: str
    text: bytes
    overrides: list[str] = field(default_factory=list)
    line: int | None = None
    where: str = "file"
    needs: str | None = None


AMBIGUOUS = ["yes", "no", "on", "off", "Yes", "NO", "On", "1:30", "12:30:00", "1_000", "0b101", "-1_5.0"]
NONFINITE = ["inf", "-inf", "1e999", "-1e999", ".inf", "-.inf", ".nan", "'inf'", '"1e999"', "'-Infinity'",
             '"nan"', "NaN", "1e400"]
WRONG_TYPE = ["abc", "'5 mm'", "{}", "{a: 1}", "'0.002 m'", "'100 A'", "'25 degC'", "[[x]]"]
CONTROL = ['"a\\x1bb"', '"a\\0b"', '"\\x07bell"', '"x\\x7fy"', '"\\x1b[31mred"', '"nul\\x00"', '"\\b"']
SET_VALUES = ["1e999", "-.inf", ".nan", "yes", "off", "1:30", "1_000", "[" * 40 + "1" + "]" * 40,
              '"\\x1b[2J"', '"a\\0"']
OUT_OF_BOUNDS = [
    ("thermal.initial_temperature", [1e-300, -5.0, 0.5, 5000.0, 1e12], "K"),
    ("thermal.ambient_temperature", [1e-300, 10.0, 4000.0, 1e300], "K"),
    ("convection.h", [1e7, 1e300], "W/m^2/K"),
    ("heat_flux.flux", [-1e12, 1e12, -1e300, 5e8], "W/m^2"),
    ("material.k", [1e300, 1e-9, 1e5], "W/m/K"),
    ("material.sigma_ref", [1e300, 1e13], "S/m"),
    ("temperature.T", [1e-300, 0.001, 1e6], "K"),
]


def _scalar_nodes(node: yaml.Node, out: list) -> list:
    """(key node or None, scalar node) for every single-line plain scalar in the tree."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(v, yaml.ScalarNode):
                out.append((k, v))
            _scalar_nodes(v, out)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            if isinstance(v, yaml.ScalarNode):
                out.append((None, v))
            _scalar_nodes(v, out)
    return [
        (k, v) for k, v in out
        if v.style is None and v.start_mark.line == v.end_mark.line and v.value != ""
    ]


def _key_nodes(node: yaml.Node, out: list) -> list:
    """Keys of block mappings whose value is one line or a block below (safe to duplicate)."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if not node.flow_style and k.start_mark.line == k.end_mark.line:
                one_line = v.start_mark.line == v.end_mark.line == k.start_mark.line
                block_below = (isinstance(v, (yaml.MappingNode, yaml.SequenceNode)) and not v.flow_style
                               and v.start_mark.line > k.start_mark.line)
                if one_line or block_below:
                    out.append((k, v))
            _key_nodes(v, out)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            _key_nodes(v, out)
    return out


def _replace(text: str, node: yaml.Node, new: str) -> str:
    return text[: node.start_mark.index] + new + text[node.end_mark.index:]


def _numeric(v: yaml.ScalarNode) -> bool:
    try:
        float(v.value)
    except ValueError:
        return False
    return v.value.lower() not in ("nan", "inf", "-inf", "infinity")


def _dump(data) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _mappings(data, path=()):
    """Paths of every mapping in ``data``."""
    out = []
    if isinstance(data, dict):
        out.append(path)
        for k, v in data.items():
            out += _mappings(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _mappings(v, path + (i,))
    return out


def _at(data, path):
    for p in path:
        data = data[p]
    return data


def mutate(example: Path, index: int) -> Mutant:
    """The ``index``-th seeded hostile mutant of ``example`` (deterministic)."""
    rng = random.Random(f"{SEED}-{example.name}-{index}")
    text = example.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    root = yaml.compose(text)
    scalars = _scalar_nodes(root, [])
    numbers = [(k, v) for k, v in scalars if _numeric(v)]
    strings = [(k, v) for k, v in scalars if not _numeric(v) and k is not None and k.value not in ("type",)]
    lines = text.splitlines(keepends=True)
    ops = ["dup_key", "ambiguous", "nonfinite", "wrong_type", "deep", "control", "unknown_key", "bounds",
           "set", "tab", "unclosed", "bad_bytes", "geometry"]
    op = ops[index % len(ops)]
    tag = f"{example.name}#{index} {op}"

    if op == "dup_key":
        k, v = rng.choice(_key_nodes(root, []))
        ln, col = k.start_mark.line, k.start_mark.column
        dup = " " * col + lines[ln][col:]
        if not dup.endswith("\n"):
            dup += "\n"
        new = "".join(lines[: ln + 1]) + dup + "".join(lines[ln + 1:])
        return Mutant(f"{tag} {k.value!r} twice", new.encode(), line=ln + 2, needs="twice")
    if op in ("ambiguous", "nonfinite", "wrong_type", "deep"):
        pool = scalars if op in ("ambiguous", "deep") else numbers
        k, v = rng.choice(pool)
        if op == "deep":  # deeper than the loader's 32 levels
            n = rng.randint(33, 300)
            token = "[" * n + "1" + "]" * n
        else:
            token = rng.choice({"ambiguous": AMBIGUOUS, "nonfinite": NONFINITE, "wrong_type": WRONG_TYPE}[op])
        exact = op in ("ambiguous", "deep")
        return Mutant(f"{tag} line {v.start_mark.line + 1}: {v.value!r} -> {token[:30]!r}",
                      _replace(text, v, token).encode(), line=v.start_mark.line + 1 if exact else None)
    if op == "control":
        k, v = rng.choice(strings)
        token = rng.choice(CONTROL)
        return Mutant(f"{tag} {k.value}: {token}", _replace(text, v, token).encode(),
                      line=v.start_mark.line + 1, needs="control character")
    if op == "unknown_key":
        d = copy.deepcopy(data)
        path = rng.choice(_mappings(d))
        target = _at(d, path)
        name = rng.choice(["widht", "Current", "sigma", "extra", "x" * 200, "geometry_", "\u00e9t\u00e9",
                           "k\u00a0", "__class__", "0", "terminals "])
        if name in target:
            name += "_"
        target[name] = 1
        return Mutant(f"{tag} {'.'.join(map(str, path))}.{name!r}", _dump(d).encode())
    if op == "bounds":
        d = copy.deepcopy(data)
        what, values, unit = rng.choice(OUT_OF_BOUNDS)
        val = rng.choice(values)
        th = d.setdefault("thermal", {}) or {}
        d["thermal"] = th
        if what.startswith("thermal."):
            th[what.split(".")[1]] = val
        elif what == "convection.h":
            th.setdefault("boundaries", []).append({"type": "convection", "regions": ["exterior"], "h": val})
        elif what == "heat_flux.flux":
            th.setdefault("boundaries", []).append({"type": "heat_flux", "regions": ["exterior"], "flux": val})
        elif what == "temperature.T":
            th.setdefault("boundaries", []).append({"type": "temperature", "regions": ["exterior"], "T": val})
        else:
            mat = {"sigma_ref": 5.8e7, "k": 400.0, "rho": 8900.0, "cp": 385.0}
            mat[what.split(".")[1]] = val
            (d.setdefault("materials", {}) or {})["copper"] = mat
            d["materials"]["copper"] = mat
        # below 0 the schema's own "greater than 0" answers first; else the physical bound
        return Mutant(f"{tag} {what}={val!r}", _dump(d).encode(), needs="greater than 0" if val <= 0 and
                      what != "heat_flux.flux" else f" {unit} ")
    if op == "set":
        k, v = rng.choice(scalars)
        # the dotted key of this scalar, found through the line index of the loader
        from busbarfem.case.loader import _index_lines

        idx: dict[str, int] = {}
        _index_lines(root, "", idx)
        keys = [key for key, ln in idx.items() if ln == v.start_mark.line + 1 and key]
        key = rng.choice(keys) if keys else "load.current"
        kind = rng.random()
        if kind < 0.7:
            over = f"{key}={rng.choice(SET_VALUES)}"
        elif kind < 0.85:
            over = ".".join(["a"] * rng.randint(33, 80)) + "=1"
        else:
            # index into a scalar (the longest key of the line is a leaf; 'path.0' is a list, and
            # 'path.0.0=1' a valid coordinate in 3D paths)
            leaf = max(keys, key=len) if keys else key
            over = f"{leaf}.{rng.choice(['', 'nope', '0'])}=1" if rng.random() < 0.5 else f"{leaf}..x=1"
        return Mutant(f"{tag} --set {over[:60]!r}", text.encode(), overrides=[over], where="set")
    if op == "tab":
        k, v = rng.choice(_key_nodes(root, []))
        ln = k.start_mark.line
        new = "".join(lines[:ln]) + "\t" + lines[ln] + "".join(lines[ln + 1:])
        return Mutant(f"{tag} tab before line {ln + 1}", new.encode())
    if op == "unclosed":
        k, v = rng.choice(scalars)
        return Mutant(f"{tag} unclosed [ at line {v.start_mark.line + 1}",
                      _replace(text, v, "[1, 2" if rng.random() < 0.5 else "{a: 1").encode())
    if op == "bad_bytes":
        raw = text.encode()
        pos = rng.randrange(len(raw))
        while raw[pos] >= 0x80:  # inside a multi-byte character: move to the next ASCII byte
            pos += 1
        bad = rng.choice([b"\xff", b"\xfe\xfe", b"\x00", b"\xc3", b"\x1b", b"\x07"])
        line = raw[:pos].count(b"\n") + 1
        return Mutant(f"{tag} {bad!r} at byte {pos}", raw[:pos] + bad + raw[pos:], line=line)
    # geometry: impossible or enormous, caught before anything is built
    d = copy.deepcopy(data)
    g = d["geometry"]
    choices = []
    plane = [b for b in g.get("busbars") or [] if len(b["path"][0]) == 2]  # self_overlap is drawn in 2D
    if g.get("busbars"):
        choices += ["loop", "self_overlap"] if plane else ["loop"]
    if g.get("vias") or g.get("welds"):
        choices.append("stack_joints")
    if g.get("tabs") and g.get("welds"):
        choices.append("tab_1m_up")
    if g.get("module"):
        choices += ["huge_module", "huge_module"]
    if g.get("terminals") and isinstance(g["terminals"].get("positive"), str):
        choices.append("same_terminals")
    choice = rng.choice(choices)
    if choice == "loop":
        bar = rng.choice(g["busbars"])
        bar["path"] = list(bar["path"]) + [list(bar["path"][0])]
    elif choice == "self_overlap":
        bar = rng.choice(plane)
        (x0, y0), (x1, y1) = bar["path"][0], bar["path"][1]
        w = bar["width"]
        # out along the first segment, up by 3 widths, then straight back across it
        ux, uy = x1 - x0, y1 - y0
        n = (ux * ux + uy * uy) ** 0.5
        ux, uy = ux / n, uy / n
        p2 = [x1 - uy * 3 * w, y1 + ux * 3 * w]
        p3 = [x0 + ux * n / 2 - uy * -3 * w, y0 + uy * n / 2 + ux * -3 * w]
        bar["path"] = [[x0, y0], [x1, y1], p2, p3]
        bar["fillet_radius"] = 0.0
    elif choice == "stack_joints":
        group = rng.choice((g.get("vias") or []) + (g.get("welds") or []))
        group["pattern"] = {"center": group["pattern"].get("center", [0.0, 0.0]),
                            "count": rng.choice([2, 50, 400]), "pitch": group["radius"] * rng.choice([0.0001, 0.5, 1.0])}
    elif choice == "tab_1m_up":
        tab = rng.choice(g["tabs"])
        tab["z0"] = tab.get("z0", 0.0) + rng.choice([1.0, 0.5, -1.0, 10.0])
    elif choice == "huge_module":
        g["module"]["series"] = rng.choice([1000, 2000])
        g["module"]["parallel"] = rng.choice([1000, 2000])
        g["module"].pop("parallel_connected_units", None)
    else:
        g["terminals"]["negative"] = g["terminals"]["positive"]
    return Mutant(f"{tag} {choice}", _dump(d).encode())
