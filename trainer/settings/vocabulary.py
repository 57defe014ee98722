"""The names a config may use for metrics and losses, and which task each fits."""

from __future__ import annotations

from typing import Literal

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


DEFAULT_LOSS = {
    "regression": "mean_squared_error",
    "binary": "binary_crossentropy",
    "multiclass": "sparse_categorical_crossentropy",
}
