"""Read a case file: YAML with line numbers -> validated :class:`~busbarfem.case.model.Case`.

Every error becomes a :class:`~busbarfem.errors.CaseError` naming the file, the line, the
dotted key and (for unknown keys or names) the valid choices with the closest suggested.
``--set key.path=value`` overrides are applied before validation.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from busbarfem.errors import CaseError

# ------------------------------------------------------------------------- YAML dialect
#: Deepest nesting of mappings/lists accepted in a case file or a --set value.
MAX_NESTING = 32
#: Most parts in a --set key path (a.b.c...).
MAX_KEY_PARTS = 32

_CORE_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_CORE_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_CORE_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                         r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
# plain scalars that YAML 1.1 (PyYAML's default) turns into something else than YAML 1.2 does
_AMBIGUOUS = re.compile(r"^(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF"
                        r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?"
                        r"|[-+]?(?:0b[01_]+|[0-9][0-9_]*_[0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?))$")
_AMBIGUOUS_TAG = "tag:busbarfem,2026:ambiguous"
_RESOLVED_ELSEWHERE = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                       "tag:yaml.org,2002:timestamp"}


class CaseYamlError(yaml.YAMLError):
    """A YAML construct a case file must not use (duplicate key, ambiguous scalar, ...)."""

    def __init__(self, message: str, mark):
        super().__init__(message)
        self.problem = message
        self.problem_mark = mark


class CaseLoader(yaml.SafeLoader):
    """PyYAML's safe loader restricted to the YAML 1.2 core schema.

    * booleans are only ``true``/``false``; ints ``123``, ``0o17``, ``0x1f``; floats
      ``1.5``, ``1e3``, ``.inf``, ``.nan`` (PyYAML's YAML 1.1 reads ``1e3`` as a string);
    * YAML 1.1 forms that a 1.2 reader would read differently (``yes``/``no``/``on``/
      ``off``, ``1:30`` = 90, ``1_000``, ``0b101``) are errors asking for an unambiguous
      spelling, timestamps stay strings;
    * a key written twice in one mapping is an error (PyYAML keeps the last silently).
    """

    yaml_implicit_resolvers = {
        ch: [(tag, rx) for tag, rx in resolvers if tag not in _RESOLVED_ELSEWHERE]
        for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node, deep=False):
        """A mapping whose keys are all distinct."""
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                try:
                    key = self.construct_object(key_node, deep=True)
                    hash(key)
                except TypeError:
                    raise CaseYamlError("a mapping key must be a plain value, not a list or a mapping",
                                        key_node.start_mark) from None
                if key in seen:
                    raise CaseYamlError(f"key '{key}' appears twice in the same section (first on line "
                                        f"{seen[key]}); write each key once", key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)

    def construct_core_bool(self, node):
        """``true``/``false`` (any case style of the core schema)."""
        return self.construct_scalar(node).lower() == "true"

    def construct_core_int(self, node):
        """Decimal, ``0o`` octal or ``0x`` hexadecimal integer."""
        v = self.construct_scalar(node)
        if v.startswith("0o"):
            return int(v[2:], 8)
        if v.startswith("0x"):
            return int(v[2:], 16)
        return int(v, 10)

    def construct_core_float(self, node):
        """A core-schema float (``.inf``/``.nan`` included; rejected later as not finite)."""
        v = self.construct_scalar(node).lower()
        if v.endswith(".inf"):
            return -math.inf if v.startswith("-") else math.inf
        if v == ".nan":
            return math.nan
        return float(v)

    def construct_ambiguous(self, node):
        """Refuse a plain scalar that YAML 1.1 and 1.2 read differently."""
        v = self.construct_scalar(node)
        if v.lower() in ("yes", "no", "on", "off"):
            hint = "write true or false for a switch, or quote it (\"" + v + "\") for text"
        elif ":" in v:
            hint = f"YAML 1.1 reads it as a base-60 number; write the number itself, or quote it (\"{v}\") for text"
        else:
            hint = f"write the number without '_' / '0b' (e.g. {v.replace('_', '')}), or quote it for text"
        raise CaseYamlError(f"'{v}' is ambiguous in YAML; {hint}", node.start_mark)


CaseLoader.add_implicit_resolver("tag:yaml.org,2002:bool", _CORE_BOOL, list("tTfF"))
CaseLoader.add_implicit_resolver(_AMBIGUOUS_TAG, _AMBIGUOUS, list("yYnNoO-+0123456789"))
CaseLoader.add_implicit_resolver("tag:yaml.org,2002:int", _CORE_INT, list("-+0123456789"))
CaseLoader.add_implicit_resolver("tag:yaml.org,2002:float", _CORE_FLOAT, list("-+.0123456789"))
CaseLoader.add_constructor("tag:yaml.org,2002:bool", CaseLoader.construct_core_bool)
CaseLoader.add_constructor("tag:yaml.org,2002:int", CaseLoader.construct_core_int)
CaseLoader.add_constructor("tag:yaml.org,2002:float", CaseLoader.construct_core_float)
CaseLoader.add_constructor(_AMBIGUOUS_TAG, CaseLoader.construct_ambiguous)


def parse_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """Parse one YAML document with :class:`CaseLoader`: (data, node tree for line numbers).

    Anchors/aliases and nesting deeper than :data:`MAX_NESTING` are refused before the
    (recursive) composer runs, so neither an alias bomb nor ``[[[[...]]]]`` can exhaust
    memory or the stack.

    Raises:
        yaml.YAMLError: syntax errors and :class:`CaseYamlError` (with ``problem_mark``).
    """
    depth = 0
    for event in yaml.parse(text, Loader=CaseLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise CaseYamlError("YAML anchors and aliases (&name / *name) are not supported in case files; "
                                "write the values out", event.start_mark)
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_NESTING:
                raise CaseYamlError(f"nesting deeper than {MAX_NESTING} levels of sections/lists; "
                                    "no case file needs that many", event.start_mark)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    loader = CaseLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, node


@dataclass
class CaseSource:
    """Where each key of a case came from, for error messages.

    Attributes:
        path: the case file.
        lines: dotted key path -> 1-based line number.
        overrides: dotted key paths set on the command line.
    """

    path: Path
    lines: dict[str, int] = field(default_factory=dict)
    overrides: set[str] = field(default_factory=set)

    @property
    def directory(self) -> Path:
        """Folder of the case file: relative paths in the case resolve against it."""
        return self.path.parent

    def line_of(self, key: str) -> int | None:
        """Line of ``key`` or of its nearest enclosing key that has one."""
        parts = key.split(".") if key else []
        while parts:
            k = ".".join(parts)
            if k in self.lines:
                return self.lines[k]
            parts.pop()
        return self.lines.get("", None)

    def error(self, message: str, key: str, **kw) -> CaseError:
        """A CaseError located at ``key``."""
        if key in self.overrides or any(key.startswith(o + ".") for o in self.overrides):
            return CaseError(message, file="command line --set", key=key, **kw)
        return CaseError(message, file=str(self.path), line=self.line_of(key), key=key, **kw)


def _index_lines(node: yaml.Node, prefix: str, out: dict[str, int]) -> None:
    out.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = f"{prefix}.{k.value}" if prefix else str(k.value)
            out[key] = k.start_mark.line + 1
            _index_lines(v, key, out)
            out[key] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            key = f"{prefix}.{i}" if prefix else str(i)
            _index_lines(v, key, out)


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise CaseError(f"override {text!r} must look like key.path=value (e.g. load.current=200)",
                        file="command line --set")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key or any(not part.strip() for part in key.split(".")):
        raise CaseError(f"key path {key!r} has an empty part; write it like thermal.boundaries.0.h",
                        file="command line --set", key=key[:80])
    if len(key.split(".")) > MAX_KEY_PARTS:
        raise CaseError(f"key path has more than {MAX_KEY_PARTS} parts", file="command line --set", key=key[:80])
    if len(value) > 1_000_000:
        raise CaseError("value is longer than 1 MB", file="command line --set", key=key)
    try:
        parsed = parse_yaml(value)[0] if value.strip() else ""
    except CaseYamlError as exc:
        raise CaseError(f"--set {key}=...: {exc.problem}", file="command line --set", key=key) from None
    except yaml.YAMLError:
        parsed = value
    return key, parsed


def _apply_override(data: dict, key: str, value: Any) -> None:
    try:
        _apply_override_unchecked(data, key, value)
    except (TypeError, ValueError, AttributeError, KeyError):
        raise CaseError(f"cannot set '{key}': a part of the path is not a section or a list index",
                        file="command line --set", key=key) from None


def _apply_override_unchecked(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    cur: Any = data
    for i, p in enumerate(parts[:-1]):
        nxt_is_index = parts[i + 1].isdigit()
        if isinstance(cur, list):
            idx = int(p)
            if idx >= len(cur):
                raise CaseError(f"index {idx} out of range (list has {len(cur)} items)",
                                file="command line --set", key=key)
            cur = cur[idx]
        else:
            if p not in cur or cur[p] is None:
                cur[p] = [] if nxt_is_index else {}
            cur = cur[p]
    last = parts[-1]
    if isinstance(cur, list):
        idx = int(last)
        if idx >= len(cur):
            raise CaseError(f"index {idx} out of range (list has {len(cur)} items)",
                            file="command line --set", key=key)
        cur[idx] = value
    else:
        cur[last] = value


_BAD_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def _check_finite(obj: Any, key: str, src: CaseSource) -> None:
    """Reject NaN/inf anywhere (no physical input is infinite) and control characters in text."""
    if isinstance(obj, float) and not math.isfinite(obj):
        raise src.error(f"value {obj} is not a finite number", key)
    if isinstance(obj, str):
        m = _BAD_CHARS.search(obj)
        if m:
            raise src.error(f"text contains the control character {m.group()!r} (position {m.start() + 1}); "
                            "only printable characters, tabs and newlines are allowed", key)
    if isinstance(obj, dict):
        for k, v in obj.items():
            sub = f"{key}.{k}" if key else str(k)
            if isinstance(k, str) and _BAD_CHARS.search(k):
                raise src.error(f"key {k!r} contains a control character", key or "")
            _check_finite(v, sub, src)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_finite(v, f"{key}.{i}" if key else str(i), src)


def _is_path_key(name: str) -> bool:
    return name == "file" or name.endswith("_file")


def check_paths(obj: Any, key: str, src: CaseSource, allow_external: bool) -> None:
    """Files named in a case must stay inside the case's folder unless explicitly allowed."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            sub = f"{key}.{k}" if key else str(k)
            if _is_path_key(str(k)) and isinstance(v, str) and not allow_external:
                p = Path(v)
                base = src.directory.resolve()
                target = (p if p.is_absolute() else base / p).resolve()
                if p.is_absolute() or not target.is_relative_to(base):
                    raise src.error(f"file '{v}' is outside the case folder {base}; move it there or set "
                                    "'allow_external_paths: true' at the top of the case", sub)
            else:
                check_paths(v, sub, src, allow_external)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            check_paths(v, f"{key}.{i}" if key else str(i), src, allow_external)


def _model_fields_at(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """Valid field names of the model that sits at ``loc`` (for 'extra key' errors)."""
    cur: Any = model
    for part in loc:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            continue
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)):
            return None
        if part not in cur.model_fields:
            # a discriminated-union tag or dict key: try to step through
            return None
        ann = cur.model_fields[part].annotation
        cur = _first_model(ann)
        if cur is None:
            return None
    if isinstance(cur, type) and issubclass(cur, BaseModel):
        return list(cur.model_fields)
    return None


def _first_model(ann: Any) -> type[BaseModel] | None:
    import typing

    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for a in typing.get_args(ann):
        m = _first_model(a)
        if m is not None:
            return m
    return None


def _validator_tag(p: Any) -> bool:
    """A part of a pydantic error location that names a validator or union member, not a key
    (``function-after[...]``, ``list[...]``, ``function-plain``)."""
    return isinstance(p, str) and ("[" in p or p in ("function-after", "function-plain"))


def _data_path(loc: tuple, data: Any) -> list:
    """Keep the parts of a pydantic error location that exist in the data (drops union and
    validator tags; a key of the data is kept even if it looks like one, e.g. ``'['``)."""
    out: list = []
    cur = data
    for p in loc:
        if isinstance(cur, dict) and p in cur:
            out.append(p)
            cur = cur[p]
        elif _validator_tag(p):
            continue
        elif isinstance(cur, list) and isinstance(p, int) and p < len(cur):
            out.append(p)
            cur = cur[p]
        elif isinstance(cur, dict) and isinstance(p, str) and p not in cur and cur.get("type") == p:
            continue  # discriminated-union tag
        else:
            out.append(p)
            cur = None
    return out


def validation_to_case_error(err: ValidationError, src: CaseSource, model: type[BaseModel],
                             data: Any = None) -> CaseError:
    """Turn the first pydantic error into one located, human CaseError."""
    errors = err.errors()
    # an unknown key usually explains a 'missing' one (a typo): report it first
    errors.sort(key=lambda e: 0 if e["type"] == "extra_forbidden" else 1)
    e = errors[0]
    loc = tuple(e["loc"])
    # drop validator and discriminated-union tags (the latter equal the 'type' value, e.g. 'convection')
    clean: list[Any] = _data_path(loc, data) if data is not None else [p for p in loc if not _validator_tag(p)]
    key = ".".join(str(p) for p in clean)
    kind = e["type"]
    if kind == "extra_forbidden":
        parent = tuple(clean[:-1])
        choices = _model_fields_at(model, parent)
        return src.error(f"unknown key '{clean[-1]}'", key, choices=choices, bad=str(clean[-1]))
    if kind == "missing":
        return src.error("required key is missing", key)
    if kind in ("union_tag_invalid", "literal_error") and "expected" in e.get("ctx", {}):
        exp = e["ctx"]["expected"]
        choices = [c.strip().strip("'") for c in exp.replace(" or ", ",").split(",") if c.strip()]
        bad = e.get("input")
        if isinstance(bad, dict):
            bad = bad.get("type")
        return src.error(f"invalid value {bad!r}", key, choices=choices, bad=str(bad))
    msg = e["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    inp = e.get("input")
    shown = "" if isinstance(inp, (dict, list)) else f" (got {inp!r})"
    return src.error(f"{msg}{shown}", key)


def read_yaml(path: str | Path) -> tuple[dict, CaseSource]:
    """Parse a YAML case file keeping the line of every key.

    Raises:
        CaseError: unreadable file, YAML syntax error, or a top level that is not a mapping.
    """
    from busbarfem.safeio import MAX_CASE_BYTES, read_text

    p = Path(path)
    text = read_text(p, "case file", max_bytes=MAX_CASE_BYTES)
    src = CaseSource(path=p)
    try:
        data, node = parse_yaml(text)
    except CaseYamlError as exc:
        raise CaseError(exc.problem, file=str(p), line=exc.problem_mark.line + 1) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, other controls)
        line = text[: exc.position].count("\n") + 1
        ch = chr(exc.character) if isinstance(exc.character, int) else exc.character
        raise CaseError(f"character {ch!r} is not allowed in a YAML file (position {exc.position})",
                        file=str(p), line=line) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise CaseError(f"YAML syntax error: {problem}", file=str(p), line=line) from None
    except RecursionError:  # belt and braces: the depth check runs before the composer
        raise CaseError(f"nesting deeper than {MAX_NESTING} levels", file=str(p)) from None
    if node is not None:
        _index_lines(node, "", src.lines)
    if not isinstance(data, dict):
        raise CaseError("a case file must be a YAML mapping of sections (geometry:, load:, ...)",
                        file=str(p), line=1)
    return data, src


def load_case(path: str | Path, overrides: list[str] | None = None):
    """Read, override and validate a case file.

    Args:
        path: the YAML case file.
        overrides: ``key.path=value`` strings (from ``--set``).

    Returns:
        ``(case, source)``: the validated :class:`Case` and its :class:`CaseSource`.

    Raises:
        CaseError: anything wrong with the file, located by line and key.
    """
    data, src = read_yaml(path)
    for text in overrides or []:
        key, value = _parse_override(text)
        _apply_override(data, key, value)
        src.overrides.add(key)
    return validate_case_data(data, src), src


def validate_case_data(data: dict, src: CaseSource):
    """Validate a parsed case mapping (finite numbers, paths, schema, cross-checks).

    Args:
        data: the case as plain data (from YAML, or built in Python).
        src: where its keys came from (file and lines; empty lines for Python-built data).

    Returns:
        The validated :class:`Case`.

    Raises:
        CaseError: anything wrong, located by key (and line where known).
    """
    from busbarfem.case.model import Case

    _check_finite(data, "", src)
    check_paths(data, "", src, bool(data.get("allow_external_paths", False)))
    try:
        case = Case.model_validate(data, context={"case_dir": src.directory})
    except ValidationError as err:
        raise validation_to_case_error(err, src, Case, data) from None
    from busbarfem.case.checks import check_case

    check_case(case, src)
    return case
