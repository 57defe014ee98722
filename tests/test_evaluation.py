"""Report metrics against values worked out by hand."""

import math

import numpy as np
import pytest

from trainer.errors import UsageError
from trainer.evaluation import check_gates, evaluate


def test_binary_metrics_by_hand():
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.1], [0.6], [0.8], [0.4]])  # predictions 0, 1, 1, 0
    result = evaluate(
        "binary", y, p, ["neg", "pos"], ["accuracy", "precision", "recall", "f1", "auc"]
    )
    test = result["test"]
    assert test["accuracy"] == 0.5
    assert test["precision"] == 0.5 and test["recall"] == 0.5 and test["f1"] == 0.5
    assert test["auc"] == 0.75
    expected_loss = -np.mean(np.log([0.9, 0.4, 0.8, 0.4]))
    assert math.isclose(test["loss"], expected_loss, rel_tol=1e-6)
    assert result["confusion_matrix"] == [[1, 1], [1, 1]]
    assert result["per_class"]["pos"]["support"] == 2


def test_multiclass_macro_and_absent_class_auc():
    y = np.array([0, 1, 1])
    proba = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    result = evaluate("multiclass", y, proba, ["a", "b", "c"], ["accuracy", "f1", "auc"])
    assert math.isclose(result["test"]["accuracy"], 2 / 3)
    assert result["test"]["auc"] is None  # class 'c' never occurs: one-vs-rest AUC undefined
    assert result["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]


def test_regression_metrics_by_hand():
    y = np.array([1.0, 2.0, 3.0])
    pred = np.array([1.0, 2.0, 5.0])
    test = evaluate("regression", y, pred, [], ["mse", "mae", "rmse", "r2"])["test"]
    assert math.isclose(test["mse"], 4 / 3)
    assert math.isclose(test["mae"], 2 / 3)
    assert math.isclose(test["rmse"], math.sqrt(4 / 3))
    assert math.isclose(test["r2"], 1 - 4 / 2)
    assert test["loss"] == test["mse"]


def test_gates():
    test = {"accuracy": 0.9, "loss": 0.3}
    assert check_gates(test, {"accuracy": 0.8}, {"loss": 0.5}) == []
    failures = check_gates(test, {"accuracy": 0.95}, {"loss": 0.2})
    assert len(failures) == 2 and "below" in failures[0] and "above" in failures[1]
    with pytest.raises(UsageError, match="available: accuracy, loss"):
        check_gates(test, {"f1": 0.5}, {})
