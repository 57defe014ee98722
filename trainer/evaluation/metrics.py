"""Metrics from predictions, computed with scikit-learn so every number has one definition.

The result is the ``metrics.json`` object: ``test`` maps metric names to numbers (``loss``
is cross-entropy for classification and MSE for regression); classification adds the
confusion matrix and a per-class table. ``None`` stands for a metric that is undefined on
this split (for example ROC AUC when a class is absent). ``baseline``, when given, holds a
naive predictor's name and test metrics, the bar a model has to clear.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainer.settings.vocabulary import TOP_K_METRICS

HIGHER_IS_BETTER = {"accuracy", "precision", "recall", "f1", "auc", "r2", "top_3_accuracy",
                    "top_5_accuracy"}  # fmt: skip


def evaluate(
    task: str, y_true, y_pred, class_names, metrics: list[str], baseline: dict | None = None
) -> dict[str, Any]:
    if task == "regression":
        result = {"task": task, "test": regression_metrics(y_true, y_pred, metrics)}
    else:
        result = {
            "task": task,
            **classification_metrics(task, y_true, y_pred, class_names, metrics),
        }
    if baseline is not None:
        result["baseline"] = baseline
    return result


def naive_baseline(data, metrics: list[str]) -> dict[str, Any]:
    """A naive predictor's test metrics: ``{"name": ..., "test": {metric: number}}``.

    Classification predicts the training split's class frequencies for every sample, so its
    label is always the majority class and its loss is that of knowing only the class
    balance. Regression uses the dataset's own naive forecast when it has one (such as the
    last observed value of a series), and otherwise the training mean.
    """
    task = data.spec.task
    n = len(data.y_test)
    if task == "regression":
        if data.naive_test is not None:
            name, predictions = data.naive_name or "naive forecast", data.naive_test
        else:
            mean = np.asarray(data.y_train, dtype=np.float64).reshape(len(data.y_train), -1)
            name, predictions = "training mean", np.tile(mean.mean(axis=0), (n, 1))
        return {"name": name, "test": regression_metrics(data.y_test, predictions, metrics)}
    y_train = np.asarray(data.y_train).astype(np.int64).ravel()
    classes = 2 if task == "binary" else max(data.spec.num_classes, int(y_train.max()) + 1)
    frequencies = np.bincount(y_train, minlength=classes) / len(y_train)
    proba = np.tile(frequencies, (n, 1))
    if task == "binary":
        proba = proba[:, 1:]  # the model's format: P(positive class)
    test = classification_metrics(task, data.y_test, proba, data.spec.class_names, metrics)
    return {"name": "majority class", "test": test["test"]}


def regression_metrics(y_true, y_pred, metrics: list[str]) -> dict[str, float]:
    from sklearn import metrics as skm

    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
    mse = skm.mean_squared_error(y_true, y_pred)
    values = {
        "mse": mse,
        "mae": skm.mean_absolute_error(y_true, y_pred),
        "rmse": np.sqrt(mse),
        "r2": skm.r2_score(y_true, y_pred) if len(y_true) > 1 else None,
    }
    return {"loss": float(mse), **{m: _number(values[m]) for m in metrics}}


def classification_metrics(task, y_true, proba, class_names, metrics) -> dict[str, Any]:
    from sklearn import metrics as skm

    y_true = np.asarray(y_true).astype(np.int64).ravel()
    proba = np.asarray(proba, dtype=np.float64)
    if task == "binary":
        positive = proba.reshape(-1)
        proba = np.stack([1.0 - positive, positive], axis=1)
    labels = list(range(proba.shape[1]))
    y_hat = proba.argmax(axis=1)
    average = "binary" if task == "binary" else "macro"
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y_true, y_hat, labels=labels if average == "macro" else None, average=average,
        zero_division=0,
    )  # fmt: skip
    values = {
        "accuracy": skm.accuracy_score(y_true, y_hat),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auc": _auc(y_true, proba, task, labels),
    }
    for name, k in TOP_K_METRICS.items():  # the true class among the k most likely
        if name in metrics:
            top = np.argsort(-proba, axis=1, kind="stable")[:, :k]
            values[name] = float((top == y_true[:, None]).any(axis=1).mean())
    clipped = np.clip(proba, 1e-7, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    loss = skm.log_loss(y_true, clipped, labels=labels)
    per_p, per_r, per_f, support = skm.precision_recall_fscore_support(
        y_true, y_hat, labels=labels, zero_division=0
    )
    names = list(class_names) or [str(i) for i in labels]
    return {
        "test": {"loss": float(loss), **{m: _number(values[m]) for m in metrics}},
        "averaging": average,
        "class_names": names,
        "confusion_matrix": skm.confusion_matrix(y_true, y_hat, labels=labels).tolist(),
        "per_class": {
            names[i]: {
                "precision": float(per_p[i]),
                "recall": float(per_r[i]),
                "f1": float(per_f[i]),
                "support": int(support[i]),
            }
            for i in labels
        },
    }


def _auc(y_true, proba, task, labels) -> float | None:
    import warnings

    from sklearn.metrics import roc_auc_score

    if len(np.unique(y_true)) < 2:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if task == "binary":
                return roc_auc_score(y_true, proba[:, 1])
            return roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=labels)
    except ValueError:  # a class absent from this split: one-vs-rest AUC is undefined
        return None


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def check_gates(test: dict[str, Any], under: dict[str, float], over: dict[str, float]) -> list[str]:
    """Messages for every metric that misses its bar; unknown names are a usage error."""
    from trainer.core.errors import UsageError

    failures = []
    for bars, fails in ((under, lambda v, b: v < b), (over, lambda v, b: v > b)):
        for name, bar in bars.items():
            if name not in test:
                raise UsageError(
                    f"metric gate names '{name}', which this run does not report",
                    hint=f"available: {', '.join(sorted(test))}",
                )
            value = test[name]
            if value is None or fails(value, bar):
                word = "below" if bars is under else "above"
                failures.append(f"{name} = {value} is {word} the bar {bar}")
    return failures
