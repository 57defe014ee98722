"""The config schema: the top-level ``Config``, over the sections and the registered components.

Components picked by ``type`` (dataset, model, optimizer) are discriminated unions built
from their registries, so a newly registered component is valid config at once. The sections
are in :mod:`trainer.settings.sections`; the rules that span sections in
:mod:`trainer.config.checks`.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from trainer.datasets import DATASETS
from trainer.models import MODELS
from trainer.optimizers import OPTIMIZERS
from trainer.settings.sections import (
    Checkpoint,
    EarlyStopping,
    Regularization,
    Section,
    Tracking,
    Training,
    bare_type,
)
from trainer.settings.vocabulary import CLASSIFICATION_METRICS, REGRESSION_METRICS, Loss, Metric


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
    loss: Loss | None = Field(None, description="Default: inferred from the dataset's task.")

    _bare = field_validator("dataset", "model", "optimizer", mode="before")(bare_type)

    @model_validator(mode="after")
    def _fill_task_defaults(self) -> Config:
        task = self.task
        if self.metrics is None:
            regression = task == "regression"
            self.metrics = list(REGRESSION_METRICS if regression else CLASSIFICATION_METRICS)
        if self.loss is None:
            from trainer.settings.vocabulary import DEFAULT_LOSS

            self.loss = DEFAULT_LOSS[task]
        return self

    @property
    def task(self) -> str:
        return self.dataset.task()

    def epoch_metrics(self) -> list[str]:
        """Metrics Keras can log every epoch (and early stopping can monitor)."""
        keras_side = {
            "regression": {"mse", "mae", "rmse", "r2"},
            "binary": {"accuracy", "precision", "recall", "auc"},
            "multiclass": {"accuracy"},
        }[self.task]
        return [m for m in self.metrics if m in keras_side]

    def logged_names(self) -> list[str]:
        from trainer.models import hook

        names = hook("logged", self.model.type)(self)
        if self.dataset.validation_split > 0:
            names += [f"val_{n}" for n in names]
        return names


def json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema()
    for key, registry in (("dataset", DATASETS), ("model", MODELS), ("optimizer", OPTIMIZERS)):
        union = schema["properties"][key]  # also accept the `optimizer: adam` shorthand
        shorthand = {"type": "string", "enum": registry.names(), "description": "{type: NAME}"}
        title = union.pop("title", key.title())
        schema["properties"][key] = {"title": title, "anyOf": [union, shorthand]}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "trainer config"
    return schema
