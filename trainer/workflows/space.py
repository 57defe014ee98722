"""Search spaces for ``trainer tune``: config keys by dotted path, each a range or a list.

A space file maps dotted config keys to what a trial may set them to::

    optimizer.learning_rate: {low: 0.0005, high: 0.02, log: true}   # float, log-uniform
    model.units: {choices: [[32], [64, 32]]}                         # any YAML values
    training.batch_size: {low: 16, high: 128, step: 16}              # int: 16, 32, ..., 128

Whole-number ``low`` and ``high`` make an integer range; ``step`` spaces the values evenly
(grid search needs it for float ranges); ``log`` samples evenly in log space (no ``step``).
Everything is checked before TensorFlow starts: every value a trial could take (each choice,
both ends of a range) is applied to the config and validated by the config schema, so a
misspelt key gets the schema's "did you mean" and a wrong type its precise message, with the
space file's line. No TensorFlow or Optuna here.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trainer.config.loading import Lines, apply_overrides, read_yaml, validate
from trainer.config.schema import Config
from trainer.core.errors import ConfigError
from trainer.core.registry import did_you_mean

SPEC_KEYS = ("low", "high", "log", "step", "choices")
MAX_GRID = 10_000  # grid points in one dimension; more is surely a mistake


@dataclass(frozen=True)
class Dimension:
    """One searched key: a float or int range, or a list of choices."""

    key: str  # dotted config path
    kind: str  # "float", "int" or "choice"
    line: int
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    @property
    def encoded(self) -> bool:
        """Choices that are not plain scalars go to Optuna as JSON text."""
        return self.kind == "choice" and not all(_scalar(c) for c in self.choices)

    def suggest(self, trial) -> Any:
        """The value an Optuna trial picks for this key."""
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(
                self.key, self.low, self.high, log=self.log, step=self.step or 1
            )
        if self.encoded:
            return json.loads(trial.suggest_categorical(self.key, self.options()))
        return trial.suggest_categorical(self.key, list(self.choices))

    def options(self) -> list:
        """The choices as Optuna stores them."""
        return [json.dumps(c) for c in self.choices] if self.encoded else list(self.choices)

    def decode(self, stored: Any) -> Any:
        """A value from Optuna's storage as the config takes it."""
        return json.loads(stored) if self.encoded else stored

    def grid(self, source: str) -> list:
        """Every value grid search visits, as Optuna stores them."""
        if self.kind == "choice":
            return self.options()
        if self.kind == "float" and self.step is None:
            raise ConfigError(
                source,
                [
                    f"line {self.line}: {self.key}: grid search needs a finite list of values; "
                    "give this float range a step, or list choices"
                ],
            )
        count = math.floor((self.high - self.low) / (self.step or 1) + 1e-9) + 1
        if count > MAX_GRID:
            raise ConfigError(
                source, [f"line {self.line}: {self.key}: {count} grid points; at most {MAX_GRID}"]
            )
        values = [self.low + i * (self.step or 1) for i in range(count)]
        return values if self.kind == "int" else [float(v) for v in values]

    def candidates(self) -> list:
        """Values to validate against the schema: each choice, or both ends of the range."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]

    def describe(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"choices": list(self.choices)}
        spec = {"low": self.low, "high": self.high}
        spec.update({"log": True} if self.log else {})
        spec.update({} if self.step is None else {"step": self.step})
        return spec


@dataclass(frozen=True)
class Space:
    dimensions: tuple[Dimension, ...]
    source: str

    def describe(self) -> dict[str, Any]:
        return {d.key: d.describe() for d in self.dimensions}

    def grid(self) -> dict[str, list]:
        return {d.key: d.grid(self.source) for d in self.dimensions}

    def decode(self, params: dict[str, Any]) -> dict[str, Any]:
        """Optuna's stored params as config values, keyed by dotted path."""
        by_key = {d.key: d for d in self.dimensions}
        return {k: by_key[k].decode(v) if k in by_key else v for k, v in params.items()}


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def read_space(path: Path) -> Space:
    """Parse a space file; ConfigError with every problem (file and line) if it is malformed."""
    data, lines = read_yaml(path)
    source = str(path)
    problems, dimensions = [], []
    for key, spec in data.items():
        line = lines.get((key,), "?")
        where = f"line {line}: {key}"
        if not isinstance(key, str) or not key or any(not p for p in key.split(".")):
            problems.append(
                f"line {line}: {key!r} is not a dotted config key (e.g. optimizer.learning_rate)"
            )
            continue
        if not isinstance(spec, dict):
            problems.append(
                f"{where}: expected {{low: A, high: B}} (a range) or "
                f"{{choices: [...]}} (a list), got {spec!r}"
            )
            continue
        unknown = [k for k in spec if k not in SPEC_KEYS]
        if unknown:
            problems += [
                f"{where}: unknown setting '{k}'; {did_you_mean(str(k), SPEC_KEYS)}"
                for k in unknown
            ]
            continue
        try:
            dimensions.append(_dimension(key, spec, line))
        except ValueError as error:
            problems.append(f"{where}: {error}")
    if not problems and not dimensions:
        problems.append(
            "names no keys to search; add e.g. optimizer.learning_rate: "
            "{low: 0.0001, high: 0.01, log: true}"
        )
    if problems:
        raise ConfigError(source, problems)
    return Space(tuple(dimensions), source)


def _dimension(key: str, spec: dict, line: int) -> Dimension:
    if "choices" in spec:
        extra = [k for k in spec if k != "choices"]
        if extra:
            raise ValueError(f"give either choices or a range (low, high), not both ({extra[0]})")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ValueError(f"choices must be a non-empty list, got {choices!r}")
        encoded = [json.dumps(c, sort_keys=True) for c in choices]
        if len(set(encoded)) != len(encoded):
            raise ValueError("choices lists a value twice")
        return Dimension(key, "choice", line, choices=tuple(choices))
    lacking = [k for k in ("low", "high") if k not in spec]
    if lacking:
        raise ValueError(
            f"a range needs low and high (lacks {', '.join(lacking)}), or give choices: [...]"
        )
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    if not _number(low) or not _number(high):
        raise ValueError(f"low and high must be numbers, got {low!r} and {high!r}")
    if not low < high:
        raise ValueError(f"low must be below high (got {low} and {high})")
    if not isinstance(log, bool):
        raise ValueError(f"log must be true or false, got {log!r}")
    if step is not None and (not _number(step) or step <= 0):
        raise ValueError(f"step must be a positive number, got {step!r}")
    if log and step is not None:
        raise ValueError("give log or step, not both (a log range has no even step)")
    if log and low <= 0:
        raise ValueError(f"a log range needs low > 0 (got {low})")
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high))
    if whole and (step is None or isinstance(step, int)):
        return Dimension(key, "int", line, low, high, log, step)
    return Dimension(
        key, "float", line, float(low), float(high), log, None if step is None else float(step)
    )


def check_space(space: Space, config: Path, overrides: list[str]) -> None:
    """Validate every value a trial could take with the config schema, before anything runs."""
    problems = []
    for dimension in space.dimensions:
        found: dict[str, list] = {}  # problem -> the values that cause it
        for value in dimension.candidates():
            try:
                configure(config, overrides, {dimension.key: value})
            except ConfigError as error:
                for problem in error.problems:
                    problem = problem.replace(" (--set)", "").removeprefix(f"{dimension.key}: ")
                    found.setdefault(problem, []).append(value)
        where = f"line {dimension.line}: {dimension.key}"
        for problem, values in found.items():
            if len(values) == len(dimension.candidates()):  # whatever the value: say it once
                problems.append(f"{where}: {problem}")
            else:
                problems += [f"{where} = {value!r}: {problem}" for value in values]
    if problems:
        raise ConfigError(space.source, problems)


def configure(
    config: Path, overrides: list[str], values: dict[str, Any], name: str = "trial"
) -> Config:
    """The config file with ``--set`` overrides and then ``values`` (dotted key -> value)."""
    data, lines = _read_cached(config)
    data, lines = copy.deepcopy(data), dict(lines)
    settings = [*overrides, *(f"{key}={_yaml(value)}" for key, value in values.items())]
    data = apply_overrides(data, settings, lines)
    data["name"] = name
    return validate(data, lines, str(config))


_CACHE: dict[Path, tuple[dict, Lines]] = {}


def _read_cached(config: Path) -> tuple[dict, Lines]:
    key = config.resolve()
    if key not in _CACHE:
        _CACHE[key] = read_yaml(config)
    return _CACHE[key]


def _yaml(value: Any) -> str:
    """A value as the YAML text ``--set`` parses back into the same value."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...")
