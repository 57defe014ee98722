"""Synthetic data made from the seed: linear regression and (imbalanced) classification."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from trainer.datasets import DATASETS, DatasetParams, RawData

MAX_SAMPLES = 10_000_000
MAX_FEATURES = 100_000
MAX_VALUES = 500_000_000  # samples x features, generated in memory: 2 GB of float32


def _fits_in_memory(params) -> None:
    values = params.samples * params.features
    if values > MAX_VALUES:
        raise ValueError(
            f"samples x features is {values:,} values ({values * 4 / 2**30:.0f} GiB as float32), "
            f"more than the {MAX_VALUES:,} generated in memory; lower samples or features"
        )


class SyntheticLinearParams(DatasetParams):
    type: Literal["synthetic_linear"] = "synthetic_linear"
    samples: int = Field(100, ge=2, le=MAX_SAMPLES, description="Number of (x, y) pairs.")
    features: int = Field(1, ge=1, le=MAX_FEATURES, description="Number of input features.")
    weight: float | list[float] = Field(2.0, description="w in y = w.x + b (one per feature).")
    bias: float = Field(0.0, description="b in y = w.x + b.")
    noise: float = Field(0.5, ge=0.0, description="Standard deviation of Gaussian noise on y.")

    @model_validator(mode="after")
    def _weights_match_features(self):
        _fits_in_memory(self)
        if isinstance(self.weight, list) and len(self.weight) != self.features:
            raise ValueError(
                f"weight has {len(self.weight)} values but features is {self.features}; "
                "give one weight per feature or a single number"
            )
        return self

    def task(self) -> str:
        return "regression"


@DATASETS.register(SyntheticLinearParams, available=lambda: True, inputs="vector")
def synthetic_linear(seed: int, samples: int, features: int, weight, bias: float, noise: float):
    """y = w.x + b + noise with x ~ U(-1, 1); defaults are the classic w=2, b=0 example."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(samples, features)).astype(np.float32)
    w = np.broadcast_to(np.asarray(weight, dtype=np.float32), (features,))
    y = x @ w + bias + rng.normal(0.0, noise, size=samples)
    return RawData(x, y.astype(np.float32), "regression")


class SyntheticClassificationParams(DatasetParams):
    type: Literal["synthetic_classification"] = "synthetic_classification"
    samples: int = Field(1000, ge=4, le=MAX_SAMPLES)
    features: int = Field(2, ge=1, le=MAX_FEATURES)
    informative: int = Field(2, ge=1, le=MAX_FEATURES, description="Features that carry signal.")
    classes: int = Field(2, ge=2, le=10_000)
    weights: list[float] | None = Field(
        None, description="Class proportions, e.g. [0.9, 0.1] for a 9:1 imbalance."
    )
    class_sep: float = Field(1.0, gt=0.0, description="Larger values make the task easier.")
    flip_y: float = Field(0.01, ge=0.0, le=1.0, description="Fraction of labels flipped at random.")

    @model_validator(mode="after")
    def _consistent(self):
        _fits_in_memory(self)
        if self.informative > self.features:
            raise ValueError(f"informative ({self.informative}) exceeds features ({self.features})")
        if self.classes > 2**self.informative:
            raise ValueError(
                f"{self.classes} classes need at least {(self.classes - 1).bit_length()} "
                "informative features"
            )
        if self.weights is not None:
            if len(self.weights) not in (self.classes, self.classes - 1):
                raise ValueError(f"weights needs {self.classes} proportions, one per class")
            if any(w <= 0 for w in self.weights) or sum(self.weights) > 1 + 1e-6:
                raise ValueError("weights must be positive proportions that sum to at most 1")
        return self

    def task(self) -> str:
        return "binary" if self.classes == 2 else "multiclass"


@DATASETS.register(SyntheticClassificationParams, available=lambda: True, inputs="vector")
def synthetic_classification(
    seed: int, samples, features, informative, classes, weights, class_sep, flip_y
) -> RawData:
    """scikit-learn's make_classification: Gaussian clusters, optionally imbalanced."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=samples, n_features=features, n_informative=informative,
        n_redundant=0, n_repeated=0, n_classes=classes, n_clusters_per_class=1,
        weights=weights, class_sep=class_sep, flip_y=flip_y, random_state=seed,
    )  # fmt: skip
    task = "binary" if classes == 2 else "multiclass"
    return RawData(x.astype("float32"), y, task, class_names=[str(c) for c in range(classes)])
