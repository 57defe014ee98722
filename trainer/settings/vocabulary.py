"""The names a config may use for metrics, and each task's default loss (the losses are
trainer/losses.py's registry)."""

from __future__ import annotations

from typing import Literal

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "auc")

REGRESSION_METRICS = ("mse", "mae", "rmse", "r2")

Metric = Literal["accuracy", "precision", "recall", "f1", "auc", "mse", "mae", "rmse", "r2"]


DEFAULT_LOSS = {
    "regression": "mean_squared_error",
    "binary": "binary_crossentropy",
    "multiclass": "sparse_categorical_crossentropy",
}
