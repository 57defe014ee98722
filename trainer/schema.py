"""The config schema: every field, its default and its bounds, in one place.

Components picked by ``type`` (dataset, model, optimizer) are discriminated unions built
from their registries, so a newly registered component is valid config at once. Rules that
span sections are small named functions in ``CHECKS``; each yields ``(key path, message)``.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trainer.augmentation import check_augmentation_applies
from trainer.datasets import DATASETS
from trainer.distribution import Distribution, check_distribution
from trainer.models import MODELS
from trainer.optimizers import OPTIMIZERS
from trainer.tracking import Tracking, check_tracking_installed

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "auc")
REGRESSION_METRICS = ("mse", "mae", "rmse", "r2")
Metric = Literal["accuracy", "precision", "recall", "f1", "auc", "mse", "mae", "rmse", "r2"]
LOSSES = {  # loss name -> tasks it fits; labels are integers, so no one-hot losses
    "mean_squared_error": ("regression",),
    "mean_absolute_error": ("regression",),
    "huber": ("regression",),
    "log_cosh": ("regression",),
    "binary_crossentropy": ("binary",),
    "binary_focal_crossentropy": ("binary",),
    "hinge": ("binary",),
    "sparse_categorical_crossentropy": ("multiclass",),
}
Loss = Literal[tuple(LOSSES)]  # type: ignore[valid-type]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _bare_type(value: Any) -> Any:
    """`optimizer: adam` is shorthand for `optimizer: {type: adam}`."""
    return {"type": value} if isinstance(value, str) else value


def _positive_int_or(word: str, value: Any) -> Any:
    """Accept a positive integer or the one keyword; YAML booleans are not integers here."""
    if value == word or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value
    raise ValueError(f"must be a positive integer or '{word}' (got {value!r})")


class Regularization(Section):
    l1: float = Field(
        0.0, ge=0.0, description="L1 penalty on weight kernels (Dense, Conv2D, recurrent)."
    )
    l2: float = Field(
        0.0, ge=0.0, description="L2 penalty on weight kernels (Dense, Conv2D, recurrent)."
    )
    dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Dropout after each hidden layer (Dense, convolution block, recurrent).",
    )


class EarlyStopping(Section):
    monitor: str = Field("val_loss", description="A quantity logged every epoch.")
    patience: int = Field(3, ge=0, description="Epochs without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0.0, description="Smallest change that counts.")
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best_weights: bool = True


class Checkpoint(Section):
    every_steps: int = Field(
        0, ge=0, description="Also checkpoint every N optimizer steps (0: at epoch ends only)."
    )
    keep: int = Field(3, ge=1, description="How many recent checkpoints to keep.")


class Training(Section):
    epochs: int = Field(10, ge=1)
    batch_size: int | Literal["full"] = Field(
        32, description="Samples per step; 'full' is full-batch gradient descent."
    )
    device: Literal["auto", "cpu", "gpu"] = "auto"
    steps_per_execution: int | Literal["auto"] = Field(
        "auto",
        description="Optimizer steps per call into the compiled graph (fewer Python round-trips); "
        "'auto' takes up to 64 (on backends fed from Python, a divisor of the steps per epoch).",
    )
    jit_compile: bool | Literal["auto"] = Field(
        "auto",
        description="XLA compilation; 'auto' uses it on GPUs, and on CPUs for models of Dense "
        "layers only (convolutions measured slower with it: see bench/RESULTS.md).",
    )
    backend: Literal["auto", "tensorflow", "jax"] = Field(
        "auto", description="Keras backend; 'auto' follows KERAS_BACKEND, else TensorFlow."
    )
    eval_batch_size: int | Literal["auto"] = Field(
        "auto",
        description="Batch size for validation, evaluation and prediction; 'auto' takes the "
        "largest power of two up to 1024 whose activations fit in 32 MiB, and at least "
        "batch_size.",
    )
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = Field(
        "float32",
        description="Keras dtype policy: mixed_float16 (with loss scaling) or mixed_bfloat16 "
        "compute in 16 bits and keep float32 weights; they pay off on GPUs, not on most CPUs.",
    )
    class_weight: Literal["none", "balanced"] | dict[int | str, float] = Field(
        "none",
        description="Weigh each class's examples in the loss (classification): 'balanced' "
        "weighs class c by n / (k * n_c); a mapping {class name or index: weight} sets them, "
        "and classes it leaves out weigh 1.",
    )
    distribution: Distribution = Field(
        default_factory=Distribution,
        description="Devices or machines that train together; batch_size is the global batch.",
    )
    lr_scaling: Literal["none", "linear"] = Field(
        "none", description="linear: multiply learning_rate by the number of replicas."
    )

    _distribution = field_validator("distribution", mode="before")(_bare_type)

    @field_validator("class_weight", mode="before")
    @classmethod
    def _class_names_not_booleans(cls, value):
        if isinstance(value, dict):
            for key, weight in value.items():
                if isinstance(key, bool):
                    raise ValueError(
                        f"class {key!r} is a boolean: YAML reads yes, no, true and false as "
                        "booleans; quote class names ('yes': 9.0)"
                    )
                if not isinstance(weight, int | float) or isinstance(weight, bool) or weight <= 0:
                    raise ValueError(f"the weight of class {key!r} must be a positive number")
        return value

    @field_validator("steps_per_execution", mode="before")
    @classmethod
    def _positive_or_auto(cls, value):
        return _positive_int_or("auto", value)

    @field_validator("eval_batch_size", mode="before")
    @classmethod
    def _eval_positive_or_auto(cls, value):
        return _positive_int_or("auto", value)

    @field_validator("batch_size", mode="before")
    @classmethod
    def _positive_or_full(cls, value):
        return _positive_int_or("full", value)


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

    _bare = field_validator("dataset", "model", "optimizer", mode="before")(_bare_type)

    @model_validator(mode="after")
    def _fill_task_defaults(self) -> Config:
        task = self.task
        if self.metrics is None:
            regression = task == "regression"
            self.metrics = list(REGRESSION_METRICS if regression else CLASSIFICATION_METRICS)
        if self.loss is None:
            from trainer.models.head import DEFAULT_LOSS

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


Problem = tuple[tuple, str]


def check_metrics_fit_task(cfg: Config) -> Iterator[Problem]:
    allowed = REGRESSION_METRICS if cfg.task == "regression" else CLASSIFICATION_METRICS
    for i, metric in enumerate(cfg.metrics):
        if metric not in allowed:
            yield (
                ("metrics", i),
                (
                    f"'{metric}' does not apply to the {cfg.task} task of dataset "
                    f"'{cfg.dataset.type}'; use one of: {', '.join(allowed)}"
                ),
            )
    if len(set(cfg.metrics)) != len(cfg.metrics):
        yield ("metrics",), "lists a metric twice"


def check_loss_fits_task(cfg: Config) -> Iterator[Problem]:
    if cfg.task not in LOSSES[cfg.loss]:
        fitting = [name for name, tasks in LOSSES.items() if cfg.task in tasks]
        yield (
            ("loss",),
            (
                f"'{cfg.loss}' does not fit the {cfg.task} task of dataset '{cfg.dataset.type}'; "
                f"use one of: {', '.join(fitting)} (or leave loss out to infer it)"
            ),
        )


def check_monitor_is_logged(cfg: Config) -> Iterator[Problem]:
    if cfg.early_stopping is None:
        return
    monitor, logged = cfg.early_stopping.monitor, cfg.logged_names()
    if monitor in logged:
        return
    from trainer.registry import did_you_mean

    why = ""
    if monitor.startswith("val_") and cfg.dataset.validation_split == 0:
        why = " (dataset.validation_split is 0, so nothing is validated)"
    elif monitor.removeprefix("val_") in cfg.metrics:
        why = f" ('{monitor.removeprefix('val_')}' is computed only in the final report)"
    yield (
        ("early_stopping", "monitor"),
        (f"'{monitor}' is not logged during training{why}; {did_you_mean(monitor, logged)}"),
    )


def check_full_batch(cfg: Config) -> Iterator[Problem]:
    full_batch = OPTIMIZERS.get(cfg.optimizer.type).info.get("full_batch")
    if full_batch and "batch_size" in cfg.training.model_fields_set:
        if cfg.training.batch_size != "full":
            yield (
                ("training", "batch_size"),
                (
                    f"optimizer 'gd' is full-batch gradient descent but batch_size is "
                    f"{cfg.training.batch_size}; set batch_size: full, or use optimizer 'sgd'"
                ),
            )


def check_regularization_applies(cfg: Config) -> Iterator[Problem]:
    applies = MODELS.get(cfg.model.type).info.get("regularization", ())
    for key in ("l1", "l2", "dropout"):
        if getattr(cfg.regularization, key) and key not in applies:
            yield (
                ("regularization", key),
                (
                    f"model '{cfg.model.type}' does not use {key}; remove it "
                    f"(this model applies: {', '.join(applies) or 'none'})"
                ),
            )


def check_model_fits_task(cfg: Config) -> Iterator[Problem]:
    tasks = MODELS.get(cfg.model.type).info.get("tasks", ())
    if cfg.task not in tasks:
        yield (
            ("model", "type"),
            (
                f"model '{cfg.model.type}' cannot learn the {cfg.task} task of dataset "
                f"'{cfg.dataset.type}' (it supports: {', '.join(tasks)})"
            ),
        )


def check_imbalance_needs_classes(cfg: Config) -> Iterator[Problem]:
    if cfg.task != "regression":
        return
    why = f"the {cfg.task} task of dataset '{cfg.dataset.type}' has no classes"
    if cfg.training.class_weight != "none":
        yield ("training", "class_weight"), f"applies to classification, but {why}; remove it"
    if getattr(cfg.dataset, "resample", "none") != "none":
        yield ("dataset", "resample"), f"applies to classification, but {why}; remove it"


def check_precision_supported(cfg: Config) -> Iterator[Problem]:
    if cfg.training.precision != "float32" and cfg.model.type in ("vae", "gan"):
        yield (
            ("training", "precision"),
            f"mixed precision is supported for supervised models, not '{cfg.model.type}' "
            "(its custom training step keeps float32); use precision: float32",
        )


def check_family_rules(cfg: Config) -> Iterator[Problem]:
    """The model family's own rules (``MODELS.register(..., checks=[...])``)."""
    for check in MODELS.get(cfg.model.type).info.get("checks", ()):
        yield from check(cfg)


CHECKS = [
    check_precision_supported,
    check_metrics_fit_task,
    check_loss_fits_task,
    check_monitor_is_logged,
    check_full_batch,
    check_regularization_applies,
    check_model_fits_task,
    check_imbalance_needs_classes,
    check_family_rules,
    check_tracking_installed,
    check_distribution,
    check_augmentation_applies,
]


def cross_check(cfg: Config) -> list[Problem]:
    return [problem for check in CHECKS for problem in check(cfg)]


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
