"""The results of a search: leaderboard rows, ``leaderboard.csv``, ``best.yaml``, the plot.

Everything here reads the Optuna study that :mod:`trainer.workflows.tune` ran, so a finished or
interrupted search can be summarized again at any time without training.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.config.loading import to_yaml
from trainer.core import files
from trainer.workflows.space import configure

if TYPE_CHECKING:
    from trainer.workflows.tune import Settings

ORDER = {"complete": 0, "pruned": 1, "failed": 2, "interrupted": 3}  # leaderboard sections


def row(settings: Settings, trial) -> dict[str, Any]:
    """One leaderboard row."""
    attrs, reported = trial.user_attrs, trial.intermediate_values
    state = trial.state.name.lower()
    return {
        "trial": trial.number,
        "state": "failed" if attrs.get("error") else "interrupted" if state == "fail" else state,
        "value": trial.value,
        "std": attrs.get("std"),
        "last_reported": reported[max(reported)] if reported else None,
        "epochs": len(reported),
        "params": settings.space.decode(trial.params),
        "error": attrs.get("error"),
        "run_dir": attrs.get("run_dir"),
    }


def summarize(study, settings: Settings, root: Path) -> dict[str, Any]:
    """Write ``leaderboard.csv``, ``best.yaml``, ``search.png`` and ``tune.json``."""
    from optuna.trial import TrialState

    rows = [
        row(settings, t) for t in study.get_trials(deepcopy=False) if t.state != TrialState.RUNNING
    ]
    sign = 1 if settings.direction == "minimize" else -1
    rows.sort(
        key=lambda r: (
            ORDER.get(r["state"], 3),
            sign * r["value"] if r["value"] is not None else 0,
            r["trial"],
        )
    )
    _write_leaderboard(rows, root / "leaderboard.csv")
    complete = [r for r in rows if r["state"] == "complete"]
    best = complete[0] if complete else None
    if best is not None:
        cfg = configure(
            settings.config, settings.overrides, best["params"], name=f"{settings.base.name}-best"
        )
        text = (
            f"# best of {len(complete)} completed trials: trial {best['trial']}, "
            f"{settings.metric} {best['value']:.6g}\n" + to_yaml(cfg)
        )
        files.write_text(root / "best.yaml", text)
    _plot(rows, settings, root / "search.png")
    summary = {
        "metric": settings.metric,
        "direction": settings.direction,
        "sampler": settings.sampler,
        "folds": settings.folds,
        "trials": {
            state: sum(r["state"] == state for r in rows)
            for state in ("complete", "pruned", "failed", "interrupted")
        },
        "best": best,
        "best_config": str(root / "best.yaml") if best else None,
        "leaderboard": rows,
    }
    files.write_json(root / "tune.json", summary)
    return summary


def _write_leaderboard(rows: list[dict[str, Any]], path: Path) -> None:
    keys = sorted({k for r in rows for k in r["params"]})
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["trial", "state", "value", "std", "epochs", *keys, "run_dir", "error"])
    for r in rows:
        writer.writerow(
            [
                r["trial"],
                r["state"],
                r["value"],
                r["std"],
                r["epochs"],
                *(r["params"].get(k) for k in keys),
                r["run_dir"],
                r["error"],
            ]
        )
    files.write_text(path, table.getvalue())


def _plot(rows: list[dict[str, Any]], settings: Settings, path: Path) -> None:
    """The objective of each trial in order, the best so far as a line."""
    from trainer.evaluation.plotting import figure, save

    fig, axes = figure()
    complete = sorted((r for r in rows if r["state"] == "complete"), key=lambda r: r["trial"])
    if complete:
        numbers = [r["trial"] for r in complete]
        values = [r["value"] for r in complete]
        errors = [r["std"] or 0.0 for r in complete]
        axes.errorbar(
            numbers,
            values,
            yerr=errors if settings.folds else None,
            fmt="o",
            color="C0",
            label="completed trial",
        )
        best, running = [], None
        for value in values:
            better = running is None or (
                value < running if settings.direction == "minimize" else value > running
            )
            running = value if better else running
            best.append(running)
        axes.step(numbers, best, where="post", color="C2", label="best so far")
    pruned = [r for r in rows if r["state"] == "pruned"]
    if pruned:
        axes.scatter(
            [r["trial"] for r in pruned],
            [r["last_reported"] for r in pruned],
            marker="x",
            color="C3",
            label="pruned (last reported)",
        )
    axes.set_xlabel("trial")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_ylabel(f"{settings.metric} ({settings.direction}d)")
    axes.set_title(
        f"search: {settings.sampler}, {len(rows)} trials"
        + (f", {settings.folds}-fold mean ± std" if settings.folds else "")
    )
    if complete or pruned:
        axes.legend()
    save(fig, path)
