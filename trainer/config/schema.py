"""The config schema: the top-level ``Config``, over the sections and the registered components.

Components picked by ``type`` (dataset, model, optimizer) are discriminated unions built
from their registries, so a newly registered component is valid config at once. The sections
are in :mod:`trainer.settings.sections`; the rules that span sections in
:mod:`trainer.config.checks`.

:func:`json_schema` exports the same rules as plain JSON Schema draft 2020-12. Shorthands
(`optimizer: adam`, `tracking.tensorboard: false`) are declared where they are validated, as
the validator's ``json_schema_input_type``, so the schema accepts what the validator accepts.
Rules only code can check (those spanning sections, files on disk) stay out of it.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator
from pydantic.json_schema import GenerateJsonSchema

from trainer.datasets import DATASETS
from trainer.losses import LOSSES
from trainer.models import MODELS
from trainer.optimizers import OPTIMIZERS
from trainer.settings.sections import (
    Checkpoint,
    EarlyStopping,
    Regularization,
    Section,
    Tracking,
    Training,
)
from trainer.settings.vocabulary import CLASSIFICATION_METRICS, REGRESSION_METRICS, Metric

FLOAT32_MAX = 3.4028234663852886e38  # the model computes in float32: larger numbers are inf


class Config(Section):
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
        description="Run name (letters, digits, '.', '_', '-'); default: the config file's name.",
    )
    seed: int = Field(42, ge=0, lt=2**32, description="Seeds Python, NumPy, Keras and the splits.")
    deterministic: bool = Field(False, description="Also turn on TensorFlow op determinism.")
    dataset: DATASETS.params_union()  # type: ignore[valid-type]
    model: MODELS.params_union() = Field(default_factory=lambda: MODELS.get("fnn").params())  # type: ignore[valid-type]
    optimizer: OPTIMIZERS.params_union() = Field(  # type: ignore[valid-type]
        default_factory=lambda: OPTIMIZERS.get("adam").params()
    )
    regularization: Regularization = Field(default_factory=Regularization)
    early_stopping: EarlyStopping | None = Field(None, description="Omit or null to disable.")
    training: Training = Field(default_factory=Training)
    checkpoint: Checkpoint = Field(default_factory=Checkpoint)
    tracking: Tracking = Field(
        default_factory=Tracking, description="TensorBoard logs (on) and MLflow (off)."
    )
    metrics: list[Metric] | None = Field(None, description="Default: every metric of the task.")
    loss: LOSSES.params_union() | None = Field(  # type: ignore[valid-type]
        None,
        description="A Keras loss by name, or {type: NAME, its keyword arguments}; "
        "default: inferred from the dataset's task.",
    )

    @model_validator(mode="after")
    def _fill_task_defaults(self) -> Config:
        task = self.task
        if self.metrics is None:
            regression = task == "regression"
            self.metrics = list(REGRESSION_METRICS if regression else CLASSIFICATION_METRICS)
        if self.loss is None:
            from trainer.settings.vocabulary import DEFAULT_LOSS

            self.loss = LOSSES.get(DEFAULT_LOSS[task]).params()
        return self

    @property
    def task(self) -> str:
        return self.dataset.task()

    def epoch_metrics(self) -> list[str]:
        """Metrics Keras can log every epoch (and early stopping can monitor)."""
        keras_side = {
            "regression": {"mse", "mae", "rmse", "r2"},
            "binary": {"accuracy", "precision", "recall", "auc"},
            "multiclass": {"accuracy", "top_3_accuracy", "top_5_accuracy"},
        }[self.task]
        return [m for m in self.metrics if m in keras_side]

    def logged_names(self) -> list[str]:
        from trainer.models import hook

        names = hook("logged", self.model.type)(self)
        if self.dataset.validation_split > 0:
            names += [f"val_{n}" for n in names]
        return names


# The formats draft 2020-12 defines; pydantic adds its own (`path`), which strict validators
# such as ajv refuse as unknown.
STANDARD_FORMATS = frozenset({
    "date-time", "date", "time", "duration", "email", "idn-email", "hostname", "idn-hostname",
    "ipv4", "ipv6", "uri", "uri-reference", "iri", "iri-reference", "uuid", "uri-template",
    "json-pointer", "relative-json-pointer", "regex",
})  # fmt: skip


class PlainJsonSchema(GenerateJsonSchema):
    """Pydantic's JSON Schema without what is not draft 2020-12: OpenAPI's ``discriminator``
    (each variant's required ``type`` constant already picks one) and pydantic's own formats;
    every number gets the float32 range the loader enforces after validation."""

    def tagged_union_schema(self, schema: Any) -> dict[str, Any]:
        json_schema = super().tagged_union_schema(schema)
        json_schema.pop("discriminator", None)
        return json_schema

    def generate(self, schema: Any, mode: Any = "validation") -> dict[str, Any]:
        json_schema = super().generate(schema, mode)
        for node in _subschemas(json_schema):
            if node.get("format") is not None and node["format"] not in STANDARD_FORMATS:
                del node["format"]
            if node.get("type") in ("number", "integer"):
                if "minimum" not in node and "exclusiveMinimum" not in node:
                    node["minimum"] = -FLOAT32_MAX
                if "maximum" not in node and "exclusiveMaximum" not in node:
                    node["maximum"] = FLOAT32_MAX
        return json_schema


_SCHEMA_MAPS = ("$defs", "properties", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "propertyNames", "contains", "not", "if",
                  "then", "else", "unevaluatedItems", "unevaluatedProperties")  # fmt: skip


def _subschemas(schema: Any):
    """Every schema object in ``schema``, itself included (never the data in enum, const or
    default, nor a property that happens to be called `format`)."""
    if not isinstance(schema, dict):
        return
    yield schema
    for key in _SCHEMA_MAPS:
        for child in schema.get(key, {}).values():
            yield from _subschemas(child)
    for key in _SCHEMA_LISTS:
        for child in schema.get(key, ()):
            yield from _subschemas(child)
    for key in _SCHEMA_VALUES:
        yield from _subschemas(schema.get(key))


def json_schema() -> dict[str, Any]:
    """The config's JSON Schema (draft 2020-12), for editors and other validators."""
    schema = Config.model_json_schema(schema_generator=PlainJsonSchema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "trainer config",
    }
