"""Fuzz tier: seeded hostile mutations of every bundled example through ``busbarfem validate``.

:data:`CASES_PER_EXAMPLE` mutants of each ``examples/*.yaml`` (1100+ per run with the ten
examples), 13 operators in turn (duplicate keys, YAML 1.1 ambiguities, non-finite and
wrongly typed numbers, deep nesting, control characters, unknown keys, non-physical
values, hostile ``--set``, tabs, unclosed brackets, bytes that are not UTF-8/printable,
impossible or enormous geometry). Every mutant is invalid by construction, so each must
end with exit code 2 and one ``error:`` message that names the case file and a line (the
exact line where the mutation knows it), or ``command line --set`` - no traceback, no
exit 0, within :data:`~fuzz_support.CASE_TIMEOUT_S` seconds, in bounded memory.

Reproduce one failure: ``fuzz_support.mutate(Path('examples/<name>.yaml'), <index>)``.
``BUSBARFEM_FUZZ_CASES=<n>`` changes the count per example (e.g. 2000 for a long soak).
"""

from __future__ import annotations

import os
import re
import resource
import shutil
from pathlib import Path

import pytest
from fuzz_support import DATA_FILES, EXAMPLE_FILES, Hang, mutate, run_cli

from busbarfem.case.checks import PHYSICAL_BOUNDS

CASES_PER_EXAMPLE = int(os.environ.get("BUSBARFEM_FUZZ_CASES", "110"))
#: Peak resident memory may grow by at most this much over all mutants of one example.
MAX_RSS_GROWTH_MB = 512


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def check_outcome(m, code, err: str, case_path: Path) -> str | None:
    """None if the outcome is right, else what is wrong."""
    if code != 2:
        return f"exit code {code} (expected 2)"
    if "Traceback" in err:
        return "traceback"
    if not err.startswith("error:") and "usage:" not in err:
        return f"no 'error:' message: {err[:200]!r}"
    if len(err) > 5000:
        return f"message {len(err)} characters long"
    if m.where == "set":
        if "command line --set" not in err:
            return f"--set error not located on the command line: {err[:300]!r}"
    else:
        hit = re.search(re.escape(str(case_path)) + r":(\d+): ", err)
        if hit is None:
            return f"no file:line in the message: {err[:300]!r}"
        if m.line is not None and int(hit.group(1)) != m.line:
            return f"message names line {hit.group(1)}, the mutation is on line {m.line}: {err[:300]!r}"
    if m.needs and m.needs not in err:
        return f"message lacks {m.needs!r}: {err[:300]!r}"
    return None


def test_mutants_cover_every_operator():
    """The generator itself: deterministic, and it reaches all 13 operators for each example."""
    for ex in EXAMPLE_FILES:
        a, b = mutate(ex, 7), mutate(ex, 7)
        assert (a.desc, a.text, a.overrides) == (b.desc, b.text, b.overrides)
        ops = {mutate(ex, i).desc.split()[1] for i in range(13)}
        assert len(ops) == 13, (ex.name, ops)
    assert len(EXAMPLE_FILES) >= 10 and len(EXAMPLE_FILES) * CASES_PER_EXAMPLE >= 1000


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_hostile_mutants_are_rejected_with_a_located_message(tmp_path, example):
    for f in DATA_FILES:  # drive_cycle.txt etc. next to the case, as in examples/
        shutil.copy(f, tmp_path / f.name)
    case = tmp_path / "case.yaml"
    rss0 = _rss_mb()
    failures = []
    for i in range(CASES_PER_EXAMPLE):
        m = mutate(example, i)
        case.write_bytes(m.text)
        argv = ["validate", str(case), "-q"]
        for o in m.overrides:
            argv += ["--set", o]
        try:
            code, _out, err = run_cli(argv)
        except Hang as exc:
            failures.append(f"{m.desc}: {exc}")
            continue
        except Exception as exc:  # an escaped exception is the traceback the user would see
            failures.append(f"{m.desc}: {type(exc).__name__}: {exc}"[:400])
            continue
        bad = check_outcome(m, code, err, case)
        if bad:
            failures.append(f"{m.desc}: {bad}")
    growth = _rss_mb() - rss0
    assert not failures, f"{len(failures)} of {CASES_PER_EXAMPLE} mutants of {example.name}:\n" + "\n".join(failures[:15])
    assert growth < MAX_RSS_GROWTH_MB, f"peak memory grew by {growth:.0f} MB"


def test_bound_messages_state_the_bound(tmp_path):
    """The non-physical-value message names the admissible range (e.g. '20 .. 3000 K')."""
    ex = next(p for p in EXAMPLE_FILES if p.stem == "busbar_straight")
    seen = set()
    for i in range(7, 13 * 40, 13):  # the 'bounds' operator
        m = mutate(ex, i)
        assert " bounds " in m.desc
        case = tmp_path / "case.yaml"
        case.write_bytes(m.text)
        code, _, err = run_cli(["validate", str(case), "-q"])
        assert code == 2, (m.desc, err)
        hits = [k for k, (lo, hi, unit, _) in PHYSICAL_BOUNDS.items() if f"{lo:g} .. {hi:g} {unit}" in err]
        assert hits, (m.desc, err)
        seen.update(hits)
    assert {"temperature", "htc", "heat_flux", "thermal_conductivity", "electrical_conductivity"} <= seen
