"""NumPy archives the user prepared: features and labels stored under keys of an ``.npz`` file.

Arrays are used as they are: there is no imputation, so a non-finite feature is an error. The
labels of a classification task are class indices 0..k-1 (what Keras's sparse losses expect)
or text, whose sorted distinct values become the classes. Archives are opened with
``allow_pickle=False``, so loading one never runs code; object arrays are refused.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from trainer.core.errors import DataError
from trainer.core.files import require_data_file
from trainer.core.registry import did_you_mean
from trainer.datasets import DATASETS, RawData, Task, check_class_count, non_finite_samples
from trainer.datasets.user_data import MAX_DISTINCT, FileParams, Labels, TaskSetting, resolve_task


class NpzParams(FileParams):
    type: Literal["npz"] = "npz"
    path: Path = Field(
        description="The .npz archive (np.savez); relative paths start from the current directory."
    )
    x: str = Field("x", description="Key of the features, shaped (samples, ...).")
    y: str = Field("y", description="Key of the labels or regression targets, (samples,).")
    x_test: str | None = Field(None, description="Key of test features in the same archive.")
    y_test: str | None = Field(None, description="Key of test labels in the same archive.")
    validation_path: Path | None = Field(
        None, description="An .npz with the same x and y keys for validation."
    )
    test_path: Path | None = Field(
        None, description="An .npz with the same x and y keys for testing."
    )

    @model_validator(mode="after")
    def _consistent(self):
        if (self.x_test is None) != (self.y_test is None):
            raise ValueError("give both x_test and y_test, or neither")
        if self.x_test is not None and self.test_path is not None:
            raise ValueError("give x_test and y_test, or test_path, not both")
        if self.x_test is not None and self._split_given("test_split"):
            raise ValueError("give x_test and y_test, or test_split, not both")
        self._only_one("validation_path", "validation_split")
        self._only_one("test_path", "test_split")
        return self

    def infer_task(self) -> Task:
        return infer(self.task_type, read_arrays(self.path, [self.y])[self.y], self.path, self.y)


def read_arrays(path: Path, keys: list[str]) -> dict:
    """The arrays under ``keys``; every problem is a DataError naming the file and the key."""
    import numpy as np

    require_data_file(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(
            f"{path}: file not found",
            hint=f"relative paths start from the current directory ({Path.cwd()})",
        ) from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: not a readable .npz archive ({error})") from None
    if not hasattr(archive, "files"):
        raise DataError(
            f"{path}: a single .npy array, not an .npz archive",
            hint="save the arrays with np.savez(path, x=features, y=labels)",
        )
    with archive:
        for key in keys:
            if key not in archive.files:
                raise DataError(
                    f"{path}: no array '{key}'; the archive holds "
                    f"{', '.join(archive.files) or 'nothing'}"
                    + ("" if not archive.files else f" ({did_you_mean(key, archive.files)})")
                )
        arrays = {}
        for key in keys:
            try:
                arrays[key] = archive[key]
            except ValueError as error:
                if "allow_pickle" not in str(error):
                    raise DataError(f"{path}: array '{key}' cannot be read ({error})") from None
                raise DataError(
                    f"{path}: array '{key}' holds Python objects (dtype=object), which are not "
                    "loaded because unpickling can run code",
                    hint="save it with a numeric or string dtype, e.g. np.asarray(a, "
                    "dtype=np.float32)",
                ) from None
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as error:
                raise DataError(f"{path}: array '{key}' cannot be read ({error})") from None
    return arrays


def infer(setting: TaskSetting, y, path: Path, key: str) -> Task:
    """The task of labels ``y``; numeric labels are class indices, so {0, 5} is multiclass."""
    where = f"{path}: '{key}'"
    task = resolve_task(setting, labels_of(y, where), where)
    if setting == "auto" and task == "binary" and y.dtype.kind in "biuf" and y.max() > 1:
        return "multiclass"
    return task


def labels_of(y, where: str) -> Labels:
    """What task inference needs to know about a labels array."""
    import numpy as np

    if y.ndim == 0 or y.dtype.kind not in "biufUS":
        raise DataError(
            f"{where} has dtype {y.dtype} and shape {y.shape}; expected one number or string "
            "per sample"
        )
    if len(y) == 0:
        raise DataError(f"{where} holds no samples", hint="save arrays with samples in them")
    if y.dtype.kind in "US":
        if y.ndim > 1 and int(np.prod(y.shape[1:])) > 1:
            raise DataError(
                f"{where} holds text labels shaped {y.shape}; text labels are one per sample",
                hint="save them shaped (samples,)",
            )
        distinct = len(np.unique(y))
        return Labels(True, distinct if distinct <= MAX_DISTINCT else None, True)
    if y.ndim > 1 and int(np.prod(y.shape[1:])) > 1:  # several targets per sample
        return Labels(False, None, False)
    distinct = len(np.unique(y))
    integral = bool(np.all(np.mod(y, 1) == 0)) if y.dtype.kind == "f" else True
    return Labels(False, distinct if distinct <= MAX_DISTINCT else None, integral)


@DATASETS.register(NpzParams, available=lambda: True, task="inferred from the labels")
def npz(
    seed: int,
    path: Path,
    x: str,
    y: str,
    x_test: str | None,
    y_test: str | None,
    validation_path: Path | None,
    test_path: Path | None,
    task_type: TaskSetting,
) -> RawData:
    """Your own NumPy arrays in an .npz archive: features and labels by key."""
    arrays = read_arrays(path, [x, y, *([x_test, y_test] if x_test else [])])
    pools = {"train": (path, x, y, arrays[x], arrays[y])}
    if x_test:
        pools["test"] = (path, x_test, y_test, arrays[x_test], arrays[y_test])
    for split, other in (("validation", validation_path), ("test", test_path)):
        if other is not None:
            more = read_arrays(other, [x, y])
            pools[split] = (other, x, y, more[x], more[y])
    task = infer(task_type, arrays[y], path, y)

    features = {split: _features(*pool[:2], pool[3], pool[4]) for split, pool in pools.items()}
    shapes = {split: f.shape[1:] for split, f in features.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{pools[s][0]} '{pools[s][1]}' {shape}" for s, shape in shapes.items())
        raise DataError(f"the features differ in shape per sample: {listed}")
    class_names, labels = _labels(pools, task)
    return RawData(
        features["train"], labels["train"], task,
        features.get("test"), labels.get("test"), class_names,
        default_scaling="none", x_val=features.get("validation"), y_val=labels.get("validation"),
    )  # fmt: skip


def _features(path: Path, key: str, x, y):

    where = f"{path}: '{key}'"
    if x.ndim == 0 or x.dtype.kind not in "biuf":
        raise DataError(
            f"{where} has dtype {x.dtype} and shape {x.shape}; expected numbers shaped "
            "(samples, ...)"
        )
    if len(x) != len(y):
        raise DataError(
            f"{where} has {len(x)} samples but its labels have {len(y)}; they must match",
            hint="save one label per sample",
        )
    x = x.reshape(len(x), 1) if x.ndim == 1 else x
    found = non_finite_samples(x)
    if found is not None:
        raise DataError(
            f"{where} holds non-finite values (NaN or inf) in {found[0]} sample(s), "
            f"the first at index {found[1]}",
            hint="arrays are used as they are: fill or remove those samples before saving, "
            "or save the data as CSV and set dataset.missing",
        )
    return x


def _labels(pools: dict, task: str) -> tuple[list[str], dict]:
    """Class names and each split's labels as class indices, or regression targets."""
    import numpy as np

    ys = {split: pool[4] for split, pool in pools.items()}
    where = {split: f"{pool[0]}: '{pool[2]}'" for split, pool in pools.items()}
    if task == "regression":
        for split, y in ys.items():
            if y.dtype.kind not in "biuf":
                raise DataError(f"{where[split]} holds {y.dtype} values; regression needs numbers")
            y = y.astype(np.float64)
            if not np.isfinite(y).all():
                first = int(np.flatnonzero(~np.isfinite(y.reshape(len(y), -1)).all(axis=1))[0])
                raise DataError(f"{where[split]} holds a non-finite target at index {first}")
            ys[split] = y
        return [], ys
    if any(y.dtype.kind in "US" for y in ys.values()):
        names = sorted({str(v) for y in ys.values() for v in np.unique(y)})
        position = {name: i for i, name in enumerate(names)}
        labels = {s: np.array([position[str(v)] for v in y.ravel()]) for s, y in ys.items()}
        if task == "binary" and len(names) > 2:
            raise DataError(f"the labels hold {len(names)} classes, but the task is binary")
        return names, labels
    labels = {}
    for split, y in ys.items():
        flat = y.reshape(len(y), -1)
        if flat.shape[1] != 1:
            raise DataError(f"{where[split]} has shape {y.shape}; classification needs (samples,)")
        flat = flat[:, 0]
        bad = (flat < 0) | (np.mod(flat, 1) != 0) if flat.dtype.kind == "f" else flat < 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{where[split]} holds label {flat[i].item()!r} at index {i}; class labels must be "
                "non-negative whole numbers (0, 1, 2, ...)",
                hint="map the labels to 0..k-1 (np.unique(y, return_inverse=True)), or set "
                "task: regression",
            )
        labels[split] = flat.astype(np.int64)
    count = max(int(y.max()) for y in labels.values() if len(y)) + 1
    check_class_count(
        f"{where['train']} and the other splits", count, len(np.unique(labels["train"]))
    )  # before k class names are made
    if task == "binary" and count > 2:
        raise DataError(
            f"binary labels must be 0 and 1, but {where['train']} (or another split) holds "
            f"{count - 1}",
            hint="map the labels to 0 and 1, or set task: multiclass",
        )
    return [str(i) for i in range(max(count, 2))], labels
