"""YAML -> validated :class:`~trainer.config.schema.Config`, with precise messages. No TensorFlow.

Every problem is reported with the file, the line, the key path, what was expected and the
nearest valid name. YAML is read with PyYAML's safe loader; duplicate keys, alias bombs and
language-specific tags are rejected before anything is built.
"""

from __future__ import annotations

import math
import re
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from trainer.config.checks import cross_check
from trainer.config.schema import FLOAT32_MAX, Config
from trainer.core.errors import ConfigError, DataError, TrainerError, UsageError
from trainer.core.files import Unreadable, read_bounded
from trainer.core.registry import did_you_mean

MAX_NODES = 100_000  # a config never needs more; alias bombs expand far beyond it
MAX_BYTES = 2**20  # the largest configs in use are a few kB
SHOWN = 200  # characters of a value echoed in a message; the rest is cut
Lines = dict[tuple, Any]  # key path -> line number, or "--set" for overrides


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read, override and validate a config file; raise ConfigError with every problem."""
    path = Path(path)
    data, lines = read_yaml(path)
    data = apply_overrides(data, overrides, lines)
    cfg = validate(data, lines, str(path))
    if cfg.name is None:
        cfg.name = re.sub(r"[^A-Za-z0-9._-]", "-", path.stem).lstrip(".-_") or "run"
    return cfg


def shown(value: Any, limit: int = SHOWN) -> str:
    """``repr(value)``, cut to ``limit`` characters with an ellipsis: messages stay short."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _nearby(path: Path) -> str:
    """'; did you mean configs/digits.yaml?' for a missing config with a close neighbour."""
    import difflib

    try:
        names = [p.name for p in path.parent.iterdir() if p.suffix in (".yaml", ".yml")]
    except OSError:
        return "; check the path"
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    return f"; did you mean {path.parent / close[0]}?" if close else "; check the path"


def read_yaml(path: Path) -> tuple[dict, Lines]:
    source = str(path)
    try:
        data = read_bounded(path, MAX_BYTES)
    except Unreadable as problem:
        hint = _nearby(path) if str(problem) == "file not found" else ""
        raise ConfigError(source, [f"{problem}{hint}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise ConfigError(source, [
            f"line {line}, column {column}: byte 0x{data[error.start]:02x} is not UTF-8; "
            "save the file as UTF-8"
        ]) from None  # fmt: skip
    return parse_yaml(text, source)


def parse_yaml(text: str, source: str) -> tuple[dict, Lines]:
    node, data = safe_yaml(text, source)
    if data is None:
        raise ConfigError(source, ["is empty; a config needs at least a 'dataset' key"])
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ConfigError(source, [f"must be a mapping of keys to values, not a {kind}"])
    lines: Lines = {}
    _record_lines(node, (), lines)
    return data, lines


class Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-3`` as YAML 1.2 and every editor do: a number
    (YAML 1.1, which PyYAML follows, wants ``1.0e-3``)."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def safe_yaml(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """One YAML document, its duplicate keys and alias bombs refused before it is built."""
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        problems = _inspect(node)
        if problems:
            raise ConfigError(source, problems)
        data = loader.construct_document(node)
    except RecursionError:
        raise ConfigError(source, ["nests too deeply; configs are a few levels deep"]) from None
    except yaml.MarkedYAMLError as error:
        raise ConfigError(source, [_yaml_message(error)]) from None
    except yaml.YAMLError as error:
        raise ConfigError(source, [f"YAML error: {error}"]) from None
    finally:
        loader.dispose()
    return node, data


def _yaml_message(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
    problem = error.problem or "syntax error"
    if "could not determine a constructor for the tag" in problem:
        tag = problem.split("for the tag", 1)[-1].strip(" '").replace("tag:yaml.org,2002:", "!!")
        return (
            f"line {mark.line + 1}: unsupported YAML tag {tag}; configs hold only plain "
            "mappings, lists, strings, numbers and booleans"
        )
    context = f" ({error.context})" if error.context else ""
    return f"YAML syntax error at {where}: {problem}{context}"


def _inspect(root: yaml.Node) -> list[str]:
    """Reject duplicate keys and alias bombs before construction expands anything."""
    problems: list[str] = []
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # the nodes being sized: meeting one again is a cycle

    def size(node: yaml.Node) -> int:
        if id(node) in open_nodes:
            if not any("contains itself" in p for p in problems):
                problems.append(
                    f"line {node.start_mark.line + 1}: a YAML alias makes this value contain "
                    "itself; configs cannot be recursive"
                )
            return 1
        if id(node) in sizes:
            return sizes[id(node)]
        open_nodes.add(id(node))
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    line = key.start_mark.line + 1
                    if key.value in seen:
                        problems.append(
                            f"line {line}: duplicate key '{key.value}' "
                            f"(first defined at line {seen[key.value]}); keep one of them"
                        )
                    seen.setdefault(key.value, line)
                total += size(key) + size(value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        open_nodes.discard(id(node))
        sizes[id(node)] = min(total, MAX_NODES + 1)
        return sizes[id(node)]

    if size(root) > MAX_NODES:
        problems.append(
            f"expands to more than {MAX_NODES} values through YAML aliases; "
            "refusing it as a possible alias bomb"
        )
    return problems


def _record_lines(node: yaml.Node, path: tuple, lines: Lines) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            if child not in lines:
                lines[child] = key.start_mark.line + 1
                _record_lines(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _record_lines(item, (*path, i), lines)


TYPED_SECTIONS = ("dataset", "model", "optimizer")


def apply_overrides(data: dict, overrides: list[str], lines: Lines) -> dict:
    """Apply ``--set key.path=value`` overrides; values are parsed as YAML scalars or lists."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        keys = key.strip().split(".")
        echo = shown(override)[1:-1] if len(override) > SHOWN else override
        if not sep or not all(k.strip() for k in keys):
            raise UsageError(
                f"--set '{echo}': expected KEY.PATH=VALUE",
                hint="for example --set optimizer.learning_rate=0.05",
            )
        value = _override_value(raw, echo)
        node = data
        for depth, part in enumerate(keys[:-1]):
            lines.setdefault(tuple(keys[: depth + 1]), "--set")
            if node.get(part) is None:  # absent, or null: start the section afresh
                node[part] = _default_section(part) if depth == 0 else {}
            if part in TYPED_SECTIONS and depth == 0 and isinstance(node.get(part), str):
                node[part] = {"type": node[part]}
            child = node[part]
            if not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                raise UsageError(
                    f"--set '{override}': '{where}' holds a {type(child).__name__}, "
                    "not a section with keys"
                )
            node = child
        node[keys[-1]] = value
        for path in [p for p in lines if p[: len(keys)] == tuple(keys)]:
            del lines[path]  # the file's lines under this key no longer hold its value
        lines[tuple(keys)] = "--set"
    return data


def _override_value(raw: str, echo: str) -> Any:
    """A ``--set`` value, parsed as YAML with the same guards as a config file."""
    if not raw.strip():
        return ""
    if len(raw) > MAX_BYTES:
        raise UsageError(f"--set '{echo}': the value is longer than {MAX_BYTES:,} characters")
    try:
        _, value = safe_yaml(raw, "--set")
        return value
    except ConfigError as error:
        raise UsageError(f"--set '{echo}': {'; '.join(error.problems)}") from None


def _default_section(key: str) -> dict:
    """A section created by --set: typed ones start from their default component, if any."""
    field = Config.model_fields.get(key)
    if key in TYPED_SECTIONS and field is not None and field.default_factory is not None:
        return {"type": field.default_factory().type}
    return {}


def validate(data: dict, lines: Lines, source: str) -> Config:
    try:
        cfg = Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(source, _explain(error, data, lines)) from None
    except DataError as error:  # task inference read the data (task: auto) and found a problem
        where = _locate(("dataset",), "cannot infer the task", lines)
        raise DataError(f"{source}: {where}: {error.message}", hint=error.hint) from None
    validated = cfg.model_dump(by_alias=True)
    # YAML's types as written, as the JSON Schema (and an editor) reads them: pydantic would
    # take '10' for 10 and true for 1; then, on the values as parsed, the float32 range
    problems = _converted(data, validated, lines) or _beyond_float32(validated, lines)
    if problems:
        raise ConfigError(source, problems)
    problems = cross_check(cfg)
    if problems:
        raise ConfigError(source, [_locate(path, msg, lines) for path, msg in problems])
    return cfg


def accepts(cfg: Config, changes: dict[str, Any]) -> bool:
    """Whether ``cfg`` with ``changes`` (dotted key -> value, as ``--set`` names them) is still
    a valid config: the diagnosis asks before it suggests a setting, so no hint names a key
    that does not exist or does not apply to the run."""
    data = cfg.model_dump(by_alias=True, mode="json")
    if data["dataset"].get("task") == "auto":
        data["dataset"]["task"] = cfg.task  # resolved once already: do not read the data again
    for key, value in changes.items():
        *parents, last = key.split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = value
    try:
        changed = Config.model_validate(data)
    except (ValidationError, TrainerError):
        return False
    return not cross_check(changed)


def _converted(raw: Any, value: Any, lines: Lines, path: tuple = ()) -> list[str]:
    """Scalars whose YAML type pydantic converted: a quoted number, a boolean for a number or
    a number for a boolean. A shorthand expanded by its validator (``optimizer: adam``) is not
    a scalar any more on the validated side, and is left alone."""
    if isinstance(raw, dict) and isinstance(value, dict):
        return [p for k, v in raw.items() if k in value
                for p in _converted(v, value[k], lines, (*path, k))]  # fmt: skip
    if isinstance(raw, list) and isinstance(value, list | tuple) and len(raw) == len(value):
        return [p for i, (r, v) in enumerate(zip(raw, value, strict=True))
                for p in _converted(r, v, lines, (*path, i))]  # fmt: skip
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(raw, str) and (number or isinstance(value, bool)):
        wanted = "true or false" if isinstance(value, bool) else "a number"
        problem = f"expected {wanted}, got the string {shown(raw, 40)}; remove the quotes"
    elif isinstance(raw, bool) and number:
        problem = f"expected a number, got {str(raw).lower()}"
    elif isinstance(value, bool) and not isinstance(raw, bool | str):
        problem = f"expected true or false, got {shown(raw, 40)}"
    else:
        return []
    return [_locate(path, problem, lines)]


def _beyond_float32(data: Any, lines: Lines) -> list[str]:
    return [
        _locate(path, f"{shown(value, 40)} is beyond float32's range (about 3.4e38), in which "
                "the model computes; use a smaller number", lines)
        for path, value in _numbers(data) if math.isfinite(value) and abs(value) > FLOAT32_MAX
    ]  # fmt: skip


def _numbers(data: Any, path: tuple = ()):
    """(key path, value) of every number in ``data``."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _numbers(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _numbers(value, (*path, i))
    elif isinstance(data, float) or (isinstance(data, int) and not isinstance(data, bool)):
        yield path, data


def _locate(path: tuple, message: str, lines: Lines) -> str:
    dotted = ".".join(str(p) for p in path) or "config"
    for depth in range(len(path), 0, -1):
        line = lines.get(tuple(path[:depth]))
        if line is not None:
            where = "--set" if line == "--set" else f"line {line}"
            return f"{dotted} ({where}): {message}"
    return f"{dotted}: {message}"


def _data_path(loc: tuple, data: Any) -> tuple:
    """Pydantic's error location without the union tags it inserts (e.g. 'adam')."""
    path, node = [], data
    for part in loc:
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not path[-1:] == [part]:
            if part in _union_tags(node):
                continue
            path.append(part)
            node = None
    return tuple(path)


def _union_tags(node: dict) -> set:
    return {node.get("type")} | {"function-after", "function-before"}


def _explain(error: ValidationError, data: dict, lines: Lines) -> list[str]:
    messages = []
    for err in error.errors(include_url=False):
        path = _data_path(err["loc"], data)
        kind, value = err["type"], err.get("input")
        if kind == "extra_forbidden":
            valid = _valid_keys(path[:-1], data)
            message = f"unknown key '{path[-1]}'; {did_you_mean(str(path[-1]), valid)}"
        elif kind == "union_tag_invalid":
            expected = re.findall(r"'([^']+)'", err["ctx"]["expected_tags"])
            tag = err["ctx"]["tag"]
            path = (*path, "type") if isinstance(value, dict) else path
            section = path[-2] if path[-1:] == ("type",) and len(path) > 1 else path[0]
            message = f"unknown {section} type '{tag}'; {did_you_mean(tag, expected)}"
        elif kind == "union_tag_not_found":
            message = f"needs a 'type' key naming the {path[-1] if path else 'component'}"
        elif kind == "missing":
            message = "is required but missing"
        elif kind == "string_pattern_mismatch" and path == ("name",):
            message = (
                f"got {shown(value)}; a run name is letters, digits, '.', '_' or '-', starting "
                "with a letter or digit (it becomes a directory name, so it cannot hold '/')"
            )
        elif kind == "literal_error":
            expected = re.findall(r"'([^']+)'", err["ctx"]["expected"])
            message = f"got {shown(value)}; {did_you_mean(str(value)[:SHOWN], expected)}"
        else:
            text = err["msg"].replace("Input should be", "must be").replace("Value error, ", "")
            got = "" if isinstance(value, dict) or "(got" in text else f" (got {shown(value)})"
            message = f"{text}{got}"
        messages.append((_line_of(path, lines), _locate(path, message, lines)))
    return [message for _, message in sorted(messages, key=lambda m: m[0])]


def _line_of(path: tuple, lines: Lines) -> int:
    for depth in range(len(path), 0, -1):
        line = lines.get(tuple(path[:depth]))
        if isinstance(line, int):
            return line
    return 10**9


def _valid_keys(path: tuple, data: dict) -> list[str]:
    """The keys allowed at a path, read from the schema class that governs it."""
    cls: type[BaseModel] = Config
    node: Any = data
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
        field = cls.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return []
        candidates = _model_classes(field.annotation)
        tag = node.get("type") if isinstance(node, dict) else None
        matching = [c for c in candidates if "type" not in c.model_fields or
                    c.model_fields["type"].default == tag]  # fmt: skip
        if not matching:
            return []
        cls = matching[0]
    return list(cls.model_fields)


def _model_classes(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [c for arg in typing.get_args(annotation) for c in _model_classes(arg)]


def to_yaml(cfg: Config) -> str:
    """The resolved config as YAML, each section's ``type`` first."""

    def ordered(value: Any) -> Any:
        if isinstance(value, dict):
            keys = sorted(value, key=lambda k: k != "type")
            return {k: ordered(value[k]) for k in keys}
        if isinstance(value, list):
            return [ordered(v) for v in value]
        return value

    data = ordered(cfg.model_dump(mode="json"))
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
