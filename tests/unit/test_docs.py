"""The documentation is current and builds.

* ``docs/case-file.md`` equals what ``scripts/gen_docs.py`` generates from the schema now;
* every key the case schema accepts (recursively, union members included) is in it;
* ``docs/verification.md`` lists every test in ``tests/verification``;
* example cases named in the docs exist;
* ``mkdocs build --strict`` succeeds (warnings are errors), offline.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from busbarfem.case.model import Case

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
REGENERATE = "run `.venv/bin/python scripts/gen_docs.py` and commit the result"


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def schema_key_paths(schema: dict) -> set[str]:
    """Every key path the schema accepts, in the reference's notation.

    ``a.b`` nested key, ``a[]`` list item, ``a[tag]`` discriminated list item,
    ``a.<name>`` free mapping key, ``a[Model]`` one of several object alternatives.
    Written independently of the generator on purpose.
    """
    defs = schema.get("$defs", {})
    paths: set[str] = set()

    def resolve(node):
        while "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[-1]]
        return node

    def objects_in(node):
        """(name, object schema, discriminator tag) of every object alternative."""
        name = node["$ref"].rsplit("/", 1)[-1] if "$ref" in node else None
        node = resolve(node)
        if "properties" in node:
            return [(name, node, None)]
        disc = (node.get("discriminator") or {}).get("propertyName")
        found = []
        for sub in node.get("anyOf", []) + node.get("oneOf", []):
            for sub_name, obj, _ in objects_in(sub):
                tag = obj["properties"][disc].get("const") if disc else None
                found.append((sub_name, obj, tag))
        return found

    def visit_value(path, node):
        node_r = resolve(node)
        objects = objects_in(node)
        if objects:
            for name, obj, _ in objects:
                visit_object(path if len(objects) == 1 else f"{path}[{name}]", obj)
            return
        alternatives = node_r.get("anyOf", []) + node_r.get("oneOf", [])
        for alt in alternatives:
            if resolve(alt).get("type") != "null":
                visit_value(path, alt)
        if node_r.get("type") == "array" and "items" in node_r:
            items = node_r["items"]
            disc = (resolve(items).get("discriminator") or {}).get("propertyName")
            members = objects_in(items)
            if members:
                for _, obj, tag in members:
                    visit_object(f"{path}[{tag}]" if disc else f"{path}[]", obj)
            else:
                for alt in resolve(items).get("anyOf", []):
                    for _, obj, _ in objects_in(alt):
                        visit_object(f"{path}[]", obj)
        extra = node_r.get("additionalProperties")
        if isinstance(extra, dict):
            for _, obj, _ in objects_in(extra):
                visit_object(f"{path}.<name>", obj)

    def visit_object(path, obj):
        for key, prop in obj["properties"].items():
            full = f"{path}.{key}" if path else key
            paths.add(full)
            visit_value(full, prop)

    visit_object("", schema)
    return paths


def test_case_file_reference_is_up_to_date(tmp_path):
    assert _gen_docs().main(["--out-dir", str(tmp_path), "--only", "case-file"]) == 0
    fresh = (tmp_path / "case-file.md").read_text(encoding="utf-8")
    committed = (DOCS / "case-file.md").read_text(encoding="utf-8")
    assert committed == fresh, f"docs/case-file.md is out of date with the schema: {REGENERATE}"


def test_case_file_reference_lists_every_key():
    text = (DOCS / "case-file.md").read_text(encoding="utf-8")
    paths = schema_key_paths(Case.model_json_schema())
    assert len(paths) > 100  # the walk reached the nested sections and union members
    assert {"thermal.boundaries[convection].h", "load.steps[].until_voltage",
            "materials.<name>.sigma_ref", "geometry.busbars[].holes[].radius"} <= paths
    missing = sorted(p for p in paths if f"`{p}`" not in text)
    assert not missing, f"keys missing from docs/case-file.md ({REGENERATE}): {missing}"


def test_verification_page_lists_every_check():
    text = (DOCS / "verification.md").read_text(encoding="utf-8")
    tests = _gen_docs().verification_tests()
    assert tests
    missing = [t["id"] for t in tests
               if f"`{t['id'].split('::')[1]}`" not in text or f"`{t['id'].split('::')[0]}`" not in text]
    assert not missing, f"checks missing from docs/verification.md ({REGENERATE}): {missing}"


def test_examples_named_in_the_docs_exist():
    named = set()
    for page in DOCS.rglob("*.md"):
        named |= set(re.findall(r"examples/[\w./-]+?\.ya?ml", page.read_text(encoding="utf-8")))
    assert "examples/busbar_l_bolted.yaml" in named
    missing = sorted(n for n in named if not (ROOT / n).is_file())
    assert not missing, f"the docs name example cases that do not exist: {missing}"


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is in the 'test' extra: pip install -e '.[test]'")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "case-file.html").is_file()


INTERNAL_NOTES = re.compile(r"DESIGN\.md|\bthe seeds?\b|\bseed's\b|\bseed[- ](?:style|formulas?|numbers?)\b",
                            re.IGNORECASE)


def test_user_facing_text_cites_sources_not_internal_notes():
    """Users do not have the design notes: name the source (AcuSolve's BATTERY_MODULE,
    the Bernardi worked example), not "the seed" or DESIGN.md."""
    from busbarfem.cli import _parser

    texts = {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8")
             for p in [*DOCS.rglob("*.md"), ROOT / "README.md", *(ROOT / "examples").glob("*.yaml"),
                       *(ROOT / "src" / "busbarfem" / "case").glob("*.py")]}
    parser = _parser()
    texts["busbarfem --help"] = parser.format_help()
    for action in parser._subparsers._group_actions:  # every subcommand's --help
        for name, sub in action.choices.items():
            texts[f"busbarfem {name} --help"] = sub.format_help()
    hits = [f"{where}: {m.group(0)!r}" for where, text in texts.items() for m in INTERNAL_NOTES.finditer(text)]
    assert not hits, "\n".join(hits)


# --------------------------------------------------------------- program output samples
#: sample commands cheap enough to rerun in the unit tests (the others: gen_docs --only samples)
QUICK_SAMPLES = ("--lumped", "busbar_straight.yaml", "busbar_l_bolted.yaml -o results/default",
                 "run examples/busbar_runaway.yaml")
REGENERATE_SAMPLES = "run `.venv/bin/python scripts/gen_docs.py --only samples` and commit the result"


def _all_samples():
    gen = _gen_docs()
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for m in gen.doc_samples(page.read_text(encoding="utf-8")):
            found.append((page.relative_to(DOCS).as_posix(), m["args"], m["keep"], m["body"]))
    return found


def test_program_output_in_the_docs_is_generated():
    """Every block that shows busbarfem's console output carries the command that makes it,
    so that ``gen_docs.py --only samples`` regenerates it."""
    marked = {(page, body) for page, _, _, body in _all_samples()}
    assert len(marked) >= 10
    output = re.compile(r"busbarfem: (case|critical current)|lumped circuit:|^  stop:|^  terminal: V =", re.M)
    unmarked = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        rel = page.relative_to(DOCS).as_posix()
        for m in re.finditer(r"^```text\n(.*?)^```", text, re.S | re.M):
            if output.search(m.group(1)) and (rel, m.group(1)) not in marked:
                unmarked.append(f"{rel}:{text[:m.start()].count(chr(10)) + 1}")
    assert not unmarked, f"console output without an '<!-- output: ARGS -->' marker: {unmarked}"


@pytest.mark.parametrize("page,args,keep,body", [s for s in _all_samples()
                                                  if any(q in s[1] for q in QUICK_SAMPLES)],
                         ids=lambda v: v if isinstance(v, str) and v.endswith(".md") else "")
def test_quick_samples_match_a_real_run(page, args, keep, body, tmp_path):
    gen = _gen_docs()
    fresh, stderr = gen.run_sample(args, keep, workdir=tmp_path)
    assert gen.mask_timings(body) == gen.mask_timings(fresh), (
        f"docs/{page}: the output of `busbarfem {args}` changed: {REGENERATE_SAMPLES}")
    for noise in ("HDF5-DIAG", "X server", "Traceback"):  # nothing the user did not cause
        assert noise not in stderr, stderr


def test_tutorial_case_listings_equal_their_example_files():
    """A tutorial that shows its case file (``**Case file:** `examples/X.yaml` ``) shows
    the file as it is (name and description aside), so the two cannot drift apart."""
    import yaml

    checked = 0
    for page in sorted((DOCS / "tutorials").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        named = re.search(r"\*\*Case file:\*\* `(examples/[\w.]+)`", text)
        if not named:
            continue
        example = yaml.safe_load((ROOT / named.group(1)).read_text(encoding="utf-8"))
        for block in re.findall(r"^```ya?ml\n(.*?)^```", text, re.S | re.M):
            shown = yaml.safe_load(block)
            differ = sorted(k for k in set(shown) | set(example)
                            if k not in ("name", "description") and shown.get(k) != example.get(k))
            assert not differ, f"docs/tutorials/{page.name} shows {named.group(1)} with other {differ}"
            checked += 1
    assert checked >= 7
