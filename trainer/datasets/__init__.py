"""Datasets by name. Every loader returns the same structure, so the engine never branches.

A loader module registers a ``Params`` subclass of :class:`DatasetParams` (the common
options below plus its own) and a factory that returns :class:`RawData`: arrays before
splitting and scaling. :func:`load` then applies what every dataset shares, in one place:
``limit``, the test and validation splits (stratified for classification) and scaling
fitted on the training split only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from trainer.errors import DataError
from trainer.registry import Params, Registry

if TYPE_CHECKING:
    import numpy as np

Task = Literal["regression", "binary", "multiclass"]

DATASETS = Registry("dataset", "trainer.datasets")


class DatasetParams(Params):
    """Options every dataset accepts."""

    validation_split: float = Field(
        0.1, ge=0.0, lt=1.0, description="Fraction of the training data held out for validation."
    )
    test_split: float = Field(
        0.2,
        gt=0.0,
        lt=1.0,
        description="Fraction held out for testing, for datasets that ship no test split.",
    )
    limit: int | None = Field(
        None, ge=1, description="Use only the first N samples of each pool (smoke runs)."
    )
    scaling: Literal["default", "none", "unit", "standard"] = Field(
        "default",
        description="'unit' maps values to [0, 1], 'standard' to zero mean and unit variance "
        "(statistics from the training split only); 'default' is the dataset's own choice.",
    )

    COMMON: ClassVar[set[str]] = {"type", "validation_split", "test_split", "limit", "scaling"}

    def task(self) -> Task:
        """The learning task, known before any data is read."""
        raise NotImplementedError

    def loader_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self if k not in self.COMMON}


@dataclass
class RawData:
    """What a loader returns: a training pool, an optional test pool, and facts about them."""

    x_train: np.ndarray
    y_train: np.ndarray
    task: Task
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    value_range: tuple[float, float] | None = None  # known range, e.g. (0, 255) for pixels
    default_scaling: str = "none"


@dataclass(frozen=True)
class DataSpec:
    """What a model builder needs to know about the data."""

    input_shape: tuple[int, ...]
    task: Task
    num_classes: int = 0  # 0 for regression
    target_dim: int = 1  # regression outputs per sample
    class_names: tuple[str, ...] = ()

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"


@dataclass
class Dataset:
    spec: DataSpec
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    scaling: dict[str, Any] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        val = 0 if self.x_val is None else len(self.x_val)
        return {"train": len(self.x_train), "validation": val, "test": len(self.x_test)}


def load(params: DatasetParams, seed: int) -> Dataset:
    """Load a dataset by its validated params: split, scale and describe it."""
    import numpy as np

    entry = DATASETS.get(params.type)
    raw: RawData = entry.factory(seed=seed, **params.loader_kwargs())
    x, y = raw.x_train, raw.y_train
    if params.limit:
        x, y = x[: params.limit], y[: params.limit]
    if raw.x_test is None:
        x, x_test, y, y_test = _split(x, y, params.test_split, seed, raw.task, "test")
    else:
        x_test, y_test = raw.x_test, raw.y_test
        if params.limit:
            x_test, y_test = x_test[: params.limit], y_test[: params.limit]
    x_val = y_val = None
    if params.validation_split > 0:
        x, x_val, y, y_val = _split(x, y, params.validation_split, seed + 1, raw.task, "validation")

    method = raw.default_scaling if params.scaling == "default" else params.scaling
    scaler = _fit_scaler(method, x, raw.value_range)
    x, x_test = scaler(x), scaler(x_test)
    x_val = None if x_val is None else scaler(x_val)

    if raw.task == "regression":
        y, y_test = _as_targets(y), _as_targets(y_test)
        y_val = None if y_val is None else _as_targets(y_val)
        num_classes, target_dim = 0, y.shape[1]
    else:
        y, y_test = y.astype(np.int32), y_test.astype(np.int32)
        y_val = None if y_val is None else y_val.astype(np.int32)
        num_classes = max(len(raw.class_names), int(max(y.max(), y_test.max())) + 1)
        target_dim = 1
    class_names = tuple(raw.class_names) or tuple(str(i) for i in range(num_classes))
    spec = DataSpec(tuple(x.shape[1:]), raw.task, num_classes, target_dim, class_names)
    return Dataset(spec, x, y, x_test, y_test, x_val, y_val, {"method": method, **scaler.stats})


def _split(x, y, fraction: float, seed: int, task: Task, what: str):
    import math

    from sklearn.model_selection import train_test_split

    n_test = math.ceil(len(x) * fraction)  # the sizes train_test_split will make
    n_train = len(x) - n_test
    if round(len(x) * fraction) < 1 or n_train < 1:
        raise DataError(
            f"cannot hold out a {what} split of {fraction} from {len(x)} samples",
            hint="use more data (raise dataset.limit) or change the split fraction",
        )
    stratify = None
    if task != "regression":
        import numpy as np

        classes, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2 and min(n_test, n_train) >= len(classes):
            stratify = y
    return train_test_split(x, y, test_size=fraction, random_state=seed, stratify=stratify)


def _as_targets(y):
    import numpy as np

    y = np.asarray(y, dtype=np.float32)
    return y.reshape(len(y), -1)


class _Scaler:
    def __init__(self, offset, scale, stats: dict[str, Any]) -> None:
        self.offset, self.scale, self.stats = offset, scale, stats

    def __call__(self, x):
        import numpy as np

        x = np.asarray(x, dtype=np.float32)
        if self.offset is None:
            return x
        return ((x - self.offset) / self.scale).astype(np.float32)


def _fit_scaler(method: str, x, value_range) -> _Scaler:
    """Fit scaling on the training split only; the same statistics apply to every split."""
    import numpy as np

    x = np.asarray(x, dtype=np.float32)
    if method == "none":
        return _Scaler(None, None, {})
    if method == "unit":
        if value_range is not None:
            low, high = value_range
            return _Scaler(np.float32(low), np.float32(high - low), {"min": low, "max": high})
        low, high = x.min(axis=0), x.max(axis=0)
        scale = np.where(high > low, high - low, 1.0).astype(np.float32)
        return _Scaler(low, scale, {"min": low.tolist(), "max": high.tolist()})
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 0, std, 1.0).astype(np.float32)
    return _Scaler(mean, std, {"mean": mean.tolist(), "std": std.tolist()})
