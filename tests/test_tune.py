"""`trainer tune`: the search space is checked before anything runs; a search writes its
leaderboard, best config and plot; k-fold trials report mean and spread; a search killed
with SIGKILL resumes without repeating finished trials."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from trainer.cli.commands import app
from trainer.core.errors import ConfigError
from trainer.workflows.space import check_space, read_space

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

CONFIG = {
    "name": "tiny",
    "seed": 0,
    "dataset": {
        "type": "synthetic_classification",
        "samples": 240,
        "features": 4,
        "informative": 3,
        "classes": 3,
        "validation_split": 0.2,
    },
    "model": {"type": "fnn", "units": [8]},
    "optimizer": {"type": "adam", "learning_rate": 0.01},
    "training": {"epochs": 2, "batch_size": 32, "jit_compile": False},
    "metrics": ["accuracy"],
}


def _files(tmp_path, space: str, config=None):
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config or CONFIG))
    space_path = tmp_path / "space.yaml"
    space_path.write_text(space)
    return config_path, space_path


def _problems(tmp_path, space: str) -> str:
    config, space_path = _files(tmp_path, space)
    with pytest.raises(ConfigError) as caught:
        check_space(read_space(space_path), config, [])
    return str(caught.value)


def test_an_unknown_key_path_gets_the_line_and_a_did_you_mean(tmp_path):
    message = _problems(
        tmp_path, "model.units: {choices: [[8]]}\noptimizer.learnin_rate: {low: 0.001, high: 0.1}\n"
    )
    assert "space.yaml" in message and "line 2" in message
    assert "did you mean 'learning_rate'" in message


def test_a_value_of_the_wrong_type_is_named_with_its_line(tmp_path):
    message = _problems(
        tmp_path, "optimizer.learning_rate: {choices: [0.01]}\nmodel.units: {low: 8, high: 32}\n"
    )
    assert "line 2: model.units = 8: must be a valid list" in message
    assert "list" in message  # units is a list of layer widths


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("optimizer.learning_rate: {low: 0.1, hihg: 1}\n", "did you mean 'high'"),
        ("optimizer.learning_rate: {low: 0, high: 1, log: true}\n", "low > 0"),
        ("optimizer.learning_rate: {low: 1, high: 0.5}\n", "low must be below high"),
        ("optimizer.learning_rate: 0.1\n", "expected {low: A, high: B}"),
        ("model.units: {choices: []}\n", "non-empty list"),
        ("{}\n", "names no keys"),
    ],
)
def test_malformed_spaces_are_refused_with_the_line(tmp_path, space, message):
    _, space_path = _files(tmp_path, space)
    with pytest.raises(ConfigError) as caught:
        read_space(space_path)
    assert message in str(caught.value)


def _invoke(tmp_path, *options):
    """`trainer tune` on the files _files wrote, into tmp_path/search."""
    arguments = ["tune", str(tmp_path / "config.yaml"), "--space", str(tmp_path / "space.yaml")]
    return runner.invoke(app, [*arguments, "--run-dir", str(tmp_path / "search"), *options])


def test_cli_refuses_a_bad_space_and_an_unlogged_metric_before_anything_runs(tmp_path):
    _files(tmp_path, "optimizer.learning_rate: {low: 0.001, high: 0.1}\n")
    result = _invoke(tmp_path, "--metric", "val_acuracy")
    assert result.exit_code == 2
    assert "did you mean 'val_accuracy'" in result.output
    result = _invoke(tmp_path, "--sampler", "grid")
    assert result.exit_code == 2
    assert "grid search needs" in result.output
    assert not (tmp_path / "search").exists()


def test_grid_search_with_cross_validation_writes_leaderboard_best_config_and_plot(tmp_path):
    _files(tmp_path, "optimizer.learning_rate: {choices: [0.001, 0.05]}\n"
                     "model.units: {choices: [[8], [16, 8]]}\n")  # fmt: skip
    out = tmp_path / "search"
    result = _invoke(tmp_path, "--trials", "3", "--sampler", "grid", "--folds", "2",
                     "--metric", "val_accuracy", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["direction"] == "maximize"
    board = summary["leaderboard"]
    assert len(board) == 3
    seen = {(r["params"]["optimizer.learning_rate"], str(r["params"]["model.units"]))
            for r in board}  # fmt: skip
    assert len(seen) == 3, "grid search visits a point once"
    for r in board:
        if r["state"] == "complete":
            assert r["std"] is not None
            for fold in (1, 2):
                assert (Path(r["run_dir"]) / f"fold-{fold}" / "metrics.json").is_file()
    complete = [r["value"] for r in board if r["state"] == "complete"]
    assert complete == sorted(complete, reverse=True)  # best first
    best = summary["best"]
    assert (out / "search.png").stat().st_size > 1000
    assert (out / "leaderboard.csv").read_text().count("\n") == 4
    check = runner.invoke(app, ["config", "validate", str(out / "best.yaml")])
    assert check.exit_code == 0, check.output
    saved = yaml.safe_load((out / "best.yaml").read_text())
    assert saved["optimizer"]["learning_rate"] == best["params"]["optimizer.learning_rate"]
    assert saved["model"]["units"] == best["params"]["model.units"]


def _tune(tmp_path, out, trials, env=None):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "tune",
            str(tmp_path / "config.yaml"),
            "--space",
            str(tmp_path / "space.yaml"),
            "--run-dir",
            str(out),
            "--trials",
            str(trials),
            "--sampler",
            "random",
            "--no-prune",
            "--json",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_a_search_killed_midway_resumes_without_repeating_finished_trials(tmp_path):
    _files(tmp_path, "optimizer.learning_rate: {low: 0.001, high: 0.1, log: true}\n")
    out = tmp_path / "search"
    killed = _tune(tmp_path, out, 3, env={"TRAINER_TUNE_FAULT": "sigkill@1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    before = {
        p.name: (p / "metrics.json").stat().st_mtime_ns
        for p in (out / "trials").iterdir()
        if (p / "metrics.json").is_file()
    }
    assert sorted(before) == ["000"]

    resumed = _tune(tmp_path, out, 3)
    assert resumed.returncode == 0, resumed.stderr
    assert "trial 1 was interrupted" in resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["trials"]["complete"] == 3
    for name, mtime in before.items():  # finished trials were not run again
        assert (out / "trials" / name / "metrics.json").stat().st_mtime_ns == mtime
    board = {r["trial"]: r for r in summary["leaderboard"]}
    assert board[1]["state"] == "interrupted"  # not a result ...
    retried = [r for r in board.values() if r["trial"] > 1]
    assert board[1]["params"] in [r["params"] for r in retried]  # ... its values ran again
    assert sorted(board) == [0, 1, 2, 3]

    again = _tune(tmp_path, out, 3)  # complete: nothing more runs
    assert again.returncode == 0
    assert json.loads(again.stdout)["trials"]["complete"] == 3


def test_a_changed_space_is_refused_on_resume(tmp_path):
    _, space = _files(tmp_path, "optimizer.learning_rate: {choices: [0.01]}\n")
    assert _invoke(tmp_path, "--trials", "1", "--sampler", "grid").exit_code == 0
    space.write_text("optimizer.learning_rate: {choices: [0.02]}\n")
    result = _invoke(tmp_path, "--trials", "1", "--sampler", "grid")
    assert result.exit_code == 2
    assert "different settings: space" in result.output


SPACES = sorted((ROOT / "configs" / "spaces").glob("*.yaml"))


def test_a_search_space_is_shipped():
    assert SPACES


@pytest.mark.parametrize("space", SPACES, ids=lambda p: p.name)
def test_shipped_space_files_fit_their_configs(space):
    check_space(read_space(space), ROOT / "configs" / space.name, [])  # spaces/x.yaml: x.yaml


class _Trial:
    """Optuna's trial, as TrialProgress uses it: report values, ask whether to prune."""

    number = 7

    def __init__(self, prune_at: int) -> None:
        self.reported, self.prune_at = [], prune_at

    def report(self, value, step):
        self.reported.append((step, value))

    def should_prune(self):
        return len(self.reported) >= self.prune_at


def test_each_epoch_is_reported_and_a_trial_behind_is_pruned():
    import optuna

    from trainer.cli.progress import QuietProgress
    from trainer.workflows.tune import TrialProgress

    trial = _Trial(prune_at=2)
    progress = TrialProgress(QuietProgress(), trial, "val_loss", offset=10)  # a second fold
    progress.epoch(1, 5, {"loss": 0.9, "val_loss": 1.0}, 0.1)
    with pytest.raises(optuna.TrialPruned):
        progress.epoch(2, 5, {"loss": 0.8, "val_loss": 1.2}, 0.1)
    assert trial.reported == [(11, 1.0), (12, 1.2)]


def _collision(calls, fail: int):
    """An RDBStorage that fails ``fail`` times as a process losing the table-creation race."""
    from sqlalchemy.exc import IntegrityError

    def storage(url, **kwargs):
        calls.append(url)
        if len(calls) <= fail:
            raise IntegrityError("INSERT INTO alembic_version", {}, Exception("UNIQUE failed"))
        return "storage"

    return storage


def test_opening_a_new_shared_study_retries_the_table_creation_race(monkeypatch):
    import optuna.storages

    from trainer.core.errors import RunError
    from trainer.workflows import tune

    monkeypatch.setattr(tune, "STORAGE_BACKOFF_SECONDS", 0.001)
    calls = []
    monkeypatch.setattr(optuna.storages, "RDBStorage", _collision(calls, fail=2))
    assert tune._storage("sqlite:///study.db") == "storage"
    assert len(calls) == 3

    calls = []  # still colliding after every attempt: a clear error, the password hidden
    monkeypatch.setattr(optuna.storages, "RDBStorage", _collision(calls, fail=99))
    with pytest.raises(RunError) as caught:
        tune._storage("postgresql://me:secret@db/optuna")
    assert len(calls) == tune.STORAGE_ATTEMPTS
    message = str(caught.value)
    assert f"after {tune.STORAGE_ATTEMPTS} attempts: UNIQUE failed" in message
    assert "secret" not in message and "db/optuna" in message
