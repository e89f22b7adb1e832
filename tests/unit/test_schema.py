"""The published JSON Schema (``busbarfem schema``) accepts what ``validate`` accepts.

Checked with the reference validator (``jsonschema``, draft 2020-12, the dialect
pydantic emits) on every example case and every YAML block of the docs and README, and
on mutations of the examples: a key removed, an unknown key added, a value of the wrong
type. A case the schema rejects must be rejected by validation too, and a missing or
unknown key that validation rejects must be rejected by the schema.

YAML is read as YAML 1.2 numbers (``5.8e7`` is a float), as editors that apply a JSON
Schema to YAML do.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml
from helpers import EXAMPLES, ROOT
from pydantic import ValidationError

from busbarfem.case.checks import check_references
from busbarfem.case.loader import load_case
from busbarfem.case.model import Case
from busbarfem.cli import main

DOC_PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema floats (``1e-3``, ``5.8e7`` are numbers)."""


Yaml12Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$"),
    list("-+0123456789."))


def read12(text: str):
    """Parse YAML text as an editor would (YAML 1.2 numbers)."""
    return yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 (a SafeLoader subclass)


@pytest.fixture(scope="module")
def schema() -> dict:
    """The schema exactly as ``busbarfem schema`` prints it."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["schema"]) == 0
    data = json.loads(out.getvalue())
    assert jsonschema.validators.validator_for(data) is jsonschema.Draft202012Validator  # declared
    jsonschema.Draft202012Validator.check_schema(data)
    return data


@pytest.fixture(scope="module")
def validator(schema) -> jsonschema.Draft202012Validator:
    """A draft 2020-12 validator of whole case files."""
    return jsonschema.Draft202012Validator(schema)


def schema_errors(validator, data) -> list[str]:
    """Readable schema errors (empty when the data is valid)."""
    return [f"{'.'.join(map(str, e.absolute_path)) or '<top>'}: {e.message[:200]}"
            for e in validator.iter_errors(data)]


def doc_yaml_blocks() -> list[tuple[str, str]]:
    """(page:line, text) of every ```yaml block in the docs and the README."""
    blocks = []
    for page in DOC_PAGES:
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"^```ya?ml[^\n]*\n(.*?)^```", text, re.S | re.M):
            line = text[:m.start()].count("\n") + 1
            blocks.append((f"{page.relative_to(ROOT)}:{line}", m.group(1)))
    return blocks


def validates(data) -> tuple[bool, list[str]]:
    """Does the case model accept ``data`` (relative files resolve in examples/)? + error types."""
    try:
        Case.model_validate(data, context={"case_dir": EXAMPLES})
    except ValidationError as err:
        return False, [e["type"] for e in err.errors()]
    except Exception as err:  # noqa: BLE001  (a validator's own CaseError/ValueError)
        return False, [type(err).__name__]
    return True, []


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_example_validates_against_the_published_schema(path, validator):
    data = read12(path.read_text(encoding="utf-8"))
    assert schema_errors(validator, data) == []
    check_references(*load_case(path))  # and `busbarfem validate` accepts it


def test_doc_yaml_blocks_validate_against_the_schema(schema, validator, tmp_path):
    """Whole case files must validate as they are; fragments (a block without the
    required ``geometry``/``load``) must be valid top-level sections of a case."""
    blocks = doc_yaml_blocks()
    assert len(blocks) >= 9  # one per tutorial plus getting-started
    fragment_schema = {**schema, "required": []}
    fragment_validator = jsonschema.Draft202012Validator(fragment_schema)
    for data_file in EXAMPLES.glob("*.txt"):  # curve files the snippets name
        shutil.copy(data_file, tmp_path / data_file.name)
    problems = []
    whole = 0
    for where, text in blocks:
        data = read12(text)
        assert isinstance(data, dict), where
        if all(k in data for k in schema["required"]):
            whole += 1
            problems += [f"{where}: {e}" for e in schema_errors(validator, data)]
            case = tmp_path / "snippet.yaml"
            case.write_text(text, encoding="utf-8")
            try:
                check_references(*load_case(case))
            except Exception as exc:  # noqa: BLE001
                problems.append(f"{where}: busbarfem validate rejects it: {exc}")
        else:
            problems += [f"{where}: {e}" for e in schema_errors(fragment_validator, data)]
    assert whole >= 9
    assert not problems, "\n".join(problems)


def _mappings(node, path=()):
    """Yield (path, mapping) for every mapping in a parsed YAML tree."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _mappings(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _mappings(v, (*path, i))


def _at(data, path):
    for p in path:
        data = data[p]
    return data


def _mutations(data):
    """(description, mutated case) pairs: drop a key, add an unknown key, break a type."""
    for path, mapping in list(_mappings(data)):
        where = ".".join(map(str, path)) or "<top>"
        for key in list(mapping):
            d = copy.deepcopy(data)
            del _at(d, path)[key]
            yield f"without {where}.{key}", d
            value = mapping[key]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                d = copy.deepcopy(data)
                _at(d, path)[key] = "not-a-number"
                yield f"{where}.{key} = 'not-a-number'", d
            elif isinstance(value, str):
                d = copy.deepcopy(data)
                _at(d, path)[key] = [value]
                yield f"{where}.{key} = [{value!r}]", d
        d = copy.deepcopy(data)
        _at(d, path)["zz_no_such_key"] = 1
        yield f"{where}.zz_no_such_key added", d


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_schema_agrees_with_validation_on_mutated_examples(path, validator):
    """Schema-rejects implies validation-rejects (the schema is never stricter); a
    missing or unknown key that validation rejects is rejected by the schema too."""
    data = read12(path.read_text(encoding="utf-8"))
    stricter, looser = [], []
    n = 0
    for what, mutated in _mutations(data):
        n += 1
        ok, kinds = validates(mutated)
        schema_ok = not schema_errors(validator, mutated)
        if ok and not schema_ok:
            stricter.append(f"{what}: {schema_errors(validator, mutated)[:2]}")
        if not ok and schema_ok and {"missing", "extra_forbidden"} & set(kinds):
            looser.append(f"{what}: validation says {kinds}")
    assert n > 20
    assert not stricter, "the schema rejects cases validation accepts:\n" + "\n".join(stricter)
    assert not looser, "the schema accepts cases with missing/unknown keys:\n" + "\n".join(looser)


def test_a_preset_supplies_the_required_cell_fields(validator):
    base = read12((EXAMPLES / "module_4s2p_discharge.yaml").read_text(encoding="utf-8"))
    assert base["cell"].get("preset") and "capacity" not in base["cell"]
    assert schema_errors(validator, base) == [] and validates(base)[0]
    no_preset = copy.deepcopy(base)
    del no_preset["cell"]["preset"]
    errors = schema_errors(validator, no_preset)
    assert errors and all(e.startswith("cell:") for e in errors)
    assert not validates(no_preset)[0]
    unknown = copy.deepcopy(base)
    unknown["cell"]["preset"] = "LG_M51"
    assert schema_errors(validator, unknown) and not validates(unknown)[0]
