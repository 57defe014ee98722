"""Class imbalance: resampling the training split, class weights, and missing-class warnings.

Resampling changes only the training split, so validation and test metrics still describe
the data as it is. Class weights leave the data alone and weigh each example's loss instead;
the training batches carry :func:`class_weights`'s result as per-sample weights
(:func:`trainer.datasets.pipeline.sample_weights`, Keras's own expansion).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from trainer.core.errors import DataError, UsageError
from trainer.core.registry import did_you_mean

if TYPE_CHECKING:
    import numpy as np

ClassWeight = str | Mapping[int | str, float] | None  # 'none' | 'balanced' | {class: weight}


def resample(x: np.ndarray, y: np.ndarray, method: str, seed: int):
    """Over- or under-sample ``(x, y)`` to equal class counts; a seeded, shuffled copy.

    'oversample' draws extra examples of each smaller class (with replacement) up to the
    largest class's count; 'undersample' keeps a random subset of each larger class, down to
    the smallest class's count. 'none' returns the arrays unchanged.
    """
    import numpy as np

    if method == "none":
        return x, y
    if method not in ("oversample", "undersample"):
        raise ValueError(f"unknown resampling method '{method}'")
    labels = np.asarray(y).reshape(len(y))
    if labels.dtype.kind not in "biu":
        raise DataError(f"resample: {method} needs class labels, not {labels.dtype} targets")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    chosen = []
    for label, count in zip(classes, counts, strict=True):
        members = np.flatnonzero(labels == label)
        if method == "oversample":
            extra = rng.choice(members, counts.max() - count, replace=True)
            chosen.append(np.concatenate([members, extra]))
        else:
            chosen.append(rng.choice(members, counts.min(), replace=False))
    order = rng.permutation(np.concatenate(chosen))
    from trainer.datasets.lazy import take

    return take(x, order), y[order]


def class_weights(
    y_train: np.ndarray, setting: ClassWeight, class_names: Sequence[str] = ()
) -> dict[int, float] | None:
    """Keras's ``class_weight`` mapping for ``training.class_weight``, or None for no weights.

    'balanced' weighs class c by n / (k * n_c), as scikit-learn does: a class with half the
    average count weighs 2. A mapping gives weights by class name or index; classes it leaves
    out weigh 1. Every class index 0..k-1 gets an entry (k = len(class_names), or the largest
    label + 1), as Keras looks weights up by index.
    """
    import numpy as np

    if setting is None or setting == "none":
        return None
    labels = np.asarray(y_train).reshape(len(y_train)).astype(np.int64)
    k = max(len(class_names), int(labels.max()) + 1 if len(labels) else 0)
    weights = {i: 1.0 for i in range(k)}
    if setting == "balanced":
        counts = np.bincount(labels, minlength=k)
        present = np.flatnonzero(counts)
        for i in present:
            weights[int(i)] = float(len(labels) / (len(present) * counts[i]))
        return weights
    if isinstance(setting, str):
        raise UsageError(
            f"training.class_weight: unknown setting '{setting}'; use none, balanced or a "
            "mapping {class: weight}"
        )
    names = [str(n) for n in class_names] or [str(i) for i in range(k)]
    for key, weight in setting.items():
        if isinstance(key, str) and key in names:
            index = names.index(key)
        elif isinstance(key, int) and not isinstance(key, bool) and 0 <= key < k:
            index = key
        else:
            raise UsageError(
                f"training.class_weight: no class {key!r}; {did_you_mean(str(key), names)}",
                hint="name a class, or give its index 0.."
                f"{k - 1}; quote names YAML reads as booleans ('yes', 'no')",
            )
        weights[index] = float(weight)
    return weights


def missing_class_warnings(splits: Mapping[str, np.ndarray | None], class_names: Sequence[str]):
    """One warning per class with no example in a (non-empty) split."""
    import numpy as np

    warnings = []
    for split, y in splits.items():
        if y is None or len(y) == 0:
            continue
        counts = np.bincount(np.asarray(y, dtype=np.int64).ravel(), minlength=len(class_names))
        absent = [class_names[i] for i in np.flatnonzero(counts[: len(class_names)] == 0)]
        if absent:
            listed = ", ".join(f"'{name}'" for name in absent)
            warnings.append(
                f"the {split} split has no example of class{'es' if len(absent) > 1 else ''} "
                f"{listed}"
            )
    return warnings
