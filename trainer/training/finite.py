"""Finiteness of a run's numbers: the check that stops NaN and Inf from being kept.

The loss alone does not show a broken model: a ReLU, a max-pool, a clipped activation or a
masked loss can hide a NaN kernel behind a finite loss. So every checkpoint, the final save,
a resume and every load of a saved model check that each weight and optimizer variable is
finite: one ``isfinite(...).all()`` per array, on the copy a checkpoint makes anyway
(``bench/finite.py`` measures the cost against an epoch).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

CAUSES = (
    "likely causes: a learning rate too high or a schedule that grows (try 10x lower, or "
    "clipnorm: 1.0), unscaled inputs (dataset.scaling: standard), NaN/Inf in the data (a "
    "ReLU or max-pool can hide it from the loss), or a loss or layer that divides by zero"
)


def problems(named: Iterable[tuple[str, np.ndarray]]) -> list[str]:
    """One line per floating-point array holding NaN or Inf: its name and what it holds."""
    found = []
    for name, value in named:
        array = np.asarray(value)
        if array.dtype.kind not in "fc" or np.isfinite(array).all():
            continue
        nan = int(np.isnan(array).sum())
        inf = int(np.isinf(array).sum())
        held = ", ".join(part for part in (f"{nan} NaN" * bool(nan), f"{inf} Inf" * bool(inf))
                         if part)  # fmt: skip
        found.append(f"{name} ({held} of {array.size} values)")
    return found


def summary(found: list[str], limit: int = 3) -> str:
    """The first ``limit`` problems, and how many more there are."""
    shown = "; ".join(found[:limit])
    return shown if len(found) <= limit else f"{shown}; and {len(found) - limit} more"


def checkpoint_problems(arrays: dict[str, np.ndarray]) -> list[str]:
    """Non-finite model, optimizer and best-weights arrays of a checkpoint's ``state.npz``.

    Keys are ``model/00003/dense/kernel``, ``optimizer0/00001/adam/learning_rate`` and
    ``best/00002``; metric accumulators are left alone (a mean of a NaN batch is not state
    that training goes on from). Optimizer scalars (a learning rate that became Inf explains
    every weight after it) come first.
    """
    kept = [(key, value) for key, value in arrays.items() if not key.startswith("metrics/")]
    kept.sort(key=lambda item: not (item[0].startswith("optimizer") and np.ndim(item[1]) == 0))
    return problems((describe_key(key), value) for key, value in kept)


def describe_key(key: str) -> str:
    group, _, rest = key.partition("/")
    path = rest.partition("/")[2] or rest
    if group == "model":
        return f"weight {path}"
    if group == "best":
        return f"early stopping's best weight #{int(rest)}"
    return f"optimizer variable {path}"


def model_problems(model) -> list[str]:
    """Non-finite weights of a Keras model (layer and weight named by their paths)."""
    return problems((f"weight {v.path}", v.numpy()) for v in model.weights)
