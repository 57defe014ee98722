"""The names a config may use for metrics, and each task's default loss (the losses are
trainer/losses.py's registry)."""

from __future__ import annotations

from typing import Literal

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "auc")

REGRESSION_METRICS = ("mse", "mae", "rmse", "r2")

TOP_K_METRICS = {"top_3_accuracy": 3, "top_5_accuracy": 5}  # multiclass only: name -> k

METRICS = {  # task -> the metrics a config may name for it (the defaults are listed above)
    "regression": REGRESSION_METRICS,
    "binary": CLASSIFICATION_METRICS,
    "multiclass": CLASSIFICATION_METRICS + tuple(TOP_K_METRICS),
}

Metric = Literal[
    "accuracy", "precision", "recall", "f1", "auc", "mse", "mae", "rmse", "r2",
    "top_3_accuracy", "top_5_accuracy",
]  # fmt: skip


DEFAULT_LOSS = {
    "regression": "mean_squared_error",
    "binary": "binary_crossentropy",
    "multiclass": "sparse_categorical_crossentropy",
}
