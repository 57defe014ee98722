"""The only module that writes to the terminal.

Results go to stdout; progress, notes and errors go to stderr, so ``--json`` output stays
machine-readable. On a terminal progress is a rich bar; elsewhere (CI logs) it is one
plain line per epoch.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


MESSAGE_CAP = 4000  # characters of one error message: a hostile value must not flood the terminal


def error(exc: BaseException, debug: bool = False) -> None:
    text = str(exc)
    if len(text) > MESSAGE_CAP:  # the messages cut what they echo; this is the last guard
        text = f"{text[:MESSAGE_CAP]}... ({len(text) - MESSAGE_CAP:,} more characters cut)"
    err.print("[bold red]error:[/] ", end="")
    err.print(text, markup=False)
    if debug:
        err.print_exception(show_locals=False)
    elif not getattr(exc, "exit_code", None):
        err.print("(rerun with --debug to see the traceback)", style="dim")


def note(text: str) -> None:
    err.print(text, markup=False, style="dim")


def warn(text: str) -> None:
    err.print("[yellow]warning:[/] ", end="")
    err.print(text, markup=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def print_text(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def metrics_report(metrics: dict[str, Any], title: str, console: Console = out) -> None:
    """Tables for the test metrics, the confusion matrix and the per-class scores."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("test", justify="right")
    baseline = metrics.get("baseline")
    if baseline:
        table.add_column(f"baseline: {baseline['name']}", justify="right")
    for name, value in metrics["test"].items():
        extra = [_fmt(baseline["test"].get(name))] if baseline else []
        table.add_row(name, _fmt(value), *extra)
    console.print(table)
    if "confusion_matrix" in metrics:
        names = metrics["class_names"]
        matrix = Table(title="confusion matrix (rows: true, columns: predicted)",
                       title_justify="left")  # fmt: skip
        matrix.add_column("")
        for name in names:
            matrix.add_column(name, justify="right")
        for name, row in zip(names, metrics["confusion_matrix"], strict=True):
            matrix.add_row(name, *(str(v) for v in row))
        console.print(matrix)
        per_class = Table(title="per class", title_justify="left")
        for column in ("class", "precision", "recall", "f1", "support"):
            per_class.add_column(column, justify="left" if column == "class" else "right")
        for name, row in metrics["per_class"].items():
            per_class.add_row(name, *(_fmt(row[k]) for k in ("precision", "recall", "f1")),
                              str(row["support"]))  # fmt: skip
        console.print(per_class)
    if "model" in metrics:
        for key, value in metrics["model"].items():
            console.print(f"{key}: {value}", markup=False)


class PlainProgress:
    """One line per epoch: readable in CI logs and when piped."""

    def __init__(self, console: Console = err) -> None:
        self.console = console

    def stage(self, text: str) -> None:
        self.console.print(f"{text} ...", markup=False, style="dim")

    def start(self, epochs: int, steps_per_epoch: int) -> None:
        self.console.print(f"training: {plural(epochs, 'epoch')} of "
                           f"{plural(steps_per_epoch, 'step')}", markup=False)  # fmt: skip

    def step(self, step: int) -> None:
        pass

    def epoch(self, epoch: int, epochs: int, logs: dict[str, float], seconds: float) -> None:
        width = len(str(epochs))
        values = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "learning_rate")
        self.console.print(f"epoch {epoch:>{width}}/{epochs}  {values}  ({seconds:.1f}s)",
                           markup=False, highlight=False)  # fmt: skip

    def finish(self) -> None:
        pass


class RichProgress(PlainProgress):
    """A live bar over the steps of the current epoch, with a summary line per epoch."""

    def __init__(self, console: Console = err) -> None:
        super().__init__(console)
        self._progress = None
        self._task = None
        self._last = 0.0

    def start(self, epochs: int, steps_per_epoch: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        super().start(epochs, steps_per_epoch)
        self._steps = steps_per_epoch
        self._progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=self.console, transient=True,
        )  # fmt: skip
        self._progress.start()
        self._task = self._progress.add_task("train", total=steps_per_epoch, epoch=1)

    def step(self, step: int) -> None:
        now = time.monotonic()
        if self._progress is not None and (now - self._last > 0.1 or step == self._steps):
            self._last = now
            self._progress.update(self._task, completed=step)

    def epoch(self, epoch: int, epochs: int, logs: dict[str, float], seconds: float) -> None:
        if self._progress is not None:
            self._progress.reset(self._task, total=self._steps, epoch=epoch + 1)
        super().epoch(epoch, epochs, logs, seconds)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class QuietProgress(PlainProgress):
    """Only warnings: for the many short runs of a search, told of one line per trial."""

    def stage(self, text: str) -> None:
        if text.startswith("warning:"):
            warn(text.removeprefix("warning:").strip())

    def start(self, epochs: int, steps_per_epoch: int) -> None:
        pass

    def epoch(self, epoch: int, epochs: int, logs: dict[str, float], seconds: float) -> None:
        pass


def progress() -> PlainProgress:
    """A live bar on an interactive terminal; plain lines in CI (``CI`` set), pipes, logs."""
    live = err.is_terminal and not err.is_dumb_terminal and not os.environ.get("CI")
    return RichProgress() if live else PlainProgress()


def datasets_table(rows: list[dict[str, str]]) -> None:
    table = Table(title="datasets", title_justify="left")
    for column in ("name", "task", "offline", "description"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["task"], row["offline"], row["description"])
    out.print(table)


def lr_find(summary: dict[str, Any]) -> None:
    """`trainer lr-find`: the suggested learning rates and where the curve went."""
    suggestion, tenth = summary.get("suggestion"), summary.get("minimum_tenth")
    if suggestion is not None:
        out.print(f"suggested learning rate: {suggestion:.3g}  (steepest descent of the "
                  "smoothed loss)", markup=False)  # fmt: skip
    else:
        warn("the loss never fell steadily over the range: no steepest-descent suggestion")
    if tenth is not None:
        out.print(f"minimum / 10:            {tenth:.3g}  (a safe upper bound)", markup=False)
    out.print(f"{summary['steps_run']} steps; stopped: {summary['stopped']}", markup=False)
    out.print(f"plot: {summary['output']}/lr_find.png  (data: lr_find.csv)", markup=False)


def _short(value: Any) -> str:
    """A searched value for a table: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def tune_trial(row: dict[str, Any]) -> None:
    """One line per finished trial of `trainer tune`, on stderr."""
    if "note" in row:
        note(row["note"])
        return
    params = "  ".join(f"{k}={_short(v)}" for k, v in row["params"].items())
    value = row["value"] if row["value"] is not None else row.get("last_reported")
    spread = f" ± {row['std']:.4f}" if row.get("std") is not None else ""
    shown = "" if value is None else f"{value:.4f}{spread}"
    why = f"  ({row['error']})" if row.get("error") else ""
    err.print(f"trial {row['trial']:>3} {row['state']:<8} {shown:>18}  {params}{why}",
              markup=False, highlight=False)  # fmt: skip


def leaderboard(summary: dict[str, Any], limit: int = 20) -> None:
    """`trainer tune`: the trials ranked by the objective, the best config's path."""
    rows = summary["leaderboard"]
    keys = sorted({k for r in rows for k in r["params"]})
    direction = "lower" if summary["direction"] == "minimize" else "higher"
    table = Table(title=f"leaderboard: {summary['metric']} ({direction} is better)",
                  title_justify="left")  # fmt: skip
    for column in ("trial", "state", summary["metric"], *keys):
        table.add_column(column, justify="left" if column == "state" else "right")
    for r in rows[:limit]:
        value = r["value"] if r["value"] is not None else r.get("last_reported")
        shown = _fmt(value) + (f" ± {r['std']:.4f}" if r.get("std") is not None else "")
        table.add_row(str(r["trial"]), r["state"], shown,
                      *(_short(r["params"].get(k, "")) for k in keys))  # fmt: skip
    out.print(table)
    if len(rows) > limit:
        out.print(f"... and {len(rows) - limit} more in leaderboard.csv", markup=False)
    counts = ", ".join(f"{n} {state}" for state, n in summary["trials"].items())
    out.print(f"trials: {counts}", markup=False)
    if summary.get("best_config"):
        out.print(f"best config: {summary['best_config']}  (trainer fit {summary['best_config']})",
                  markup=False)  # fmt: skip
    else:
        warn("no trial completed, so there is no best config")


def predictions(summary: dict[str, Any]) -> None:
    """`trainer predict`: how many rows, where they went, the predicted class counts."""
    out.print(f"{summary['rows']} predictions written to {summary['output']}", markup=False)
    if summary.get("predicted"):
        counts = ", ".join(f"{name}: {n}" for name, n in summary["predicted"].items())
        out.print(f"predicted classes: {counts}", markup=False)


def exported(summary: dict[str, Any]) -> None:
    """`trainer export`: the file, and how closely it matches the Keras model."""
    out.print(f"exported {summary['format']} to {summary['output']} "
              f"({summary['bytes'] / 1024:.1f} KiB)", markup=False)  # fmt: skip
    out.print(f"checked against Keras on {summary['samples']} sample inputs: largest absolute "
              f"difference {summary['max_abs_diff']:.3g} (allowed {summary['tolerance']:g})",
              markup=False)  # fmt: skip


def inspection(summary: dict[str, Any]) -> None:
    """`trainer datasets inspect`: the facts about a config's data, as tables."""
    out.print(f"dataset {summary.get('dataset')}: task {summary.get('task')}, "
              f"{summary.get('rows')} rows, input shape {summary.get('input_shape')}",
              markup=False)  # fmt: skip
    if summary.get("columns"):
        table = Table(title="columns", title_justify="left")
        for column in ("name", "role", "type", "missing", "distinct"):
            table.add_column(column)
        for row in summary["columns"]:
            table.add_row(*(str(row.get(k, "")) for k in ("name", "role", "type", "missing",
                                                           "distinct")))  # fmt: skip
        out.print(table)
    if summary.get("class_balance"):
        table = Table(title="class balance", title_justify="left")
        splits = list(summary["class_balance"])
        table.add_column("class")
        for split in splits:
            table.add_column(split, justify="right")
        classes = sorted({c for counts in summary["class_balance"].values() for c in counts})
        for name in classes:
            table.add_row(name, *(str(summary["class_balance"][s].get(name, 0)) for s in splits))
        out.print(table)
    if summary.get("splits"):
        sizes = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
        out.print(f"splits: {sizes}", markup=False)
    if summary.get("missing"):
        missing = ", ".join(f"{k}: {v}" for k, v in summary["missing"].items())
        out.print(f"missing values: {missing}", markup=False)
    for warning in summary.get("warnings", []):
        warn(warning)
    for problem in summary.get("problems", []):
        err.print("[bold red]problem:[/] ", end="")
        err.print(problem, markup=False)


def runs_table(runs: list[dict[str, Any]], root: Any) -> None:
    """`trainer runs list`: one row per run directory."""
    if not runs:
        note(f"no runs in {root}")
        return
    table = Table(title=f"runs in {root}", title_justify="left")
    for column in ("run", "started", "status", "model", "dataset", "metric", "test", "diagnosis"):
        table.add_column(column, justify="right" if column == "test" else "left",
                         no_wrap=column in ("run", "test"))  # fmt: skip
    for run in runs:
        started = str(run["started"] or "").replace("T", " ")[:16]
        value = _fmt(run["value"]) if run["metric"] else ""
        table.add_row(run["run"], started, run["status"], run["model"] or "",
                      run["dataset"] or "", run["metric"] or "", value,
                      run["verdict"] or "")  # fmt: skip
    out.print(table)


def runs_comparison(comparison: dict[str, Any]) -> None:
    """`trainer runs compare`: differing config values, then test metrics; best in bold."""
    names = comparison["runs"]
    config = Table(title="config values that differ", title_justify="left")
    config.add_column("key")
    for name in names:
        config.add_column(name, overflow="fold")
    for key, values in comparison["config"].items():
        config.add_row(key, *(str(v) for v in values))
    if comparison["config"]:
        out.print(config)
    else:
        out.print("the configs are the same (apart from the name)", markup=False)
    metrics = Table(title="test metrics (best in bold)", title_justify="left")
    metrics.add_column("metric")
    for name in names:
        metrics.add_column(name, justify="right")
    for metric, values in comparison["metrics"].items():
        best = comparison["best"].get(metric)
        metrics.add_row(metric, *(f"[bold]{_fmt(v)}[/]" if i == best else _fmt(v)
                                  for i, v in enumerate(values)))  # fmt: skip
    for label in ("status", "verdict"):
        metrics.add_row(label, *(str(v or "") for v in comparison[label]), style="dim")
    out.print(metrics)


def diagnosis(result: dict[str, Any]) -> None:
    """The end of `trainer fit`: what the history says, in words, and what to try next."""
    verdict = result["verdict"]
    words = {"overfitting": "over-fitting", "underfitting": "under-fitting",
             "not_applicable": "not applicable"}.get(verdict, verdict)  # fmt: skip
    style = {"healthy": "green", "not_applicable": "dim"}.get(verdict, "yellow")
    out.print(f"[bold]diagnosis:[/] [{style}]{words}[/]")
    out.print(f"  {result['summary']}", markup=False)
    for finding in result["findings"]:
        if finding["message"] not in result["summary"]:
            out.print(f"  {finding['message']}", markup=False)
    if result["suggestions"]:
        out.print("next steps:", markup=False)
        for suggestion in result["suggestions"]:
            out.print(f"  - {suggestion}", markup=False)
