"""What the commands share: their common options, the error handler, metric gates and the
metrics report at the end of ``fit`` and ``eval``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated

import typer

from trainer.core.errors import EXIT_FAILURE, GateError, StorageError, TrainerError, UsageError

ConfigPath = Annotated[Path, typer.Argument(help="A YAML config file.", show_default=False)]
Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override a key: --set optimizer.learning_rate=0.05 (repeatable).",
    ),
]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
FailUnder = Annotated[
    list[str] | None,
    typer.Option(
        "--fail-under",
        metavar="METRIC=BAR",
        help="Exit 3 if a test metric is below a bar: accuracy=0.95 (repeatable).",
    ),
]
FailOver = Annotated[
    list[str] | None,
    typer.Option(
        "--fail-over",
        metavar="METRIC=BAR",
        help="Exit 3 if a test metric is above a bar: loss=0.3 (repeatable).",
    ),
]


def _json(what: str) -> object:
    """The --json flag of a command, its help naming what that command prints."""
    return Annotated[bool, typer.Option("--json", help=f"Print {what} as JSON on stdout.")]


# --json, per command: each prints its own result (progress and notes stay on stderr)
Json = _json("the test metrics")  # fit, eval
JsonInspection = _json("the data summary (columns, class balance, splits, problems)")
JsonLrFind = _json("the suggested rates and how the range test ended")
JsonSearch = _json("the search summary (leaderboard, trial counts, best config)")
JsonRuns = _json("one record per run")
JsonComparison = _json("the comparison (differing config values, metrics, best run)")
JsonPredictions = _json("the predictions summary (rows, output file, ids, class counts)")
JsonExport = _json("the export summary (file, size, largest difference from Keras)")


def handled(command):
    """Turn library exceptions into a message and a documented exit code, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from trainer.cli import console as report

        debug = kwargs.get("debug", False) or os.environ.get("TRAINER_DEBUG") == "1"
        if debug:
            os.environ["TRAINER_DEBUG"] = "1"
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except TrainerError as exc:
            report.error(exc, debug)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:  # an I/O failure no library call anticipated
            where = f"{exc.filename}: " if exc.filename else ""
            report.error(StorageError(f"{where}{exc.strerror or exc}"), debug)
            raise typer.Exit(StorageError.exit_code) from None
        except KeyboardInterrupt:
            report.error(RuntimeError("interrupted"), debug)
            raise typer.Exit(130) from None
        except Exception as exc:  # an internal error: say so plainly
            report.error(RuntimeError(f"internal error: {type(exc).__name__}: {exc}"), debug)
            raise typer.Exit(EXIT_FAILURE) from None

    return wrapper


def bars(pairs: list[str] | None, option: str) -> dict[str, float]:
    bars = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        try:
            bars[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise UsageError(f"{option} '{pair}': expected METRIC=NUMBER, e.g. accuracy=0.95")
    return bars


def check_gate_names(cfg, under: dict[str, float], over: dict[str, float]) -> None:
    """A UsageError, before anything is trained, for a gate naming a metric the run will not
    report (supervised families report the loss and ``metrics``; the others are checked when
    their metrics exist)."""
    from trainer.core.registry import did_you_mean
    from trainer.models import MODELS

    if MODELS.get(cfg.model.type).info.get("evaluate") is not None:
        return
    reported = ["loss", *cfg.metrics]
    for option, bars in (("--fail-under", under), ("--fail-over", over)):
        for name in bars:
            if name not in reported:
                raise UsageError(
                    f"{option} names '{name}', a metric this run will not report; "
                    f"{did_you_mean(name, reported)}",
                    hint="name a test metric of the run (set `metrics` in the config to add one)",
                )


def gate(metrics: dict, under: dict[str, float], over: dict[str, float]) -> None:
    from trainer.evaluation.metrics import check_gates

    failures = check_gates(metrics["test"], under, over)
    if failures:
        raise GateError("metric gate failed: " + "; ".join(failures))


def finish(metrics: dict, title: str, json_output: bool, under: dict[str, float],
            over: dict[str, float], diagnosis: dict | None = None,
            saved_in: Path | None = None) -> None:  # fmt: skip
    """Print the metrics (and diagnosis), say where the run is, then apply the gates."""
    from trainer.cli import console as report

    if json_output:
        report.print_json(metrics)
    else:
        report.metrics_report(metrics, title)
        if diagnosis:
            report.diagnosis(diagnosis)
    if saved_in is not None:
        report.note(f"run saved in {saved_in}  (trainer eval {saved_in})")
    gate(metrics, under, over)
