"""Pictures of a finished run, drawn only from the files the run saved.

Learning curves (each logged quantity, training and validation, the best epoch marked),
and for classification the confusion matrix, ROC and precision-recall curves; for
regression, predicted against true values and the residuals. Every picture is a function of
``history.csv``, ``environment.json`` (the training summary), ``metrics.json`` and
``predictions.npz`` (the test split's targets and the model's outputs), so ``trainer report``
redraws them without TensorFlow or the model. Matplotlib draws off-screen (a bare
``Figure`` uses the Agg canvas, never a window) and is imported only when drawing.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainer.core.files import read_run_json
from trainer.evaluation.plotting import grid, png

PLOTS_DIR = "plots"  # inside the run directory
PREDICTIONS = "predictions.npz"
MAX_CURVES = 10  # one-vs-rest curves drawn per class up to this many classes, else micro only
CAPTIONS = {
    "learning_curves": "Learning curves: each quantity per epoch, training and validation",
    "confusion_matrix": "Confusion matrix of the test split (colour: share of the true class)",
    "roc": "ROC curves on the test split",
    "precision_recall": "Precision-recall curves on the test split",
    "predicted_vs_true": "Predicted against true values on the test split",
    "residuals": "Residuals (predicted minus true) on the test split",
}


@dataclass
class RunFiles:
    """What a run directory holds that the pictures need (absent files are empty)."""

    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, np.ndarray] | None = None


def read_run(run_dir: Path) -> RunFiles:
    """Read a run directory's history, summary, metrics and predictions."""
    run = RunFiles()
    if (run_dir / "history.csv").is_file():
        with open(run_dir / "history.csv", newline="") as handle:
            run.history = [{k: _float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    for name, attribute in (("metrics.json", "metrics"), ("environment.json", "training")):
        if (run_dir / name).is_file():
            loaded = read_run_json(run_dir / name)
            setattr(
                run, attribute, loaded.get("training", {}) if attribute == "training" else loaded
            )
    if (run_dir / PREDICTIONS).is_file():
        with np.load(run_dir / PREDICTIONS, allow_pickle=False) as archive:
            run.predictions = {k: archive[k] for k in archive.files}
    return run


def save_predictions(path: Path, y_true, y_pred) -> None:
    """Write the test split's targets and the model's outputs, for the pictures."""
    from trainer.core.files import atomic_write_bytes

    buffer = io.BytesIO()
    np.savez(buffer, y_true=np.asarray(y_true), y_pred=np.asarray(y_pred, dtype=np.float32))
    atomic_write_bytes(path, buffer.getvalue())


def draw(run: RunFiles) -> dict[str, bytes]:
    """Every picture that applies to ``run``, as PNG bytes by name, in display order."""
    return {name: png(fig) for name, fig in figures(run).items()}


def figures(run: RunFiles) -> dict[str, Any]:
    """Every picture that applies to ``run``, as a matplotlib Figure by name."""
    drawn = {}
    if run.history:
        drawn["learning_curves"] = learning_curves(run.history, run.training)
    task = run.metrics.get("task")
    if run.metrics.get("confusion_matrix"):
        drawn["confusion_matrix"] = confusion_matrix(
            np.asarray(run.metrics["confusion_matrix"]), run.metrics.get("class_names", [])
        )
    if run.predictions is not None and task in ("binary", "multiclass"):
        names = run.metrics.get("class_names", [])
        drawn.update(classification_curves(run.predictions["y_true"],
                                           run.predictions["y_pred"], names))  # fmt: skip
    if run.predictions is not None and task == "regression":
        drawn.update(regression(run.predictions["y_true"], run.predictions["y_pred"]))
    return drawn


def write(run_dir: Path, metrics: dict | None = None, training: dict | None = None) -> list[Path]:
    """Draw the pictures into ``run_dir/plots/``; ``metrics`` and ``training`` stand in for
    the files not yet written (``fit`` writes ``metrics.json`` last)."""
    from trainer.core.files import atomic_write_bytes

    run = read_run(run_dir)
    run.metrics, run.training = metrics or run.metrics, training or run.training
    folder = run_dir / PLOTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, picture in draw(run).items():
        atomic_write_bytes(folder / f"{name}.png", picture)
        written.append(folder / f"{name}.png")
    return written


# --- the pictures -------------------------------------------------------------------------


def learning_curves(history: list[dict[str, float]], training: dict[str, Any]):
    """One panel per logged quantity: training solid, validation dashed, best epoch marked."""
    columns = [k for k in history[0] if k != "epoch"]
    names = sorted({k.removeprefix("val_") for k in columns} - {"learning_rate"},
                   key=lambda n: (n != "loss", n))  # fmt: skip
    rates = [row.get("learning_rate", math.nan) for row in history]
    if len(set(rates)) > 1 and not all(math.isnan(r) for r in rates):
        names.append("learning_rate")  # a schedule: worth its own panel
    epochs = list(range(1, len(history) + 1))  # one row per finished epoch, from 1
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = grid(4.2 * cols, 3.2 * rows, rows, cols)
    best, stopped = training.get("best_epoch"), training.get("stopped_early")
    for ax, name in zip(axes, names, strict=False):
        ax.plot(epochs, [row.get(name, math.nan) for row in history], marker=".", label="training")
        if f"val_{name}" in columns:
            values = [row.get(f"val_{name}", math.nan) for row in history]
            ax.plot(epochs, values, marker=".", linestyle="--", label="validation")
        if best:
            ax.axvline(best, color="tab:green", linestyle=":", label=f"best epoch {best}")
        if stopped:
            ax.axvline(epochs[-1], color="tab:red", linestyle=":", alpha=0.6, label="stopped early")
        ax.set(title=name, xlabel="epoch")
        if name == "learning_rate":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    return fig


def confusion_matrix(matrix: np.ndarray, class_names: list[str]):
    """Counts in the cells, colour by the share of the true class (each row sums to 1)."""
    n = len(matrix)
    names = [str(c) for c in class_names] or [str(i) for i in range(n)]
    side = min(12.0, 2.5 + 0.55 * n)
    fig, (ax,) = grid(side + 1.2, side, 1, 1)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    if n <= 30:
        ax.set_xticks(range(n), names, rotation=45, ha="right")
        ax.set_yticks(range(n), names)
    if n <= 20:
        for (i, j), count in np.ndenumerate(matrix):
            colour = "white" if shares[i, j] > 0.5 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=colour, fontsize="small")
    ax.set(xlabel="predicted class", ylabel="true class", title="confusion matrix (test)")
    return fig


def classification_curves(y_true, y_pred, class_names: list[str]) -> dict[str, Any]:
    """ROC and precision-recall curves: the positive class, or one-vs-rest per class."""
    from sklearn import metrics as skm

    y_true = np.asarray(y_true).astype(np.int64).ravel()
    scores = np.asarray(y_pred, dtype=np.float64)
    if scores.ndim == 1 or scores.shape[1] == 1:  # binary: P(positive class)
        name = class_names[1] if len(class_names) > 1 else "positive"
        curves = [(str(name), y_true == 1, scores.reshape(-1))]
    else:
        names = class_names or [str(i) for i in range(scores.shape[1])]
        curves = [] if scores.shape[1] > MAX_CURVES else [
            (str(names[k]), y_true == k, scores[:, k]) for k in range(scores.shape[1])]  # fmt: skip
        onehot = np.eye(scores.shape[1], dtype=bool)[y_true]
        curves.append(("micro-average", onehot.ravel(), scores.ravel()))
    curves = [c for c in curves if 0 < c[1].sum() < len(c[1])]  # both outcomes present
    roc_fig, (roc,) = grid(6.0, 5.0, 1, 1)
    pr_fig, (pr,) = grid(6.0, 5.0, 1, 1)
    for label, truth, score in curves:
        bold = {"linewidth": 2.5, "color": "black"} if label == "micro-average" else {}
        fpr, tpr, _ = skm.roc_curve(truth, score)
        roc.plot(fpr, tpr, label=f"{label} (AUC {skm.auc(fpr, tpr):.3f})", **bold)
        precision, recall, _ = skm.precision_recall_curve(truth, score)
        ap = skm.average_precision_score(truth, score)
        pr.plot(recall, precision, label=f"{label} (AP {ap:.3f})", **bold)
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    pr.set(xlabel="recall", ylabel="precision", title="precision-recall (test)", ylim=(0, 1.02))
    for ax in (roc, pr):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="lower right" if ax is roc else "lower left")
    return {"roc": roc_fig, "precision_recall": pr_fig}


def regression(y_true, y_pred) -> dict[str, Any]:
    """Predicted against true (the diagonal is perfect), and residuals against predicted."""
    truth = np.asarray(y_true, dtype=np.float64).ravel()
    predicted = np.asarray(y_pred, dtype=np.float64).ravel()
    residuals = predicted - truth
    alpha = 0.7 if len(truth) < 500 else 0.3
    fig, (ax,) = grid(5.5, 5.0, 1, 1)
    ax.scatter(truth, predicted, s=10, alpha=alpha)
    low, high = min(truth.min(), predicted.min()), max(truth.max(), predicted.max())
    ax.plot([low, high], [low, high], color="grey", linestyle=":", label="predicted = true")
    ax.set(xlabel="true value", ylabel="predicted value", title="predicted vs true (test)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    pictures = {"predicted_vs_true": fig}
    fig, (scatter, histogram) = grid(10.0, 4.2, 1, 2)
    scatter.scatter(predicted, residuals, s=10, alpha=alpha)
    scatter.axhline(0.0, color="grey", linestyle=":")
    scatter.set(xlabel="predicted value", ylabel="residual", title="residuals vs predicted")
    histogram.hist(residuals, bins=min(50, max(5, len(residuals) // 10)))
    histogram.axvline(0.0, color="grey", linestyle=":")
    histogram.set(xlabel="residual", ylabel="test samples", title="residuals")
    for ax in (scatter, histogram):
        ax.grid(alpha=0.3)
    pictures["residuals"] = fig
    return pictures


def _float(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
