"""TensorBoard logs, MLflow tracking and the diagnosis, read back from a real run and store."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from trainer.cli.commands import app
from trainer.config.loading import load_config
from trainer.core.errors import ConfigError
from trainer.results.diagnosis import VERDICTS

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
mlflow = pytest.importorskip("mlflow")

EPOCHS = 3
NUMBERS = list(range(1, EPOCHS + 1))  # epochs are counted from 1 in every output
CONFIG = {
    "name": "tracked",
    "seed": 1,
    "dataset": {"type": "digits", "limit": 200, "validation_split": 0.2},
    "model": {"type": "fnn", "units": [16]},
    "optimizer": {"type": "adam", "learning_rate": 0.01},
    "training": {"epochs": EPOCHS, "batch_size": 32, "steps_per_execution": 1},
    "tracking": {
        "tensorboard": {"histogram_freq": 1},
        "mlflow": {"uri": "sqlite:///store/mlflow.db", "experiment": "tests"},
    },
}


def events(directory: Path) -> dict[str, list[int]]:
    """Every tag in a TensorBoard log directory -> the steps it was written at."""
    import tensorflow as tf

    found: dict[str, list[int]] = {}
    for path in sorted(directory.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            if event.graph_def:
                found.setdefault("(op graph)", []).append(event.step)
            for value in event.summary.value:
                found.setdefault(value.tag, []).append(event.step)
    return found


def client(workspace: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{workspace / 'store' / 'mlflow.db'}")


def mlflow_run(workspace: Path, run_dir: Path):
    run_id = json.loads((run_dir / "tracking.json").read_text())["mlflow"]["run_id"]
    return client(workspace).get_run(run_id)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One tracked run, trained in this process from a config with a relative store path."""
    workspace = tmp_path_factory.mktemp("tracked")
    (workspace / "store").mkdir()
    (workspace / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    before = Path.cwd()
    os.chdir(workspace)  # the store path in the config is relative to where `fit` runs
    try:
        result = runner.invoke(app, ["fit", "config.yaml", "--run-dir", "run"])
    finally:
        os.chdir(before)
    assert result.exit_code == 0, result.output
    return workspace, workspace / "run", result


def test_tensorboard_has_each_epoch_once_in_one_file_per_split(tracked):
    _, run, _ = tracked
    for split in ("train", "validation"):
        assert len(list((run / "tensorboard" / split).glob("events.out.*"))) == 1, split
    train, validation = (events(run / "tensorboard" / s) for s in ("train", "validation"))
    for tag in ("epoch_loss", "epoch_accuracy", "epoch_learning_rate"):
        assert train[tag] == NUMBERS, tag
    for tag in ("epoch_loss", "epoch_accuracy"):
        assert validation[tag] == NUMBERS, tag


def test_tensorboard_has_the_graph_once_and_the_requested_histograms(tracked):
    _, run, _ = tracked
    train = events(run / "tensorboard" / "train")
    assert train["keras"] == [0]  # the conceptual graph (TensorBoard's Graphs tab)
    assert train["(op graph)"] == [0]  # the forward pass's ops
    histograms = [tag for tag in train if tag.endswith("/histogram")]
    assert any("kernel" in tag for tag in histograms)
    assert all(train[tag] == NUMBERS for tag in histograms)


def test_tensorboard_scalars_match_history(tracked):
    import tensorflow as tf

    _, run, _ = tracked
    with open(run / "history.csv") as handle:
        history = [float(row["loss"]) for row in csv.DictReader(handle)]
    path = next((run / "tensorboard" / "train").glob("events.out.*"))
    logged = [
        float(tf.make_ndarray(value.tensor))
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
        if value.tag == "epoch_loss"
    ]
    assert logged == pytest.approx(history, rel=1e-6)


def test_every_output_numbers_the_same_epoch_alike(tracked):
    """history.csv, TensorBoard, MLflow and the console all count epochs from 1."""
    workspace, run, result = tracked
    with open(run / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == NUMBERS
    assert events(run / "tensorboard" / "train")["epoch_loss"] == NUMBERS
    found = mlflow_run(workspace, run)
    losses = client(workspace).get_metric_history(found.info.run_id, "loss")
    by_step = {m.step: m.value for m in losses}
    assert {int(row["epoch"]): float(row["loss"]) for row in rows} == pytest.approx(by_step)
    printed = [line.split()[1] for line in result.output.splitlines() if line.startswith("epoch ")]
    assert printed == [f"{n}/{EPOCHS}" for n in NUMBERS]


def test_mlflow_run_has_params_epoch_metrics_test_metrics_and_artifacts(tracked):
    workspace, run, _ = tracked
    found = mlflow_run(workspace, run)
    assert found.info.status == "FINISHED"
    assert found.info.run_name == "run"
    experiment = client(workspace).get_experiment(found.info.experiment_id)
    assert experiment.name == "tests"
    params = found.data.params
    assert params["optimizer.learning_rate"] == "0.01"
    assert params["model.units"] == "[16]"
    assert params["dataset.type"] == "digits"
    history = client(workspace).get_metric_history(found.info.run_id, "val_loss")
    assert sorted(m.step for m in history) == NUMBERS
    with open(run / "history.csv") as handle:
        expected = [float(row["val_loss"]) for row in csv.DictReader(handle)]
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(expected)
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert found.data.metrics["test_accuracy"] == pytest.approx(test["accuracy"])
    diagnosis = json.loads((run / "diagnosis.json").read_text())
    assert found.data.tags["diagnosis"] == diagnosis["verdict"]
    artifacts = {a.path for a in client(workspace).list_artifacts(found.info.run_id)}
    assert {"config.yaml", "metrics.json", "history.csv", "diagnosis.json", "model"} <= artifacts
    model = client(workspace).list_artifacts(found.info.run_id, "model")
    assert [a.path for a in model] == ["model/model.keras"]
    assert (workspace / "store" / "mlartifacts").is_dir()  # beside the database, not in cwd


def test_fit_saves_and_prints_the_diagnosis(tracked):
    _, run, result = tracked
    diagnosis = json.loads((run / "diagnosis.json").read_text())
    assert diagnosis["verdict"] in VERDICTS
    assert diagnosis["epochs"] == EPOCHS
    assert "diagnosis:" in result.stdout
    assert diagnosis["summary"][:40] in result.stdout.replace("\n", " ")
    assert "diagnosis" not in json.loads((run / "metrics.json").read_text())  # eval's object


def test_resuming_a_complete_run_shows_its_saved_diagnosis(tracked):
    _, run, _ = tracked
    result = runner.invoke(app, ["fit", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    assert "complete; nothing to do" in result.output
    verdict = json.loads((run / "diagnosis.json").read_text())["verdict"]
    assert f"diagnosis: {verdict.replace('fitting', '-fitting')}" in result.stdout


def test_interrupted_then_resumed_run_logs_each_epoch_once(tmp_path):
    """SIGTERM in epoch 2, then a resume with a changed learning rate (allowed): TensorBoard
    and MLflow hold epochs 1, 2, 3 once, and the MLflow run is tagged with the change."""
    (tmp_path / "store").mkdir()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}

    def trainer(*args, fault=None):
        extra = {"TRAINER_FAULT": fault} if fault else {}
        return subprocess.run([sys.executable, "-m", "trainer", *args], cwd=tmp_path,
                              env={**env, **extra}, capture_output=True, text=True,
                              timeout=300)  # fmt: skip

    stopped = trainer("fit", "config.yaml", "--run-dir", "run", fault="sigterm@7")  # 5 steps/epoch
    assert stopped.returncode == 143, stopped.stderr
    run = tmp_path / "run"
    assert mlflow_run(tmp_path, run).info.status == "KILLED"
    assert events(run / "tensorboard" / "train")["epoch_loss"] == [1]
    changed = {**CONFIG, "optimizer": {"type": "adam", "learning_rate": 0.005}}
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed))
    resumed = trainer("fit", "changed.yaml", "--run-dir", "run", "--allow-config-change")
    assert resumed.returncode == 0, resumed.stderr
    for split in ("train", "validation"):
        assert events(run / "tensorboard" / split)["epoch_loss"] == NUMBERS, split
    assert events(run / "tensorboard" / "train")["(op graph)"] == [0]  # not again on resume
    found = mlflow_run(tmp_path, run)
    assert found.info.status == "FINISHED"
    history = client(tmp_path).get_metric_history(found.info.run_id, "loss")
    assert sorted(m.step for m in history) == NUMBERS
    with open(run / "history.csv") as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == NUMBERS
    assert len(client(tmp_path).search_runs([found.info.experiment_id])) == 1
    assert found.data.params["optimizer.learning_rate"] == "0.01"  # MLflow keeps the first
    assert found.data.tags["trainer.resumed_with.optimizer.learning_rate"] == "0.01 -> 0.005"


def test_tensorboard_can_be_turned_off(tmp_path):
    from trainer.training.tracking import Tracker

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "tracking": {"tensorboard": False}}))
    cfg = load_config(path)
    assert cfg.tracking.tensorboard.enabled is False and cfg.tracking.mlflow is None
    assert Tracker(cfg, tmp_path / "run", resume=False).start(model=None) == []


def test_only_the_chief_of_a_distributed_run_tracks(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "tracking": {"mlflow": "sqlite:///never.db"}}))
    from trainer.training.tracking import Tracker

    worker = Tracker(load_config(path), tmp_path / "run", resume=False, chief=False)
    assert worker.mlflow is None and worker.start(model=None) == []
    assert not (Path.cwd() / "never.db").exists()


def test_mlflow_shorthand_and_unknown_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "tracking": {"mlflow": "sqlite:///x.db"}}))
    assert load_config(path).tracking.mlflow.uri == "sqlite:///x.db"
    path.write_text(yaml.safe_dump({**CONFIG, "tracking": {"mlflow": {"url": "x"}}}))
    with pytest.raises(ConfigError, match=r"tracking\.mlflow\.url"):
        load_config(path)


def test_mlflow_requested_but_not_installed_is_a_config_error(tmp_path, monkeypatch):
    import importlib.util

    from trainer.training import tracking

    real = importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real(name, *a))  # fmt: skip
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    result = runner.invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 2
    assert "tracking.mlflow" in result.output and "mlflow is not installed" in result.output
    assert "pip install 'trainer[mlflow]'" in result.output


def test_an_unusable_mlflow_store_fails_before_anything_is_written(tmp_path):
    data = {**CONFIG, "tracking": {"mlflow": {"uri": "bogus://nowhere"}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["fit", str(tmp_path / "config.yaml"), "--run-dir",
                                 str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "cannot use the MLflow store 'bogus://nowhere'" in result.output
    assert not (tmp_path / "run").exists()


# -- progress: a live bar on a terminal, plain lines in CI ----------------------------------
def test_fit_outside_a_terminal_prints_one_plain_line_per_epoch(tracked):
    _, _, result = tracked
    lines = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == [f"{e}/{EPOCHS}" for e in range(1, 4)]
    assert all("loss" in line and "val_loss" in line for line in lines)
    assert "\x1b[" not in result.stderr  # no cursor movement or colour codes


@pytest.mark.parametrize(("terminal", "ci", "live"), [(True, "", True), (True, "true", False),
                                                      (False, "", False)])  # fmt: skip
def test_progress_is_live_only_on_an_interactive_terminal(monkeypatch, terminal, ci, live):
    from rich.console import Console

    from trainer.cli import console as report
    from trainer.cli import progress as shown

    monkeypatch.setattr(report, "err", Console(force_terminal=terminal, stderr=True))
    monkeypatch.setenv("CI", ci)
    assert isinstance(shown.progress(), shown.RichProgress) is live


def test_the_live_bar_ends_with_the_same_epoch_lines(monkeypatch):
    import io

    from rich.console import Console

    from trainer.cli import progress as shown

    screen = io.StringIO()
    bar = shown.RichProgress(Console(file=screen, force_terminal=True, width=100))
    bar.start(epochs=2, steps_per_epoch=4)
    for epoch in (1, 2):
        for step in range(1, 5):
            bar.step(step)
        bar.epoch(epoch, 2, {"loss": 0.5 / epoch}, seconds=0.1)
    bar.finish()
    text = screen.getvalue()
    assert "epoch 1/2  loss 0.5000" in text and "epoch 2/2  loss 0.2500" in text
