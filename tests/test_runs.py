"""`trainer runs list` and `trainer runs compare` on run directories made by hand (no training)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from trainer.cli.commands import app
from trainer.results.runs import compare, list_runs, status

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

BASE = {
    "name": "digits",
    "dataset": {"type": "digits", "validation_split": 0.2},
    "model": {"type": "fnn", "units": [16]},
    "optimizer": {"type": "adam", "learning_rate": 0.01},
    "training": {"epochs": 3},
}


def make_run(root: Path, name: str, started: str, complete: bool = True, accuracy=0.9,
             **changes) -> Path:  # fmt: skip
    """A run directory as `trainer fit` leaves it (the files `runs` reads)."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({**BASE, **changes}))
    training = {"epochs_run": 3}
    (run / "environment.json").write_text(json.dumps({"started": started, "training": training}))
    if complete:
        test = {"loss": 1 - accuracy, "accuracy": accuracy, "f1": accuracy - 0.01}
        (run / "metrics.json").write_text(json.dumps({"task": "multiclass", "test": test}))
        (run / "model.keras").write_bytes(b"stand-in")
        (run / "diagnosis.json").write_text(json.dumps({"verdict": "healthy"}))
    else:
        (run / "checkpoints").mkdir()
    return run


@pytest.fixture
def runs_root(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "b-late", "2026-11-22T12:00:00", accuracy=0.95,
             optimizer={"type": "adam", "learning_rate": 0.001})  # fmt: skip
    make_run(root, "a-early", "2026-11-22T10:00:00")
    make_run(root, "c-cut", "2026-11-22T13:00:00", complete=False)
    (root / "not-a-run").mkdir()
    (root / "notes.txt").write_text("hello")
    return root


def test_list_shows_each_run_with_status_model_dataset_and_metric(runs_root):
    found = list_runs(runs_root)
    assert [r["run"] for r in found] == ["a-early", "b-late", "c-cut"]  # by start time
    first, second, cut = found
    assert first["status"] == "complete" and cut["status"] == "interrupted"
    assert (first["model"], first["dataset"]) == ("fnn", "digits")
    assert (second["metric"], second["value"]) == ("accuracy", 0.95)
    assert cut["metric"] is None and first["verdict"] == "healthy"


def test_list_command_prints_a_table_and_json(runs_root, monkeypatch):
    from trainer.cli import console as report

    monkeypatch.setattr(report.out, "width", 160)  # one line per run, as on a wide terminal
    result = runner.invoke(app, ["runs", "list", str(runs_root)])
    assert result.exit_code == 0, result.output
    for text in ("a-early", "b-late", "c-cut", "complete", "interrupted", "accuracy", "0.9500"):
        assert text in result.stdout
    assert "not-a-run" not in result.stdout
    as_json = runner.invoke(app, ["runs", "list", str(runs_root), "--json"])
    assert [r["run"] for r in json.loads(as_json.stdout)] == ["a-early", "b-late", "c-cut"]


def test_list_of_a_missing_folder_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["runs", "list", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "is not a directory" in result.output


def test_a_running_run_is_told_from_an_interrupted_one(tmp_path):
    import socket

    run = make_run(tmp_path, "live", "2026-11-22T10:00:00", complete=False)
    (run / ".lock").write_text(f"pid {os.getpid()} on {socket.gethostname()}")
    assert status(run) == "running"
    (run / ".lock").write_text(f"pid {2**22 + 17} on {socket.gethostname()}")  # no such process
    assert status(run) == "interrupted"


def test_compare_shows_differing_values_and_metrics_side_by_side(runs_root):
    result = compare([runs_root / "a-early", runs_root / "b-late"])
    assert result["runs"] == ["a-early", "b-late"]
    assert result["config"] == {"optimizer.learning_rate": [0.01, 0.001]}  # defaults filled
    assert result["metrics"]["accuracy"] == [0.9, 0.95]
    assert result["status"] == ["complete", "complete"]


def test_compare_marks_the_best_run_per_metric_in_its_direction(runs_root):
    result = compare([runs_root / "a-early", runs_root / "b-late", runs_root / "c-cut"])
    assert result["best"]["accuracy"] == 1  # higher is better
    assert result["best"]["loss"] == 1  # lower is better
    gan = make_run(runs_root, "gan", "2026-11-22T14:00:00")
    (gan / "metrics.json").write_text(json.dumps({"test": {"d_loss": 0.6, "loss": 0.2}}))
    other = compare([runs_root / "a-early", gan])
    assert other["best"]["d_loss"] is None  # no direction, no best
    assert other["best"]["loss"] == 0


def test_compare_command_prints_both_tables_with_the_best_marked(runs_root):
    args = ["runs", "compare", str(runs_root / "a-early"), str(runs_root / "b-late")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "optimizer.learning_rate" in result.stdout and "0.001" in result.stdout
    assert "accuracy" in result.stdout and "0.9500" in result.stdout
    assert "dataset.type" not in result.stdout  # equal values are left out
    as_json = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert as_json["metrics"]["loss"] == pytest.approx([0.1, 0.05])


def test_compare_of_an_interrupted_run_leaves_its_metrics_empty(runs_root):
    result = compare([runs_root / "a-early", runs_root / "c-cut"])
    assert result["metrics"]["accuracy"] == [0.9, None]
    assert result["config"] == {}


@pytest.mark.parametrize(
    ("which", "fragment"),
    [("nowhere", "does not exist"), ("not-a-run", "has no config.yaml")],
)
def test_compare_names_a_path_that_is_not_a_run(runs_root, which, fragment):
    result = runner.invoke(app, ["runs", "compare", str(runs_root / "a-early"),
                                 str(runs_root / which)])  # fmt: skip
    assert result.exit_code == 2
    assert fragment in result.output and which in result.output
    assert "trainer runs list" in result.output


def test_a_config_an_older_trainer_wrote_is_compared_as_written(runs_root):
    old = make_run(runs_root, "old", "2026-01-01T00:00:00", retired_key=True)
    result = compare([runs_root / "a-early", old])
    assert result["config"]["retired_key"] == ["(absent)", True]


def test_runs_commands_do_not_import_tensorflow(runs_root):
    code = (
        "import sys; from typer.testing import CliRunner; from trainer.cli.commands import app; "
        f"r = CliRunner().invoke(app, ['runs', 'list', {str(runs_root)!r}]); "
        "assert r.exit_code == 0, r.output; "
        f"r = CliRunner().invoke(app, ['runs', 'compare', {str(runs_root / 'a-early')!r}, "
        f"{str(runs_root / 'b-late')!r}]); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
