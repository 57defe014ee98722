"""The command line: thin commands that parse, call the library and hand results to report.

Exit codes (see trainer.core.errors): 0 success; 1 failure while running; 2 bad config or usage
(nothing written); 3 metric gate not met; 4 data error; 5 loss or weights non-finite; 6 cannot
write the run directory; 130 / 143 interrupted by SIGINT / SIGTERM after writing a checkpoint.
TensorFlow is imported only by commands that touch a model (fit, eval).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from trainer.cli.options import (
    ConfigPath,
    Debug,
    FailOver,
    FailUnder,
    Json,
    JsonComparison,
    JsonExport,
    JsonInspection,
    JsonLrFind,
    JsonPredictions,
    JsonRuns,
    JsonSearch,
    Overrides,
    bars,
    check_gate_names,
    finish,
    handled,
)
from trainer.core.errors import EXIT_USAGE, TrainerError, UsageError
from trainer.training import saved

app = typer.Typer(
    name="trainer",
    help="Train and evaluate Keras models from validated YAML configs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check, show and describe configs (no TensorFlow).",
                         no_args_is_help=True)  # fmt: skip
app.add_typer(config_app, name="config")


@app.command()
@handled
def fit(
    config: Annotated[
        Path | None, typer.Argument(help="A YAML config file (optional with --resume).")
    ] = None,
    overrides: Overrides = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(help="Write the run exactly here; an interrupted run there is resumed."),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue an interrupted run from its newest checkpoint.")
    ] = None,
    allow_config_change: Annotated[
        bool,
        typer.Option(
            "--allow-config-change",
            help="Resume even though the config differs from the saved one.",
        ),
    ] = False,
    runs_root: Annotated[Path, typer.Option(help="Parent of <name>-<timestamp>/ runs.")] = Path(
        "runs"
    ),
    json_output: Json = False,
    fail_under: FailUnder = None,
    fail_over: FailOver = None,
    debug: Debug = False,
) -> None:
    """Train a model from CONFIG, print its test metrics and write a run directory."""
    from trainer.cli import console as report
    from trainer.cli.progress import progress
    from trainer.workflows.fitting import fit_or_resume

    under, over = bars(fail_under, "--fail-under"), bars(fail_over, "--fail-over")
    done = fit_or_resume(config, overrides or [], run_dir, resume, allow_config_change,
                         runs_root, progress(),
                         check=lambda cfg: check_gate_names(cfg, under, over))  # fmt: skip
    if done.complete_before:
        report.note(f"run '{done.run_dir}' is complete; nothing to do")
    saved_in = None if done.complete_before else done.run_dir
    finish(done.metrics, f"{done.cfg.name}: test metrics", json_output, under, over,
            done.diagnosis, saved_in)  # fmt: skip


@app.command("eval")
@handled
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run directory written by `trainer fit`.")],
    json_output: Json = False,
    fail_under: FailUnder = None,
    fail_over: FailOver = None,
    debug: Debug = False,
) -> None:
    """Reload a saved run, recompute its test metrics and print the same report."""
    under, over = bars(fail_under, "--fail-under"), bars(fail_over, "--fail-over")
    if run.exists() and not run.is_dir():
        raise UsageError(
            f"'{run}' is a file, not a run directory",
            hint=f"`trainer eval` re-evaluates a run written by `trainer fit`; to train from "
            f"this config run `trainer fit {run}`",
        )
    if not run.is_dir():
        raise UsageError(f"run directory '{run}' does not exist",
                         hint="list the runs with `trainer runs list`")  # fmt: skip

    cfg, metrics = saved.evaluate_run(run)
    finish(metrics, f"{cfg.name}: test metrics (re-evaluated)", json_output, under, over)


@app.command("report")
@handled
def html_report(
    run: Annotated[Path, typer.Argument(help="A run directory written by `trainer fit`.")],
    output: Annotated[
        Path | None, typer.Option(help="Where to write the page (default: RUN/report.html).")
    ] = None,
    debug: Debug = False,
) -> None:
    """Write one self-contained HTML page of a run: pictures, metrics, config, environment."""
    from trainer.cli import console as report
    from trainer.results import html_report as page

    report.print_text(str(page.write(run, output)))


@config_app.command("validate")
@handled
def config_validate(
    configs: Annotated[list[Path], typer.Argument(help="Config files to check.")],
    overrides: Overrides = None,
    debug: Debug = False,
) -> None:
    """Check configs against the schema; exit 2 if any is invalid."""
    from trainer.cli import console as report
    from trainer.config.loading import load_config

    failed = 0
    for path in configs:
        try:
            load_config(path, overrides or [])
            report.print_text(f"ok  {path}")
        except TrainerError as exc:
            failed += 1
            report.error(exc)
    if failed:
        raise typer.Exit(EXIT_USAGE)


@config_app.command("show")
@handled
def config_show(config: ConfigPath, overrides: Overrides = None, debug: Debug = False) -> None:
    """Print the resolved config, every default filled in."""
    from trainer.cli import console as report
    from trainer.config.loading import load_config, to_yaml

    report.print_text(to_yaml(load_config(config, overrides or [])))


@config_app.command("schema")
@handled
def config_schema(debug: Debug = False) -> None:
    """Print the config's JSON Schema (for editor completion and checking)."""
    from trainer.cli import console as report
    from trainer.config.schema import json_schema

    report.print_json(json_schema())


datasets_app = typer.Typer(help="List datasets, or inspect a config's data (no TensorFlow).",
                           invoke_without_command=True)  # fmt: skip
app.add_typer(datasets_app, name="datasets")


@datasets_app.callback()
def datasets_main(ctx: typer.Context) -> None:
    """List the datasets and whether each is available offline on this machine."""
    if ctx.invoked_subcommand is None:
        list_datasets()


@handled
def list_datasets(debug: bool = False) -> None:
    from trainer.cli import console as report
    from trainer.datasets import DATASETS

    rows = []
    for entry in DATASETS.entries():
        task = entry.info.get("task") or entry.params().task()
        available = entry.info.get("available", lambda: False)()
        rows.append({
            "name": entry.name,
            "task": task,
            "offline": "yes" if available else "download",
            "description": entry.description,
        })  # fmt: skip
    report.datasets_table(rows)


@datasets_app.command("inspect")
@handled
def datasets_inspect(
    config: ConfigPath,
    overrides: Overrides = None,
    json_output: JsonInspection = False,
    debug: Debug = False,
) -> None:
    """Rows, columns and types, class balance, missing values and split sizes, without training."""
    from trainer.cli import console as report
    from trainer.config.loading import load_config
    from trainer.datasets.inspect import inspect

    cfg = load_config(config, overrides or [])
    summary = inspect(cfg.dataset, seed=cfg.seed)
    if json_output:
        report.print_json(summary)
    else:
        report.inspection(summary)
    if summary.get("problems"):
        raise UsageError("the data has problems that would stop training (listed above)")


@app.command("lr-find")
@handled
def lr_find(
    config: ConfigPath,
    overrides: Overrides = None,
    output: Annotated[
        Path | None, typer.Option(help="Write here (default: runs/<name>-lrfind-<time>/).")
    ] = None,
    steps: Annotated[int, typer.Option(help="Optimizer steps, one rate each.")] = 100,
    min_lr: Annotated[float, typer.Option(help="The first learning rate.")] = 1e-7,
    max_lr: Annotated[float, typer.Option(help="The last learning rate.")] = 10.0,
    runs_root: Annotated[Path, typer.Option(help="Parent of the default output.")] = Path("runs"),
    json_output: JsonLrFind = False,
    debug: Debug = False,
) -> None:
    """Learning-rate range test: plot loss against an exponentially growing rate, suggest one."""
    from trainer.cli import console as report
    from trainer.config.loading import load_config
    from trainer.results.runs import new_run_dir
    from trainer.workflows.lrfind import check_settings

    cfg = load_config(config, overrides or [])
    check_settings(cfg, steps, min_lr, max_lr)
    target = new_run_dir(cfg.model_copy(update={"name": f"{cfg.name}-lrfind"}), runs_root, output)
    from trainer.cli.progress import progress
    from trainer.workflows.lrfind import range_test

    summary = range_test(cfg, target, progress(), steps, min_lr, max_lr).summary()
    if json_output:
        report.print_json(summary)
    else:
        report.lr_find(summary)


@app.command()
@handled
def tune(
    config: ConfigPath,
    space: Annotated[Path, typer.Option(help="The search space: dotted keys -> ranges/choices.")],
    run_dir: Annotated[Path, typer.Option(help="The search's directory; rerun to resume.")],
    trials: Annotated[int, typer.Option(help="Trials to finish in all (resumes count).")] = 20,
    overrides: Overrides = None,
    sampler: Annotated[str, typer.Option(help="grid, random or tpe (Bayesian).")] = "tpe",
    folds: Annotated[int, typer.Option(help="k-fold cross-validation per trial (0: off).")] = 0,
    metric: Annotated[str, typer.Option(help="The objective: an epoch-logged name.")] = "val_loss",
    direction: Annotated[str, typer.Option(help="auto, minimize or maximize.")] = "auto",
    prune: Annotated[bool, typer.Option(help="Stop trials behind the median early.")] = True,
    storage: Annotated[
        str | None, typer.Option(help="A shared Optuna database URL (default: RUN_DIR/study.db).")
    ] = None,
    json_output: JsonSearch = False,
    debug: Debug = False,
) -> None:
    """Search hyperparameters with Optuna; write a leaderboard, best.yaml and a plot."""
    from trainer.cli import console as report
    from trainer.workflows.space import read_space
    from trainer.workflows.tune import Settings, resolve

    settings = resolve(Settings(config, overrides or [], read_space(space), trials, metric,
                                direction, sampler, folds, prune, storage))  # fmt: skip
    from trainer.cli.progress import QuietProgress
    from trainer.workflows.tune import search

    summary = search(settings, run_dir, QuietProgress, report.tune_trial)
    if json_output:
        report.print_json(summary)
    else:
        report.leaderboard(summary)


runs_app = typer.Typer(help="List and compare run directories (no TensorFlow).",
                       no_args_is_help=True)  # fmt: skip
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
@handled
def runs_list(
    root: Annotated[Path, typer.Argument(help="The folder that holds the runs.")] = Path("runs"),
    json_output: JsonRuns = False,
    debug: Debug = False,
) -> None:
    """Each run under ROOT: date, status, model, dataset, key test metric, diagnosis."""
    from trainer.cli import console as report
    from trainer.results.runs import list_runs

    _json_or(list_runs(root), json_output, lambda found: report.runs_table(found, root))


@runs_app.command("compare")
@handled
def runs_compare(
    runs: Annotated[list[Path], typer.Argument(help="Run directories written by `trainer fit`.")],
    json_output: JsonComparison = False,
    debug: Debug = False,
) -> None:
    """The config values that differ between runs, and their test metrics side by side."""
    from trainer.cli import console as report
    from trainer.results.runs import compare

    _json_or(compare(runs), json_output, report.runs_comparison)


def _json_or(data, json_output: bool, show) -> None:
    """Print ``data`` as JSON with --json, else hand it to its report function."""
    from trainer.cli import console as report

    if json_output:
        report.print_json(data)
    else:
        show(data)


@app.command(
    help="Predict new data with a run's model, through the transforms the run saved.\n\n"
    "Each output row's id is the input CSV's own id column (an id column the model does not "
    "read, or the one --id-column names), an image's path, or else the row's 0-based index "
    "among the data rows (the header and blank lines not counted)."
)
@handled
def predict(
    run: Annotated[Path, typer.Argument(help="A run directory written by `trainer fit`.")],
    input_path: Annotated[
        Path,
        typer.Option(
            "--input",
            help="A table (.csv, .csv.gz, .parquet, a folder of .parquet files), "
            ".npy, .npz, or a folder of images.",
        ),  # fmt: skip
    ],
    output: Annotated[
        Path, typer.Option(help="predictions.csv, .npy or .npz (the suffix picks the format).")
    ],
    id_column: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="The input CSV's column to carry through as the id (default: its id column, "
            "if the model does not read it).",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace --output if it exists (else exit 2).")
    ] = False,
    json_output: JsonPredictions = False,
    debug: Debug = False,
) -> None:
    """Predict new data with a run's model, through the transforms the run saved."""
    from trainer.cli import console as report
    from trainer.workflows.predict import predict as run_predict

    summary = run_predict(run, input_path, output, id_column=id_column, overwrite=overwrite)
    for warning in summary["warnings"]:
        report.warn(warning)
    _json_or(summary, json_output, report.predictions)


@app.command("export")
@handled
def export_model(
    run: Annotated[Path, typer.Argument(help="A run directory written by `trainer fit`.")],
    format_name: Annotated[str, typer.Option("--format", help="saved_model, onnx or tflite.")],
    output: Annotated[Path, typer.Option(help="Where to write the export (must not exist).")],
    json_output: JsonExport = False,
    debug: Debug = False,
) -> None:
    """Export a run's model and check it against Keras on sample inputs (max |diff| <= 1e-5)."""
    from trainer.cli import console as report
    from trainer.workflows.export import check, export

    check(run, format_name, output)
    _json_or(export(run, format_name, output), json_output, report.exported)


def _version(value: bool) -> None:
    if value:
        from trainer import __version__

        typer.echo(f"trainer {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Train and evaluate Keras models from validated YAML configs."""


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    app()
