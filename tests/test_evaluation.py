"""Report metrics against values worked out by hand."""

import math

import numpy as np
import pytest

from trainer.core.errors import UsageError
from trainer.datasets import Dataset, DataSpec
from trainer.evaluation.metrics import check_gates, evaluate, naive_baseline


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


def _data(spec, y_train, y_test, **naive):
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    x = np.zeros((len(y_train), 1), "float32")
    return Dataset(spec, x, y_train, x[: len(y_test)], y_test, **naive)


def test_baseline_for_multiclass_is_the_majority_class():
    spec = DataSpec((1,), "multiclass", 3, 1, ("a", "b", "c"))
    data = _data(spec, [0, 0, 1, 2], [0, 1, 2, 0])  # training frequencies 1/2, 1/4, 1/4
    result = naive_baseline(data, ["accuracy", "f1", "auc"])
    assert result["name"] == "majority class"
    test = result["test"]
    assert test["accuracy"] == 0.5
    assert math.isclose(test["f1"], (2 / 3) / 3)  # class a: precision 1/2, recall 1
    assert test["auc"] == 0.5  # the same scores for every sample rank nothing
    assert math.isclose(test["loss"], -np.mean(np.log([0.5, 0.25, 0.25, 0.5])))


def test_baseline_for_binary_predicts_the_training_positive_rate():
    spec = DataSpec((1,), "binary", 2, 1, ("no", "yes"))
    test = naive_baseline(_data(spec, [1, 1, 1, 0], [1, 0]), ["accuracy", "recall"])["test"]
    assert test["accuracy"] == 0.5 and test["recall"] == 1.0
    assert math.isclose(test["loss"], -np.mean(np.log([0.75, 0.25])))


def test_baseline_for_regression_is_the_training_mean_or_the_naive_forecast():
    spec = DataSpec((1,), "regression", 0, 1)
    y_train, y_test = [[1.0], [2.0], [3.0]], [[2.0], [4.0]]
    result = naive_baseline(_data(spec, y_train, y_test), ["mse", "mae"])
    assert result == {"name": "training mean", "test": {"loss": 2.0, "mse": 2.0, "mae": 1.0}}

    naive = {"naive_test": np.array([[2.5], [4.5]]), "naive_name": "last value"}
    result = naive_baseline(_data(spec, y_train, y_test, **naive), ["mse", "r2"])
    assert result["name"] == "last value"
    assert result["test"]["mse"] == 0.25 and result["test"]["r2"] == 1 - 0.5 / 2


def test_evaluate_adds_a_baseline_only_when_given():
    y, p = np.array([1.0, 2.0]), np.array([1.0, 3.0])
    plain = evaluate("regression", y, p, [], ["mse"])
    assert "baseline" not in plain
    baseline = {"name": "training mean", "test": {"loss": 1.0, "mse": 1.0}}
    assert evaluate("regression", y, p, [], ["mse"], baseline) == {**plain, "baseline": baseline}
