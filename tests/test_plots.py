"""The run's pictures, drawn from its files alone: curves, confusion matrix, ROC/PR, residuals.

Run directories here are built by hand (``fake_run``) from the same writers the trainer uses
(``evaluation.evaluate``, ``plots.save_predictions``), so no model is trained.
"""

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.evaluation import plots
from trainer.evaluation.metrics import evaluate

CLASSES = {"binary": ["no", "yes"], "multiclass": ["cat", "dog", "bird"], "regression": []}


def history_rows(epochs: int = 6, generative: bool = False) -> list[dict[str, float]]:
    rows = []
    for epoch in range(epochs):
        if generative:
            rows.append({"epoch": epoch + 1, "d_loss": 0.7 - 0.01 * epoch,
                         "g_loss": 1.0 + 0.1 * epoch, "learning_rate": 0.001})  # fmt: skip
            continue
        loss, val = 1.0 / (epoch + 1), 0.5 + 0.02 * (epoch - 2) ** 2  # validation turns at 3
        rows.append({"epoch": epoch + 1, "loss": loss, "val_loss": val, "accuracy": 1 - loss / 2,
                     "val_accuracy": 0.7, "learning_rate": 0.01 * 0.5**epoch})  # fmt: skip
    return rows


def fake_run(root: Path, task: str = "multiclass", generative: bool = False,
             best_epoch: int | None = 3, samples: int = 60) -> Path:  # fmt: skip
    """A finished run directory as `trainer fit` leaves it, without training anything."""
    rng = np.random.default_rng(0)
    run = root / f"run-{task}{'-gan' if generative else ''}"
    run.mkdir(parents=True)
    rows = history_rows(generative=generative)
    with open(run / "history.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: repr(float(v)) for k, v in row.items()} for row in rows)
    names = CLASSES[task]
    if task == "regression":
        y_true = rng.normal(size=(samples, 1)).astype("float32")
        y_pred = y_true + rng.normal(scale=0.3, size=y_true.shape)
        metrics = ["mse", "mae", "rmse", "r2"]
    else:
        y_true = np.arange(samples) % len(names)
        scores = rng.uniform(size=(samples, len(names))) + 1.5 * np.eye(len(names))[y_true]
        y_pred = scores / scores.sum(axis=1, keepdims=True)
        y_pred = y_pred[:, 1:] if task == "binary" else y_pred
        metrics = ["accuracy", "precision", "recall", "f1", "auc"]
    result = evaluate(task, y_true, y_pred, names, metrics,
                      baseline={"name": "majority class", "test": {"loss": 1.1}})  # fmt: skip
    if not generative:
        (run / "metrics.json").write_text(json.dumps(result))
        plots.save_predictions(run / plots.PREDICTIONS, y_true, y_pred)
    training = {"epochs_run": len(rows), "best_epoch": best_epoch, "stopped_early": True,
                "train_seconds": 12.5}  # fmt: skip
    environment = {"versions": {"keras": "3.15.1", "python": "3.11"}, "backend": "tensorflow",
                   "device": "cpu", "seed": 1, "training": training}  # fmt: skip
    (run / "environment.json").write_text(json.dumps(environment))
    (run / "config.yaml").write_text(f"name: <{task}> & co\nseed: 1\n")
    return run


def decoded(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("multiclass", ["learning_curves", "confusion_matrix", "roc", "precision_recall"]),
        ("binary", ["learning_curves", "confusion_matrix", "roc", "precision_recall"]),
        ("regression", ["learning_curves", "predicted_vs_true", "residuals"]),
    ],
)
def test_each_task_gets_its_pictures_as_real_pngs(tmp_path, task, expected):
    run = fake_run(tmp_path, task)
    written = plots.write(run)
    assert [p.name for p in written] == [f"{name}.png" for name in expected]
    for path in written:
        pixels = decoded(path.read_bytes())
        assert min(pixels.shape[:2]) >= 300 and pixels.std() > 10  # drawn, not blank


def test_a_run_without_predictions_or_metrics_still_gets_its_learning_curves(tmp_path):
    run = fake_run(tmp_path, generative=True)
    figures = plots.figures(plots.read_run(run))
    assert list(figures) == ["learning_curves"]
    titles = [ax.get_title() for ax in figures["learning_curves"].axes if ax.get_visible()]
    assert titles == ["d_loss", "g_loss"]  # a constant learning rate gets no panel


def test_learning_curves_show_train_and_validation_and_mark_the_best_epoch(tmp_path):
    run = plots.read_run(fake_run(tmp_path))
    fig = plots.learning_curves(run.history, run.training)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert list(panels) == ["loss", "accuracy", "learning_rate"]  # loss first; a schedule shown
    loss = panels["loss"]
    lines = {line.get_label(): line for line in loss.get_lines()}
    assert set(lines) == {"training", "validation", "best epoch 3", "stopped early"}
    np.testing.assert_allclose(lines["training"].get_ydata(), [1 / (e + 1) for e in range(6)])
    assert list(lines["training"].get_xdata()) == [1, 2, 3, 4, 5, 6]  # epochs counted from 1
    assert list(lines["best epoch 3"].get_xdata()) == [3, 3]
    without = plots.learning_curves(run.history, {})
    assert {line.get_label() for line in without.axes[0].get_lines()} == {"training", "validation"}


def test_confusion_matrix_shows_counts_and_the_class_names(tmp_path):
    matrix = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 6]])
    fig = plots.confusion_matrix(matrix, ["cat", "dog", "bird"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == [str(v) for v in matrix.ravel()]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog", "bird"]
    shares = ax.images[0].get_array()
    np.testing.assert_allclose(np.asarray(shares).sum(axis=1), 1.0)  # each true class sums to 1


def test_roc_and_precision_recall_curves_name_their_area(tmp_path):
    run = plots.read_run(fake_run(tmp_path, "multiclass"))
    curves = plots.classification_curves(run.predictions["y_true"], run.predictions["y_pred"],
                                         run.metrics["class_names"])  # fmt: skip
    roc_labels = [line.get_label() for line in curves["roc"].axes[0].get_lines()]
    names = [label.split(" (")[0] for label in roc_labels]
    assert names == ["cat", "dog", "bird", "micro-average", "chance"]
    assert all("AUC" in label for label in roc_labels[:-1])
    pr_labels = [line.get_label() for line in curves["precision_recall"].axes[0].get_lines()]
    assert all("AP" in label for label in pr_labels)


def test_perfect_scores_give_an_auc_of_one_and_chance_scores_do_not(tmp_path):
    y_true = np.array([0, 1] * 20)
    perfect = plots.classification_curves(y_true, y_true[:, None].astype(float), ["n", "p"])
    assert perfect["roc"].axes[0].get_lines()[0].get_label() == "p (AUC 1.000)"
    noise = np.random.default_rng(1).uniform(size=(40, 1))
    chance = plots.classification_curves(y_true, noise, ["n", "p"])
    assert chance["roc"].axes[0].get_lines()[0].get_label() != "p (AUC 1.000)"


def test_regression_pictures_plot_every_test_sample(tmp_path):
    run = plots.read_run(fake_run(tmp_path, "regression", samples=40))
    pictures = plots.regression(run.predictions["y_true"], run.predictions["y_pred"])
    scatter = pictures["predicted_vs_true"].axes[0].collections[0]
    np.testing.assert_allclose(scatter.get_offsets()[:, 0], run.predictions["y_true"].ravel())
    residuals = pictures["residuals"].axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(
        residuals[:, 1], (run.predictions["y_pred"] - run.predictions["y_true"]).ravel(), rtol=1e-6
    )
