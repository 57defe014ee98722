"""Name -> component tables, in the style of timm's ``register_model``.

A component module declares a pydantic ``Params`` class whose ``type`` field is a
``Literal`` of its registered name, and decorates its factory with
``REGISTRY.register(Params)``. Importing a registry imports every module of its package,
so a new model or dataset is one new file. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def bare_type(value: Any) -> Any:
    """`optimizer: adam` is shorthand for `optimizer: {type: adam}`."""
    return {"type": value} if isinstance(value, str) else value


def _type_required(schema: dict[str, Any]) -> None:
    """A component is picked by its `type` (the validator's union tag), so the JSON Schema
    requires it too; the Python default only lets code write ``AdamParams()``."""
    if "type" not in schema.get("properties", {}):
        return
    schema["required"] = ["type", *(key for key in schema.get("required", ()) if key != "type")]
    schema["properties"]["type"].pop("default", None)


class Params(BaseModel):
    """Base of every component's settings: unknown keys are errors, never ignored."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra=_type_required)

    @classmethod
    def registered_name(cls) -> str:
        return get_args(cls.model_fields["type"].annotation)[0]

    def kwargs(self) -> dict[str, Any]:
        """The settings as keyword arguments for the component's factory."""
        return {k: v for k, v in self if k != "type"}


@dataclass(frozen=True)
class Entry:
    name: str
    params: type[Params]
    factory: Callable[..., Any]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        if "description" in self.info:
            return self.info["description"]
        doc = (self.factory.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


def nearest(name: str, candidates: list[str]) -> str | None:
    """The closest valid name, for 'did you mean ...?' messages."""
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: list[str]) -> str:
    guess = nearest(str(name), candidates)
    options = ", ".join(sorted(candidates))
    return f"did you mean '{guess}'? (valid: {options})" if guess else f"valid: {options}"


class Registry:
    """A table of named components of one kind (models, datasets, optimizers)."""

    def __init__(self, kind: str, package: str | None = None) -> None:
        self.kind = kind
        self._package = package
        self._entries: dict[str, Entry] = {}
        self._discovered = package is None

    def register(self, params: type[Params], **info: Any) -> Callable:
        name = params.registered_name()

        def decorator(factory: Callable) -> Callable:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = Entry(name, params, factory, info)
            return factory

        return decorator

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self._package)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{self._package}.{module.name}")

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[name] for name in self.names()]

    def get(self, name: str) -> Entry:
        self._discover()
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} '{name}'; {did_you_mean(name, self.names())}")
        return self._entries[name]

    def params_union(self) -> Any:
        """A pydantic discriminated union over every registered ``Params`` class, also given
        by its bare name (`optimizer: adam`); the JSON Schema accepts both forms, the bare
        name only for components that need no other key (not `dataset: csv`)."""
        classes = tuple(entry.params for entry in self.entries())
        union = Annotated[Union[classes], Field(discriminator="type")]  # noqa: UP007
        bare = [e.name for e in self.entries() if not any(
            field.is_required() for field in e.params.model_fields.values()
        )]  # fmt: skip
        if not bare:
            return Annotated[union, BeforeValidator(bare_type, json_schema_input_type=union)]
        names = Annotated[
            Literal[tuple(bare)],
            Field(title=f"{self.kind} name", description="Short for {type: NAME}."),
        ]
        accepted = Union[union, names]  # noqa: UP007
        return Annotated[union, BeforeValidator(bare_type, json_schema_input_type=accepted)]
