"""The default family hooks: supervised learning of the dataset's labels or targets.

A model family may replace any of these by passing the same-named keyword to
``MODELS.register`` (a VAE computes its own loss, a GAN compiles two optimizers and is
judged by its samples). The engine calls the hooks and never branches on the family:

  compile(model, cfg, make_optimizer, **options)   compile the model for ``fit``
  targets(x, y) -> y'                               what ``fit`` learns to predict
  evaluate(model, cfg, data, artifacts) -> dict     the ``metrics.json`` object
  logged(cfg) -> list[str]                          names logged every epoch (no TensorFlow)
  callbacks(model, cfg, data, run_dir) -> list      extra Keras callbacks for ``fit``
  build_state(model, x, y)                          create every variable before a resume
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainer.config.schema import Config
    from trainer.datasets import Dataset


def compile(model, cfg: Config, make_optimizer, **options) -> None:  # noqa: A001
    from trainer.losses import build

    loss = build(cfg.loss, num_classes=int(model.output_shape[-1]))
    model.compile(
        optimizer=make_optimizer(cfg.optimizer), loss=loss, metrics=epoch_metrics(cfg), **options
    )


def targets(x, y):
    return y


def evaluate(model, cfg: Config, data: Dataset, artifacts: Path | None = None) -> dict[str, Any]:
    from trainer.datasets.pipeline import eval_batch_size
    from trainer.datasets.storage import feed
    from trainer.evaluation.metrics import evaluate as score
    from trainer.evaluation.metrics import naive_baseline

    batch = eval_batch_size(cfg.training, model)
    predictions = model.predict(feed(data.x_test, batch_size=batch), batch_size=batch, verbose=0)
    if (
        artifacts is not None
    ):  # for the run's pictures (trainer.evaluation.plots), redrawn without a model
        from trainer.evaluation.plots import PREDICTIONS, save_predictions

        save_predictions(artifacts / PREDICTIONS, data.y_test, predictions)
    return score(cfg.task, data.y_test, predictions, data.spec.class_names, cfg.metrics,
                 baseline=naive_baseline(data, cfg.metrics))  # fmt: skip


def build_state(model, x, y) -> None:
    """Create optimizer slots and metric accumulators so a checkpoint can be restored into them.

    A one-batch ``evaluate`` builds the compiled metrics without touching weights or the
    random generators (dropout is inactive outside training).
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    model.evaluate(x, y, verbose=0)


def callbacks(model, cfg: Config, data: Dataset, run_dir: Path) -> list:
    """None: supervised training needs only the engine's own callbacks."""
    return []


def logged(cfg: Config) -> list[str]:
    return ["loss", *cfg.epoch_metrics()]


def epoch_metrics(cfg: Config) -> list:
    """Keras metric objects for the config's metrics that Keras can log every epoch."""
    import keras

    from trainer.settings.vocabulary import TOP_K_METRICS

    factories = {
        "accuracy": lambda: "accuracy",
        "precision": lambda: keras.metrics.Precision(name="precision"),
        "recall": lambda: keras.metrics.Recall(name="recall"),
        "auc": lambda: keras.metrics.AUC(name="auc"),
        "mse": lambda: keras.metrics.MeanSquaredError(name="mse"),
        "mae": lambda: keras.metrics.MeanAbsoluteError(name="mae"),
        "rmse": lambda: keras.metrics.RootMeanSquaredError(name="rmse"),
        "r2": lambda: keras.metrics.R2Score(name="r2"),
        **{
            name: lambda k=k, name=name: keras.metrics.SparseTopKCategoricalAccuracy(k, name=name)
            for name, k in TOP_K_METRICS.items()
        },
    }
    return [factories[name]() for name in cfg.epoch_metrics()]
