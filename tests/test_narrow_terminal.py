"""Every command reads on an 80-column terminal: its --help shows each option whole, and its
tables and reports keep every name and value a user needs (no '…', no line past 80)."""

import json
import re
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from trainer.cli import console as report
from trainer.cli.commands import app

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 80
runner = CliRunner()


def _commands(command=None, path=()):
    """(path, click command) of the app and every sub-command, groups included."""
    command = command or typer.main.get_command(app)
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands())


@pytest.fixture
def narrow(monkeypatch):
    """An 80-column terminal for Typer's help (COLUMNS) and for trainer's own consoles."""
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    monkeypatch.delenv("TERMINAL_WIDTH", raising=False)
    for console in (report.out, report.err):
        monkeypatch.setattr(console, "width", WIDTH)


def _readable(text: str, *whole: str) -> None:
    too_long = [line for line in text.splitlines() if len(line) > WIDTH]
    assert not too_long, "\n".join(too_long)
    assert "…" not in text, text
    for word in whole:
        assert re.search(rf"(?<![\w.-]){re.escape(word)}(?![\w-])", text), (word, text)


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: " ".join(p) or "trainer")
def test_every_help_shows_each_option_whole_at_80_columns(narrow, path):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0, result.output
    names = [n for p in COMMANDS[path].params for n in (*p.opts, *p.secondary_opts)]
    _readable(result.output, *(n for n in names if n.startswith("--")), *path)


def _json_help(path: tuple[str, ...]) -> str:
    (option,) = [p for p in COMMANDS[path].params if "--json" in p.opts]
    return option.help


@pytest.mark.parametrize(
    ("path", "what"),
    [
        (("fit",), "test metrics"),
        (("eval",), "test metrics"),
        (("predict",), "predictions summary"),
        (("export",), "export summary"),
        (("runs", "list"), "one record per run"),
        (("runs", "compare"), "comparison"),
        (("datasets", "inspect"), "data summary"),
        (("lr-find",), "suggested rates"),
        (("tune",), "search summary"),
    ],
)
def test_json_help_names_what_each_command_prints(path, what):
    assert what in _json_help(path)


def _run(root: Path, name: str, accuracy: float | None, verdict: str = "healthy") -> None:
    run = root / name
    run.mkdir(parents=True)
    config = {"name": name, "dataset": {"type": "synthetic_classification"}, "seed": 1,
              "model": {"type": "fnn", "units": [8]}, "optimizer": {"type": "adam",
              "learning_rate": 0.01 if accuracy != 0.95 else 0.001}}  # fmt: skip
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "environment.json").write_text(json.dumps({"started": "2026-11-22T12:00:00"}))
    if accuracy is not None:
        test = {"loss": 1 - accuracy, "accuracy": accuracy}
        (run / "metrics.json").write_text(json.dumps({"test": test}))
        (run / "model.keras").write_bytes(b"stand-in")
        (run / "diagnosis.json").write_text(json.dumps({"verdict": verdict}))


RUNS = {
    "csv-imbalanced-balanced-20261122-120000": 0.9,
    "fashion-mnist-cnn-20261122-130000": 0.95,
    "synthetic-interrupted": None,
}


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # short paths in the titles
    for name, accuracy in RUNS.items():
        _run(Path("runs"), name, accuracy, verdict="not_applicable" if accuracy == 0.9 else "")
    return Path("runs")


def test_runs_list_keeps_names_statuses_and_values_at_80_columns(narrow, runs):
    result = runner.invoke(app, ["runs", "list", str(runs)])
    assert result.exit_code == 0, result.output
    _readable(result.stdout, *RUNS, "complete", "interrupted", "0.9000", "0.9500", "accuracy")


def test_runs_list_at_80_columns_leaves_out_columns_rather_than_cutting_them(narrow, runs):
    for name in list(RUNS)[:2]:  # names of a usual length: a table of the columns that fit
        (runs / name).rename(runs / name.split("-2026")[0])
    result = runner.invoke(app, ["runs", "list", str(runs)])
    assert result.exit_code == 0, result.output
    _readable(result.stdout, "csv-imbalanced-balanced", "status", "diagnosis", "0.9500")
    assert "┃ run" in result.stdout and "left out to fit 80 columns: started" in result.stderr


def test_runs_compare_keeps_keys_names_and_values_at_80_columns(narrow, runs):
    result = runner.invoke(app, ["runs", "compare", *(str(runs / name) for name in RUNS)])
    assert result.exit_code == 0, result.output
    _readable(result.stdout, *RUNS, "optimizer.learning_rate", "0.001", "0.9500", "interrupted")


def test_datasets_list_and_inspect_keep_every_name_at_80_columns(narrow, monkeypatch):
    from trainer.datasets import DATASETS

    listing = runner.invoke(app, ["datasets"])
    assert listing.exit_code == 0, listing.output
    _readable(listing.stdout, *(entry.name for entry in DATASETS.entries()), "download")
    monkeypatch.chdir(ROOT)
    inspected = runner.invoke(app, ["datasets", "inspect", "configs/csv_imbalanced.yaml"])
    assert inspected.exit_code == 0, inspected.output
    _readable(inspected.stdout, "tenure", "contract", "categorical", "validation", "missing")


def test_the_leaderboard_keeps_every_searched_key_at_80_columns(narrow, capsys):
    params = {"optimizer.learning_rate": 0.00125, "model.units": [128, 64],
              "regularization.dropout": 0.2, "regularization.l2": 1.5e-05,
              "training.batch_size": 32}  # fmt: skip
    rows = [{"trial": i, "state": "complete", "value": 0.1 * i, "std": 0.01, "params": params}
            for i in range(3)]  # fmt: skip
    summary = {"leaderboard": rows, "metric": "val_loss", "direction": "minimize",
               "trials": {"complete": 3}, "best_config": "runs/tune/best.yaml"}  # fmt: skip
    report.leaderboard(summary)
    _readable(capsys.readouterr().out, *params, "0.00125", "[128, 64]", "0.2000 ± 0.0100")


def test_metrics_report_keeps_long_class_names_at_80_columns(narrow, capsys):
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
             "Sneaker", "Bag", "Ankle boot"]  # fmt: skip
    scores = {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 100}
    metrics = {"test": {"loss": 0.3, "accuracy": 0.9}, "class_names": names,
               "confusion_matrix": [[100 if i == j else 0 for j in range(10)] for i in range(10)],
               "per_class": {name: scores for name in names},
               "baseline": {"name": "majority", "test": {"accuracy": 0.1}}}  # fmt: skip
    report.metrics_report(metrics, "fashion: test metrics")
    _readable(capsys.readouterr().out, *names, "baseline: majority", "precision", "support")


def test_prose_reports_wrap_at_80_columns_and_keep_paths_whole(narrow, capsys):
    suggestions = ["set dataset.augmentation " * 6]
    report.diagnosis({"verdict": "overfitting", "summary": "validation loss rose " * 8,
                      "findings": [], "suggestions": suggestions})  # fmt: skip
    report.predictions({"rows": 3, "output": "out/predictions.csv", "id_column": "id",
                        "predicted": {f"class_{i}": i for i in range(12)}})  # fmt: skip
    report.exported({"format": "onnx", "output": "out/model.onnx", "bytes": 2048,
                     "samples": 8, "max_abs_diff": 3e-8, "tolerance": 1e-5})  # fmt: skip
    report.lr_find({"suggestion": 0.003, "minimum_tenth": 0.01, "steps_run": 100,
                    "stopped": "the loss diverged", "output": "runs/digits-lrfind"})  # fmt: skip
    text = capsys.readouterr().out
    _readable(text, "out/predictions.csv", "class_11:", "out/model.onnx", "dataset.augmentation")
    assert "\n    set dataset.augmentation" in text  # a wrapped suggestion keeps its indent
