"""Rules that span sections: small named functions in ``CHECKS``, each yielding
``(key path, message)``. They read what each registered component declares in its registry
``info`` (tasks, inputs, regularization, its own checks), never the component's code.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import TYPE_CHECKING

from trainer.core.registry import did_you_mean
from trainer.datasets import DATASETS
from trainer.losses import tasks as loss_tasks
from trainer.models import MODELS
from trainer.models.inputs import SHAPES
from trainer.optimizers import OPTIMIZERS
from trainer.settings.sections import UNSUPPORTED
from trainer.settings.vocabulary import METRICS

if TYPE_CHECKING:
    from trainer.config.schema import Config

Problem = tuple[tuple, str]


def check_metrics_fit_task(cfg: Config) -> Iterator[Problem]:
    allowed = METRICS[cfg.task]
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
    fits = loss_tasks()
    if cfg.task not in fits[cfg.loss.type]:
        fitting = [name for name, tasks in fits.items() if cfg.task in tasks]
        yield (
            ("loss",),
            (
                f"'{cfg.loss.type}' does not fit the {cfg.task} task of dataset "
                f"'{cfg.dataset.type}'; "
                f"use one of: {', '.join(fitting)} (or leave loss out to infer it)"
            ),
        )


def check_monitor_is_logged(cfg: Config) -> Iterator[Problem]:
    if cfg.early_stopping is None:
        return
    monitor, logged = cfg.early_stopping.monitor, cfg.logged_names()
    if monitor in logged:
        return

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


def check_tracking_installed(cfg: Config) -> Iterator[tuple[tuple, str]]:
    """MLflow is an optional extra: asking for it without it installed is a config error."""
    if cfg.tracking.mlflow is not None and importlib.util.find_spec("mlflow") is None:
        yield (
            ("tracking", "mlflow"),
            "MLflow tracking is requested but mlflow is not installed; install it with "
            "`pip install 'trainer[mlflow]'`, or remove tracking.mlflow",
        )


def check_distribution(cfg: Config) -> Iterator[tuple[tuple, str]]:
    """Config rules of ``training.distribution`` (no TensorFlow)."""

    where = ("training", "distribution")
    setting = cfg.training.distribution
    if setting.devices is not None and setting.type != "mirrored":
        yield (*where, "devices"), "applies to type 'mirrored' only; remove it"
    if setting.type != "none" and MODELS.get(cfg.model.type).info.get("compile"):
        yield (
            (*where, "type"),
            (
                f"model '{cfg.model.type}' trains with its own train step, which does not split "
                "its loss over replicas; use distribution 'none' for it"
            ),
        )
    if setting.type == "multi_host" and cfg.training.backend == "tensorflow":
        yield (*where, "type"), UNSUPPORTED
    if cfg.training.lr_scaling != "none" and setting.type == "none":
        yield ("training", "lr_scaling"), "needs a distribution with several replicas; remove it"


def check_augmentation_applies(cfg: Config) -> Iterator[tuple[tuple, str]]:
    """Augmentation needs image data and a model trained on it by the supervised step."""
    augmentation = getattr(cfg.dataset, "augmentation", None)
    if augmentation is None:
        return

    where = ("dataset", "augmentation")
    kind = DATASETS.get(cfg.dataset.type).info.get("inputs")
    if kind not in (None, "image"):
        images = [e.name for e in DATASETS.entries() if e.info.get("inputs") == "image"]
        message = (
            f"applies to images, but dataset '{cfg.dataset.type}' gives {kind}s; remove it, "
            f"or use an image dataset ({', '.join(images)}, or npz of {SHAPES['image']} samples)"
        )
        yield where, message
    if MODELS.get(cfg.model.type).info.get("compile") is not None:
        message = (
            f"model '{cfg.model.type}' trains with its own step and learns the images as they "
            "are; augmentation applies to the supervised models (fnn, linear, cnn, rnn); remove it"
        )
        yield where, message


def check_streaming_applies(cfg: Config) -> Iterator[tuple[tuple, str]]:
    """Streamed images feed the supervised step; a cache serves streamed images only."""
    in_memory = getattr(cfg.dataset, "in_memory", "auto")
    if in_memory is False and MODELS.get(cfg.model.type).info.get("compile") is not None:
        yield (
            ("dataset", "in_memory"),
            (
                f"model '{cfg.model.type}' trains with its own step on data held in memory; "
                "streaming applies to the supervised models (fnn, linear, cnn, rnn); set it to auto"
            ),
        )
    if in_memory is True and getattr(cfg.dataset, "cache", "none") != "none":
        yield (
            ("dataset", "cache"),
            (
                "caches images that are streamed, but dataset.in_memory is true (every image is "
                "decoded into memory once); remove it, or set in_memory: auto"
            ),
        )


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
    check_streaming_applies,
]


def cross_check(cfg: Config) -> list[Problem]:
    return [problem for check in CHECKS for problem in check(cfg)]
