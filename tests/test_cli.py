"""The commands end to end on tiny data: fit, eval, gates, run directory, errors."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from trainer.cli.commands import app
from trainer.optimizers import OPTIMIZERS

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

TINY = {
    "name": "tiny",
    "seed": 1,
    "dataset": {"type": "digits", "limit": 200, "validation_split": 0.2},
    "model": {"type": "fnn", "units": [16]},
    "optimizer": {"type": "adam", "learning_rate": 0.01},
    "training": {"epochs": 3, "batch_size": 32},
}


def write_config(tmp_path, data=None, name="config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data or TINY))
    return path


def fit(tmp_path, *args, data=None):
    config = write_config(tmp_path, data)
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(config), "--run-dir", str(run_dir), *args])
    return result, run_dir


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("finished")
    result, run_dir = fit(tmp_path, "--json")
    assert result.exit_code == 0, result.output
    return run_dir, result


def test_fit_writes_a_complete_run_directory(finished_run):
    run_dir, result = finished_run
    for name in ("config.yaml", "model.keras", "history.csv", "metrics.json", "environment.json"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["test"]) == {"loss", "accuracy", "precision", "recall", "f1", "auc"}
    assert len(metrics["confusion_matrix"]) == 10
    with open(run_dir / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]  # counted from 1, as printed
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(rows[0])
    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["seed"] == 1 and environment["versions"]["keras"]
    assert environment["training"]["epochs_run"] == 3
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["training"]["epochs"] == 3 and saved["loss"] == {
        "type": "sparse_categorical_crossentropy"
    }


def test_history_of_a_run_counted_from_zero_is_renumbered_on_resume(tmp_path):
    from trainer.training.loop import HistoryLog

    (tmp_path / "history.csv").write_text("epoch,loss\n0,0.9\n1,0.8\n")  # before 1-based
    history = HistoryLog(tmp_path / "history.csv")
    history.append(2, {"loss": 0.7})  # Keras's 0-based third epoch
    with open(tmp_path / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["epoch"], r["loss"]) for r in rows] == [("1", "0.9"), ("2", "0.8"), ("3", "0.7")]


def test_fit_json_prints_metrics_json(finished_run):
    run_dir, result = finished_run
    assert json.loads(result.stdout) == json.loads((run_dir / "metrics.json").read_text())


def test_eval_reproduces_metrics_json(finished_run):
    run_dir, _ = finished_run
    result = runner.invoke(app, ["eval", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads((run_dir / "metrics.json").read_text())


def test_eval_report_is_a_table(finished_run):
    run_dir, _ = finished_run
    result = runner.invoke(app, ["eval", str(run_dir)])
    assert result.exit_code == 0
    assert "accuracy" in result.stdout and "confusion matrix" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--fail-under", "accuracy=0.0"], 0, None),
        (["--fail-under", "accuracy=1.01"], 3, "accuracy"),
        (["--fail-over", "loss=0.0"], 3, "above the bar"),
        (["--fail-under", "r2=0.5"], 2, "does not report"),
        (["--fail-under", "accuracy"], 2, "METRIC=NUMBER"),
    ],
)
def test_eval_gates(finished_run, args, code, fragment):
    run_dir, _ = finished_run
    result = runner.invoke(app, ["eval", str(run_dir), "--json", *args])
    assert result.exit_code == code, result.output
    if fragment:
        assert fragment in result.stderr


def test_eval_of_a_missing_or_unfinished_run(tmp_path):
    result = runner.invoke(app, ["eval", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    result = runner.invoke(app, ["eval", str(tmp_path)])
    assert result.exit_code == 2 and "config.yaml is missing" in result.stderr


def test_fit_refuses_a_non_empty_run_dir(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("x")
    result, _ = fit(tmp_path)
    assert result.exit_code == 2 and "not empty" in result.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["keep.txt"]


def test_bad_config_writes_nothing(tmp_path):
    bad = {**TINY, "optimizer": {"type": "adam", "learning_rate": -1}}
    result, run_dir = fit(tmp_path, data=bad)
    assert result.exit_code == 2
    assert "optimizer.learning_rate" in result.stderr and "greater than 0" in result.stderr
    assert not run_dir.exists()


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"model": {"type": "cnn", "filters": [8, 8, 8]}},
         ["model.kernel_size: 3 is larger than the 2x2 feature map", "model.pooling: none"]),
        ({"dataset": {"type": "synthetic_classification"}, "model": "rnn"},
         ["model.type: 'rnn' needs sequences", "vectors of shape (2,)"]),
    ],
    ids=["cnn-kernel-too-large", "rnn-on-tabular-data"],
)  # fmt: skip
def test_model_that_cannot_take_the_data_exits_2(tmp_path, changes, fragments):
    result, run_dir = fit(tmp_path, data={**TINY, **changes})
    assert result.exit_code == 2, result.output
    for fragment in fragments:
        assert fragment in result.stderr
    assert "Traceback" not in result.stderr and "rerun with --debug" not in result.stderr
    assert not run_dir.exists()


@pytest.mark.parametrize("name", ["smoke_cnn.yaml", "smoke_rnn.yaml"])
def test_cnn_and_rnn_smoke_configs_train(tmp_path, name):
    path = ROOT / "configs" / name
    result = runner.invoke(app, ["fit", str(path), "--run-dir", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["test"]["accuracy"] > 0.5  # 10 classes: chance is 0.1


def test_rnn_on_sequences_fits_and_evaluates_again(tmp_path):
    data = {
        **TINY,
        "dataset": {"type": "synthetic_sequence", "samples": 200, "length": 8},
        "model": {"type": "rnn", "cell": "gru", "units": [4]},
        "training": {"epochs": 2},
    }
    result, run_dir = fit(tmp_path, "--json", data=data)
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)["test"]) == {"loss", "mse", "mae", "rmse", "r2"}
    again = runner.invoke(app, ["eval", str(run_dir), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == json.loads((run_dir / "metrics.json").read_text())


def test_gpu_without_gpu_is_a_clear_error(tmp_path):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    result, run_dir = fit(tmp_path, "--set", "training.device=gpu")
    assert result.exit_code == 2 and "sees no GPU" in result.stderr
    assert not run_dir.exists()


def test_default_run_dir_is_name_and_timestamp(tmp_path):
    config = write_config(tmp_path, {**TINY, "training": {"epochs": 1}})
    result = runner.invoke(app, ["fit", str(config), "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("tiny-") and (run / "model.keras").is_file()


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_trains(tmp_path, name):
    data = {**TINY, "optimizer": name, "training": {"epochs": 2}}
    if OPTIMIZERS.get(name).info.get("full_batch"):
        data["training"]["batch_size"] = "full"
    result, run_dir = fit(tmp_path, "--json", data=data)
    assert result.exit_code == 0, result.output
    environment = json.loads((run_dir / "environment.json").read_text())
    expected_steps = 1 if name == "gd" else 4  # 200 -> 160 after test -> 128 training
    assert environment["training"]["steps_per_epoch"] == expected_steps


@pytest.mark.parametrize("schedule", ["exponential", "step", "cosine"])
def test_schedules_change_the_learning_rate(tmp_path, schedule):
    data = {**TINY, "optimizer": {"type": "sgd", "schedule": {"type": schedule}}}
    if schedule == "step":
        data["optimizer"]["schedule"]["step_epochs"] = 1
    result, run_dir = fit(tmp_path, data=data)
    assert result.exit_code == 0, result.output
    with open(run_dir / "history.csv") as handle:
        rates = [float(r["learning_rate"]) for r in csv.DictReader(handle)]
    assert rates[0] > rates[-1]


def test_regression_linear_recovers_the_weight(tmp_path):
    data = {
        "dataset": {
            "type": "synthetic_linear",
            "samples": 200,
            "noise": 0.1,
            "validation_split": 0,
        },  # fmt: skip
        "model": "linear",
        "optimizer": {"type": "adam", "learning_rate": 0.05},
        "training": {"epochs": 60},
    }
    result, _ = fit(tmp_path, "--json", data=data)
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert abs(metrics["model"]["weights"] - 2.0) < 0.1
    assert set(metrics["test"]) == {"loss", "mse", "mae", "rmse", "r2"}


def test_early_stopping_stops(tmp_path):
    data = {**TINY, "optimizer": {"type": "sgd", "learning_rate": 1e-9},
            "early_stopping": {"monitor": "val_loss", "patience": 1, "min_delta": 1.0},
            "training": {"epochs": 20}}  # fmt: skip
    result, run_dir = fit(tmp_path, data=data)
    assert result.exit_code == 0, result.output
    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["training"]["stopped_early"]
    assert environment["training"]["epochs_run"] < 20


def test_same_seed_same_metrics(tmp_path):
    outputs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        result, _ = fit(tmp_path / name, "--json")
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1]


def test_console_script_end_to_end_without_traceback(tmp_path):
    """The installed command in a real process: a bad config gives one message, no traceback."""
    bad = write_config(tmp_path, {**TINY, "optimiser": "adam"}, name="bad.yaml")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    trainer = [sys.executable, "-m", "trainer"]
    done = subprocess.run([*trainer, "config", "validate", str(bad)], capture_output=True,
                          text=True, env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2
    assert "unknown key 'optimiser'" in done.stderr and "did you mean 'optimizer'" in done.stderr
    assert "Traceback" not in done.stderr
    good = write_config(tmp_path, {**TINY, "training": {"epochs": 1}})
    done = subprocess.run([*trainer, "fit", str(good), "--json"], capture_output=True, text=True,
                          env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["test"]["accuracy"] > 0
    assert "cuda" not in done.stderr.lower()  # TensorFlow's start-up chatter is held back
    (run,) = (tmp_path / "runs").iterdir()
    done = subprocess.run([*trainer, "eval", str(run), "--json"], capture_output=True, text=True,
                          env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads((run / "metrics.json").read_text())


def test_validation_does_not_import_tensorflow(tmp_path):
    config = write_config(tmp_path)
    code = (
        "import sys; from typer.testing import CliRunner; from trainer.cli.commands import app; "
        f"r = CliRunner().invoke(app, ['config', 'validate', {str(config)!r}]); "
        "assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_jax_backend_runs_the_smoke_config(tmp_path):
    """The Keras JAX backend, fed NumPy batches, in its own process (one backend per process)."""
    pytest.importorskip("jax")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "jax"}
    done = subprocess.run(
        [sys.executable, "-m", "trainer", "fit", str(ROOT / "configs" / "smoke.yaml"), "--json",
         "--run-dir", str(tmp_path / "run")],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    environment = json.loads((tmp_path / "run" / "environment.json").read_text())
    assert environment["backend"] == "jax"
    assert json.loads(done.stdout)["test"]["accuracy"] > 0.5
    command = [sys.executable, "-m", "trainer", "eval", str(tmp_path / "run"), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_jax_backend_applies_class_weights(tmp_path):
    """Keras refuses ``fit(class_weight=...)`` for the generators that feed JAX: the batches
    carry the weights instead (this run was an internal error before)."""
    pytest.importorskip("jax")
    script = (
        "from trainer.cli.commands import app\n"
        "import sys\n"
        f"config = {str(ROOT / 'configs' / 'smoke.yaml')!r}\n"
        "for run, extra in (('weighted', ['--set', 'training.class_weight={0: 5.0, 3: 0.2}']),\n"
        "                   ('plain', [])):\n"
        "    try:\n"
        "        app(['fit', config, '--run-dir', run, '--set', 'training.epochs=1', *extra])\n"
        "    except SystemExit as exit:\n"
        "        if exit.code:\n"
        "            sys.exit(exit.code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    def kernel(run: str):
        checkpoints = tmp_path / run / "checkpoints"
        latest = (checkpoints / "latest").read_text().strip()
        with np.load(checkpoints / latest / "state.npz") as f:
            return f["model/00000/dense_0/kernel"]

    assert not np.allclose(kernel("weighted"), kernel("plain"), atol=1e-6)


def test_a_misspelt_gate_is_refused_before_training(tmp_path):
    """Exit 2 means nothing was written: a gate naming a metric the run will not report is
    found before the data is loaded (issue #17)."""
    result = runner.invoke(app, ["fit", str(ROOT / "configs" / "smoke.yaml"), "--run-dir",
                                 str(tmp_path / "run"), "--fail-under", "acc=0.9"])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "--fail-under names 'acc'" in result.output and "accuracy" in result.output
    assert not (tmp_path / "run").exists()


def test_eval_of_a_config_file_says_it_is_not_a_run(tmp_path):
    result = runner.invoke(app, ["eval", str(ROOT / "configs" / "digits.yaml")])
    assert result.exit_code == 2
    assert "is a file, not a run directory" in result.output and "trainer fit" in result.output


def test_a_missing_config_suggests_the_nearby_file():
    result = runner.invoke(app, ["fit", str(ROOT / "configs" / "digit.yaml")])
    assert result.exit_code == 2
    assert f"did you mean {ROOT / 'configs' / 'digits.yaml'}?" in result.output
