"""Datasets by name. Every loader returns the same structure, so the engine never branches.

A loader module registers a ``Params`` subclass of :class:`DatasetParams` (the common
options below plus its own) and a factory that returns :class:`RawData`: arrays before
splitting and scaling. :func:`load` then applies what every dataset shares, in one place:
``limit``, the test and validation splits (stratified for classification) and scaling
fitted on the training split only (for tables: imputation and category encoding too, see
:mod:`trainer.datasets.preprocessing`), saved as :attr:`Dataset.preprocessing` so that it can
be re-applied as it is. A regression dataset may also name a naive forecast
(for example "the last observed value"): :func:`load` applies it to the raw test inputs,
so its predictions line up with ``x_test`` and give the report a baseline to beat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from trainer.core.errors import DataError
from trainer.core.registry import Params, Registry
from trainer.settings.sections import MAX_COUNT, Augmentation

if TYPE_CHECKING:
    import numpy as np

    from trainer.datasets.preprocessing import Table

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
        None,
        ge=1,
        le=MAX_COUNT,
        description="Use only the first N samples of each pool (smoke runs).",
    )
    scaling: Literal["default", "none", "unit", "standard"] = Field(
        "default",
        description="'unit' maps values to [0, 1], 'standard' to zero mean and unit variance "
        "(statistics from the training split only); 'default' is the dataset's own choice.",
    )

    augmentation: Augmentation | None = Field(
        None,
        description="Random transformations of training images (trainer/training/augmentation.py).",
    )

    COMMON: ClassVar[set[str]] = {
        "type", "validation_split", "test_split", "limit", "scaling", "augmentation"
    }  # fmt: skip

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
    # regression only: raw (unscaled) inputs -> the predictions of a naive forecaster
    naive_forecast: Callable[[np.ndarray], np.ndarray] | None = None
    naive_name: str = ""
    x_val: np.ndarray | None = None  # a validation pool of its own (from a named file)
    y_val: np.ndarray | None = None
    table: Table | None = None  # tabular data: how to impute and encode its raw columns
    warnings: list[str] = field(default_factory=list)  # e.g. rows dropped for missing values
    storage: dict[str, Any] | None = None  # a table's: read whole or spilled, and why


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
    naive_test: np.ndarray | None = None  # a naive forecast for each test sample, (n, 1)
    naive_name: str = ""
    # the fitted transform, JSON-able: load(..., preprocessing=this) re-applies it as it is
    preprocessing: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # e.g. a class missing from a split
    # in memory or streamed, and why (trainer.datasets.storage): environment.json's "data"
    storage: dict[str, Any] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        val = 0 if self.x_val is None else len(self.x_val)
        return {"train": len(self.x_train), "validation": val, "test": len(self.x_test)}


def load(params: DatasetParams, seed: int, preprocessing: dict[str, Any] | None = None) -> Dataset:
    """Load a dataset by its validated params: split, preprocess and describe it.

    The preprocessing (scaling; for tables also imputation and encoding) is fitted on the
    training split, unless ``preprocessing`` gives a saved one (a run's
    :attr:`Dataset.preprocessing`): that one is applied as it is, so that ``trainer eval``
    transforms the data exactly as training did.
    """
    return prepare(read_raw(params, seed), params, seed, preprocessing)


def read_raw(params: DatasetParams, seed: int) -> RawData:
    """What the dataset's loader returns, before splitting and preprocessing."""
    entry = DATASETS.get(params.type)
    return entry.factory(seed=seed, **params.loader_kwargs())


def prepare(
    raw: RawData, params: DatasetParams, seed: int, preprocessing: dict[str, Any] | None = None
) -> Dataset:
    """Split, preprocess, resample and describe what a loader returned."""
    import numpy as np

    names = list(raw.class_names)
    x, y = raw.x_train, raw.y_train
    if params.limit:
        x, y = x[: params.limit], y[: params.limit]
    if raw.x_test is None:
        x, x_test, y, y_test = split(x, y, params.test_split, seed, raw.task, "test", names)
    else:
        x_test, y_test = raw.x_test, raw.y_test
        if params.limit:
            x_test, y_test = x_test[: params.limit], y_test[: params.limit]
    x_val, y_val = raw.x_val, raw.y_val
    if x_val is not None:
        if params.limit:
            x_val, y_val = x_val[: params.limit], y_val[: params.limit]
    elif params.validation_split > 0:
        x, x_val, y, y_val = split(
            x, y, params.validation_split, seed + 1, raw.task, "validation", names
        )

    naive_test = None
    if raw.naive_forecast is not None:  # from the raw inputs, before they are scaled
        naive_test = _as_targets(raw.naive_forecast(x_test))

    method = raw.default_scaling if params.scaling == "default" else params.scaling
    if preprocessing is None:
        preprocessing = _fit_preprocessing(raw, method, x)
    warnings = list(raw.warnings)
    transform, scaling = _transform(raw, preprocessing, warnings)
    try:
        x, x_test = transform(x, "train"), transform(x_test, "test")
        x_val = None if x_val is None else transform(x_val, "validation")
    except DataError as error:  # name the file the column came from
        source = getattr(params, "path", None)
        if source is None or str(source) in error.message:
            raise
        raise DataError(f"{source}: {error.message}", hint=error.hint) from None

    if raw.task == "regression":
        y, y_test = _as_targets(y), _as_targets(y_test)
        y_val = None if y_val is None else _as_targets(y_val)
        num_classes, target_dim = 0, y.shape[1]
    else:
        (y, y_test, y_val), names = _relabel((y, y_test, y_val), names, preprocessing)
        y, y_test = y.astype(np.int32), y_test.astype(np.int32)
        y_val = None if y_val is None else y_val.astype(np.int32)
        top = max(int(a.max()) for a in (y, y_test, y_val) if a is not None and len(a))
        num_classes = max(len(names), top + 1)
        target_dim = 1
    _check_model_inputs(params, {"train": (x, y), "validation": (x_val, y_val),
                                 "test": (x_test, y_test)}, num_classes)  # fmt: skip
    class_names = tuple(names) or tuple(str(i) for i in range(num_classes))
    if raw.task != "regression":
        from trainer.datasets.imbalance import missing_class_warnings, resample

        x, y = resample(x, y, getattr(params, "resample", "none"), seed + 2)
        splits = {"train": y, "validation": y_val, "test": y_test}
        warnings += missing_class_warnings(splits, class_names)
    from trainer.datasets.storage import place

    splits = {"train": x, "validation": x_val, "test": x_test}
    placed, storage = place(params, splits, decided=raw.storage)
    x, x_val, x_test = placed["train"], placed["validation"], placed["test"]
    spec = DataSpec(tuple(x.shape[1:]), raw.task, num_classes, target_dim, class_names)
    return Dataset(
        spec, x, y, x_test, y_test, x_val, y_val, scaling, naive_test, raw.naive_name,
        preprocessing=preprocessing, warnings=warnings, storage=storage,
    )  # fmt: skip


def non_finite_samples(x) -> tuple[int, int] | None:
    """(how many samples of float array ``x`` hold NaN or Inf, the first one's index)."""
    import numpy as np

    from trainer.datasets.lazy import is_lazy

    if is_lazy(x) or x.dtype.kind != "f" or not len(x):  # images read later are 0-255, scaled
        return None
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    return (int(bad.sum()), int(np.flatnonzero(bad)[0])) if bad.any() else None


MAX_CLASSES = 100_000  # output units a classifier can hold; labels are indices 0..k-1


def _check_model_inputs(params: DatasetParams, splits: dict, num_classes: int) -> None:
    """What the model will see, after splitting and scaling: samples, features, finite
    values, and classes it can hold. Each problem is a DataError naming the data."""
    import numpy as np

    source = getattr(params, "path", None)
    where = f"{source}: " if source is not None else f"dataset '{params.type}': "
    x, y = splits["train"]
    if len(x) == 0:
        raise DataError(
            f"{where}the training split holds no samples",
            hint="give data with samples in it (and check dataset.limit and the split fractions)",
        )
    if int(np.prod(x.shape[1:])) == 0:
        raise DataError(
            f"{where}each sample has no features (shape {tuple(x.shape)})",
            hint="the features need at least one value per sample",
        )
    for split, (features, _) in splits.items():
        found = None if features is None else non_finite_samples(features)
        if found is not None:
            raise DataError(
                f"{where}the {split} split holds non-finite values after scaling in "
                f"{found[0]} sample(s), the first at index {found[1]}",
                hint="values beyond float32's range (about 3.4e38) overflow: rescale them "
                "before training, or choose dataset.scaling: unit or standard",
            )
    check_class_count(f"{where}the training labels", num_classes, len(np.unique(y)))


def check_class_count(where: str, count: int, distinct: int) -> None:
    """A DataError when labels up to ``count - 1`` would make an absurd output layer: more
    than MAX_CLASSES units, or (past 1000) ten times more units than distinct labels."""
    if count > MAX_CLASSES or (count > 1000 and distinct * 10 < count):
        raise DataError(
            f"{where} hold label {count - 1}, which would make {count:,} output units for "
            f"{distinct} distinct labels",
            hint="class labels are indices 0..k-1: map them with "
            "np.unique(y, return_inverse=True), or set task: regression",
        )


def _fit_preprocessing(raw: RawData, method: str, x) -> dict[str, Any]:
    """Fit the transform on the training split ``x``; a JSON-able dict."""
    if raw.table is not None:
        from trainer.datasets.preprocessing import fit_table

        state = fit_table(raw.table, x, method)
    else:
        scaler = _fit_scaler(method, x, raw.value_range)
        state = {"kind": "array", "scaling": {"method": method, **scaler.stats}}
    if raw.task != "regression" and raw.class_names:
        state["class_names"] = list(raw.class_names)
    return state


def _transform(raw: RawData, state: dict[str, Any], warnings: list[str]):
    """(x, split) -> preprocessed x, and the scaling summary kept in Dataset.scaling."""
    if raw.table is not None:
        from trainer.datasets.preprocessing import apply_table, scaling_summary

        def transform_table(x, split: str):
            features, found = apply_table(state, raw.table, x, split)
            warnings.extend(found)
            return features

        return transform_table, scaling_summary(state)
    from trainer.datasets.lazy import is_lazy

    scaler = scaler_from(state)

    def transform_array(x, split: str):
        if scaler.offset is not None and scaler.offset.ndim and scaler.offset.shape != x.shape[1:]:
            raise DataError(
                f"the preprocessing given scales samples shaped {scaler.offset.shape}, but the "
                f"{split} split's are shaped {x.shape[1:]}",
                hint="re-apply the preprocessing saved by a run on this same dataset",
            )
        if is_lazy(x):  # scaled as each batch is read
            return x.scaled(scaler.offset, scaler.scale)
        return scaler(x)

    return transform_array, dict(state["scaling"])


def scaler_from(state: dict[str, Any]) -> _Scaler:
    """A scaler from saved statistics, as :func:`_fit_scaler` made them."""
    import numpy as np

    if not isinstance(state, dict) or state.get("kind") != "array" or "scaling" not in state:
        kind = state.get("kind") if isinstance(state, dict) else type(state).__name__
        raise DataError(
            f"the preprocessing given is for a '{kind}' dataset, not an array one",
            hint="re-apply the preprocessing saved by a run on this same dataset",
        )
    stats = dict(state["scaling"])
    method = stats.pop("method", None)
    try:
        if method == "none":
            return _Scaler(None, None, {})
        if method == "unit":
            low = np.asarray(stats["min"], dtype=np.float32)
            high = np.asarray(stats["max"], dtype=np.float32)
            return _Scaler(low, np.where(high > low, high - low, 1.0).astype(np.float32), stats)
        if method == "standard":
            mean = np.asarray(stats["mean"], dtype=np.float32)
            return _Scaler(mean, np.asarray(stats["std"], dtype=np.float32), stats)
    except KeyError as error:
        raise DataError(f"the preprocessing given lacks the scaling statistic {error}") from None
    raise DataError(f"the preprocessing given has an unknown scaling method {method!r}")


def _relabel(ys: tuple, names: list[str], state: dict[str, Any]):
    """Map class indices onto the saved preprocessing's class names, when it has them."""
    import numpy as np

    saved = state.get("class_names")
    if not saved or list(saved) == names or not names:
        return ys, names
    position = {name: i for i, name in enumerate(saved)}
    lookup = np.array([position.get(name, -1) for name in names])
    mapped = []
    for y in ys:
        if y is None:
            mapped.append(None)
            continue
        labels = lookup[np.asarray(y, dtype=np.int64)]
        if (labels < 0).any():
            unknown = names[int(np.asarray(y)[labels < 0][0])]
            raise DataError(
                f"the data holds class '{unknown}', which the preprocessing given (the trained "
                f"model) does not know; it knows {', '.join(map(str, saved))}"
            )
        mapped.append(labels)
    return tuple(mapped), list(saved)


def split(x, y, fraction: float, seed: int, task: Task, what: str, class_names=()):
    """(x, x_held, y, y_held): ``fraction`` held out as the ``what`` split, stratified by class."""
    import math

    import numpy as np
    from sklearn.model_selection import train_test_split

    from trainer.datasets.lazy import take

    n_test = math.ceil(len(x) * fraction)  # the sizes train_test_split will make
    n_train = len(x) - n_test
    if round(len(x) * fraction) < 1 or n_train < 1:
        raise DataError(
            f"cannot hold out a {what} split of {fraction} from {len(x)} samples",
            hint="use more data (raise dataset.limit) or change the split fraction",
        )
    stratify = None
    if task != "regression":
        classes, counts = np.unique(y, return_counts=True)
        if counts.min() < 2:
            single = [_class_name(c, class_names) for c in classes[counts < 2][:5]]
            raise DataError(
                f"class {', '.join(single)} has a single example among {len(y)} samples, so a "
                f"stratified {what} split cannot keep it in both the {what} and training splits",
                hint="add examples of that class, or remove its rows",
            )
        if min(n_test, n_train) >= len(classes):
            stratify = y
    # the rows' indices are split (the same draw as splitting x), so streamed images stay lazy
    kept, held, y_kept, y_held = train_test_split(
        np.arange(len(x)), y, test_size=fraction, random_state=seed, stratify=stratify
    )
    return take(x, kept), take(x, held), y_kept, y_held


def _class_name(label, class_names) -> str:
    index = int(label)
    return repr(class_names[index] if 0 <= index < len(class_names) else str(index))


def _as_targets(y):
    import numpy as np

    y = np.asarray(y, dtype=np.float32)
    return y.reshape(len(y), -1)


class _Scaler:
    def __init__(self, offset, scale, stats: dict[str, Any]) -> None:
        self.offset, self.scale, self.stats = offset, scale, stats

    def __call__(self, x):
        import numpy as np

        from trainer.datasets.memory import aligned_empty

        x = np.asarray(x)
        if self.offset is None and x.dtype == np.float32:
            return x
        scaled = aligned_empty(np.shape(x), np.float32)  # one copy, that the pipeline can share
        scaled[...] = x
        if self.offset is not None:  # in place: no temporaries
            scaled -= self.offset
            scaled /= self.scale
        return scaled


def _fit_scaler(method: str, x, value_range) -> _Scaler:
    """Fit scaling on the training split only; the same statistics apply to every split."""
    import numpy as np

    from trainer.datasets.lazy import is_lazy

    if method == "none":
        return _Scaler(None, None, {})
    if method == "unit" and value_range is not None:  # known range: no pass over the data
        low, high = value_range
        return _Scaler(np.float32(low), np.float32(high - low), {"min": low, "max": high})
    if is_lazy(x) and method == "standard":  # one streamed pass over the training images
        mean, std = x.pixel_statistics()
        std = np.where(std > 0, std, 1.0).astype(np.float32)
        return _Scaler(mean, std, {"mean": mean.tolist(), "std": std.tolist()})
    x = np.asarray(x, dtype=np.float32)
    if method == "unit":
        low, high = x.min(axis=0), x.max(axis=0)
        scale = np.where(high > low, high - low, 1.0).astype(np.float32)
        return _Scaler(low, scale, {"min": low.tolist(), "max": high.tolist()})
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 0, std, 1.0).astype(np.float32)
    return _Scaler(mean, std, {"mean": mean.tolist(), "std": std.tolist()})
