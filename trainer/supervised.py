"""The default family hooks: supervised learning of the dataset's labels or targets.

A model family may replace any of these by passing the same-named keyword to
``MODELS.register`` (a VAE computes its own loss, a GAN compiles two optimizers and is
judged by its samples). The engine calls the hooks and never branches on the family:

  compile(model, cfg, make_optimizer, **options)   compile the model for ``fit``
  targets(x, y) -> y'                               what ``fit`` learns to predict
  evaluate(model, cfg, data, artifacts) -> dict     the ``metrics.json`` object
  logged(cfg) -> list[str]                          names logged every epoch (no TensorFlow)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainer.datasets import Dataset
    from trainer.schema import Config


def compile(model, cfg: Config, make_optimizer, **options) -> None:  # noqa: A001
    model.compile(
        optimizer=make_optimizer(cfg.optimizer), loss=cfg.loss, metrics=epoch_metrics(cfg),
        **options,
    )  # fmt: skip


def targets(x, y):
    return y


def evaluate(model, cfg: Config, data: Dataset, artifacts: Path | None = None) -> dict[str, Any]:
    from trainer.evaluation import evaluate as score

    predictions = model.predict(data.x_test, batch_size=cfg.training.eval_batch_size, verbose=0)
    return score(cfg.task, data.y_test, predictions, data.spec.class_names, cfg.metrics)


def logged(cfg: Config) -> list[str]:
    return ["loss", *cfg.epoch_metrics()]


def epoch_metrics(cfg: Config) -> list:
    """Keras metric objects for the config's metrics that Keras can log every epoch."""
    import keras

    factories = {
        "accuracy": lambda: "accuracy",
        "precision": lambda: keras.metrics.Precision(name="precision"),
        "recall": lambda: keras.metrics.Recall(name="recall"),
        "auc": lambda: keras.metrics.AUC(name="auc"),
        "mse": lambda: keras.metrics.MeanSquaredError(name="mse"),
        "mae": lambda: keras.metrics.MeanAbsoluteError(name="mae"),
        "rmse": lambda: keras.metrics.RootMeanSquaredError(name="rmse"),
        "r2": lambda: keras.metrics.R2Score(name="r2"),
    }
    return [factories[name]() for name in cfg.epoch_metrics()]
