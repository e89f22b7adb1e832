"""Read a case file: YAML with line numbers -> validated :class:`~busbarfem.case.model.Case`.

Every error becomes a :class:`~busbarfem.errors.CaseError` naming the file, the line, the
dotted key and (for unknown keys or names) the valid choices with the closest suggested.
``--set key.path=value`` overrides are applied before validation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from busbarfem.errors import CaseError


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
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed


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


def _check_finite(obj: Any, key: str, src: CaseSource) -> None:
    """Reject NaN/inf anywhere: no physical input is infinite."""
    if isinstance(obj, float) and not math.isfinite(obj):
        raise src.error(f"value {obj} is not a finite number", key)
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_finite(v, f"{key}.{k}" if key else str(k), src)
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


def _data_path(loc: tuple, data: Any) -> list:
    """Keep the parts of a pydantic error location that exist in the data (drops union tags)."""
    out: list = []
    cur = data
    for p in loc:
        if isinstance(cur, dict) and p in cur:
            out.append(p)
            cur = cur[p]
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
    loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and ("[" in p or p in ("function-after", "function-plain"))))
    # drop discriminated-union tags (they equal the 'type' value, e.g. 'convection')
    clean: list[Any] = _data_path(loc, data) if data is not None else list(loc)
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
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseError(f"cannot read case file: {exc.strerror if isinstance(exc, OSError) else exc}",
                        file=str(p)) from None
    src = CaseSource(path=p)
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                mark = event.start_mark
                raise CaseError("YAML anchors and aliases (&name / *name) are not supported in case files; "
                                "write the values out", file=str(p), line=mark.line + 1)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise CaseError(f"YAML syntax error: {problem}", file=str(p), line=line) from None
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
