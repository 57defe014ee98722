"""k-fold cross-validation indices, stratified for classification, fixed by the seed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainer.core.errors import DataError

if TYPE_CHECKING:
    import numpy as np


def kfold_indices(
    y: np.ndarray, k: int, seed: int, stratified: bool = True
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train, validation) index pairs that cover every sample once as validation.

    Stratified folds keep each class's share in every fold; they apply to class labels
    (integer ``y``) and need at least ``k`` examples of each class. Regression targets
    (floating point ``y``) get plain shuffled folds. The same seed gives the same folds.
    """
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    y = np.asarray(y)
    n = len(y)
    if not isinstance(k, int) or k < 2:
        raise DataError(f"k-fold needs k >= 2 folds, got {k!r}")
    if k > n:
        raise DataError(f"cannot make {k} folds from {n} samples", hint="lower k")
    labels = y.reshape(n, -1)[:, 0] if y.ndim > 1 else y
    if stratified and labels.dtype.kind in "biuUS":
        classes, counts = np.unique(labels, return_counts=True)
        if counts.min() < k:
            rare = classes[counts.argmin()].item()
            raise DataError(
                f"class {rare!r} has {counts.min()} example(s), fewer than the {k} folds; "
                "stratified folds need at least one of each class per fold",
                hint="lower k, or add examples of that class",
            )
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        return [(a, b) for a, b in splitter.split(np.zeros(n), labels)]
    splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    return [(a, b) for a, b in splitter.split(np.zeros(n))]
