"""Faults in real processes: signals, SIGKILL, crashes mid-save, NaN/Inf, full disk, bad files.

Each run is a tiny deterministic model (with dropout, so random-generator state matters)
on 256 training images: 8 steps per epoch, a checkpoint every 3 steps. The parity checks
compare a faulted-and-resumed run against an uninterrupted one bit for bit.
"""

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG = {
    "name": "faults",
    "seed": 3,
    "deterministic": True,
    "dataset": {"type": "digits", "limit": 400, "validation_split": 0.2},
    "model": {"type": "fnn", "units": [24]},
    "regularization": {"dropout": 0.3},
    "optimizer": {"type": "adam", "learning_rate": 0.01},
    "early_stopping": {"monitor": "val_loss", "patience": 5},
    "training": {"epochs": 3, "batch_size": 32, "steps_per_execution": 1},
    "checkpoint": {"every_steps": 3, "keep": 3},
}


def trainer(*args, cwd, fault=None, limit_bytes=None, path=()):
    pythonpath = os.pathsep.join([*map(str, path), str(ROOT)])
    env = {**os.environ, "PYTHONPATH": pythonpath, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TRAINER_FAULT", None)
    if fault:
        env["TRAINER_FAULT"] = fault

    def limits():
        if limit_bytes:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    command = [sys.executable, "-m", "trainer", *map(str, args)]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          preexec_fn=limits, timeout=300)  # fmt: skip


def model_state(run: Path) -> dict[str, np.ndarray]:
    latest = (run / "checkpoints" / "latest").read_text().strip()
    with np.load(run / "checkpoints" / latest / "state.npz") as archive:
        return {k: archive[k] for k in archive.files if not k.startswith("metrics/")}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    (root / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    done = trainer("fit", "config.yaml", "--run-dir", "reference", cwd=root)
    assert done.returncode == 0, done.stderr
    return root


def assert_parity(root: Path, run: str) -> None:
    reference, resumed = root / "reference", root / run
    ref_state, new_state = model_state(reference), model_state(resumed)
    assert ref_state.keys() == new_state.keys()
    for key in ref_state:  # weights, optimizer slots and step count, dropout generator states
        np.testing.assert_array_equal(ref_state[key], new_state[key], err_msg=key)
    assert (reference / "history.csv").read_text() == (resumed / "history.csv").read_text()
    ref_metrics = json.loads((reference / "metrics.json").read_text())
    assert json.loads((resumed / "metrics.json").read_text()) == ref_metrics


@pytest.mark.parametrize(
    ("fault", "code"), [("sigkill@13", -signal.SIGKILL), ("sigterm@13", 143), ("sigint@13", 130)]
)
def test_interrupt_then_resume_matches_an_uninterrupted_run(workspace, fault, code):
    run = f"run-{fault.split('@')[0]}"
    done = trainer("fit", "config.yaml", "--run-dir", run, cwd=workspace, fault=fault)
    assert done.returncode == code, done.stderr
    if code > 0:  # a graceful stop: checkpoint at the very step, resume command printed
        assert "trainer fit --resume" in done.stderr and "Traceback" not in done.stderr
        assert (workspace / run / "checkpoints" / "step-000000013").is_dir()
    assert not (workspace / run / "model.keras").exists()
    done = trainer("fit", "--resume", run, "--json", cwd=workspace)
    assert done.returncode == 0, done.stderr
    assert "resuming from step-0000000" in done.stderr
    assert_parity(workspace, run)


def test_kill_during_checkpoint_write_falls_back_to_previous(workspace):
    done = trainer("fit", "config.yaml", "--run-dir", "run-ckpt", cwd=workspace,
                   fault="kill-in-checkpoint@12")  # fmt: skip
    assert done.returncode == -signal.SIGKILL
    checkpoints = workspace / "run-ckpt" / "checkpoints"
    assert list(checkpoints.glob(".tmp-*")), "the kill should leave a half-written checkpoint"
    assert not (checkpoints / "step-000000012").exists()
    done = trainer("fit", "--resume", "run-ckpt", cwd=workspace)
    assert done.returncode == 0, done.stderr
    assert "resuming from step-000000009" in done.stderr
    assert not list(checkpoints.glob(".tmp-*"))
    assert_parity(workspace, "run-ckpt")


def test_damaged_newest_checkpoint_is_skipped_with_a_warning(workspace):
    done = trainer("fit", "config.yaml", "--run-dir", "run-bad", cwd=workspace,
                   fault="sigterm@13")  # fmt: skip
    assert done.returncode == 143
    state = workspace / "run-bad" / "checkpoints" / "step-000000013" / "state.npz"
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    state.write_bytes(bytes(data))
    done = trainer("fit", "--resume", "run-bad", cwd=workspace)
    assert done.returncode == 0, done.stderr
    assert "skipped damaged checkpoint step-000000013" in done.stderr
    assert "SHA-256" in done.stderr
    assert_parity(workspace, "run-bad")


def assert_stopped_non_finite(root: Path, run: str, done, kept: str) -> None:
    """Exit 5, no traceback, the likely causes, ``kept`` still latest, no model, all finite."""
    assert done.returncode == 5, done.stderr
    assert "learning rate" in done.stderr and "Traceback" not in done.stderr
    checkpoints = root / run / "checkpoints"
    assert (checkpoints / "latest").read_text() == kept
    assert f"the last finite checkpoint ({kept}) was kept" in done.stderr
    assert not (root / run / "model.keras").exists()
    state = model_state(root / run)
    assert all(np.isfinite(v).all() for k, v in state.items() if v.dtype.kind == "f")


# Each fault makes the weights non-finite by a checkpoint step (every 3; epoch 2 is steps
# 9-16), so the weight check before that checkpoint sees it whatever the CPU does with NaN in
# a ReLU (a CPU whose ReLU propagates NaN may stop on the loss of that step instead).
@pytest.mark.parametrize(
    ("fault", "where", "kept", "named"),
    [
        ("nan-kernel@12", "epoch 2 at step 4", 9, "weight dense_0/kernel (1536 NaN of 1536"),
        ("lr-explode@11", "epoch 2 at step 4", 9, "optimizer variable adam/learning_rate (1 Inf"),
        ("nan-input@6", "epoch 1 at step 6", 3, "weight dense_0/kernel ("),
    ],
)
def test_non_finite_weights_stop_the_run_before_they_are_checkpointed(workspace, fault, where,
                                                                      kept, named):  # fmt: skip
    run = "run-" + fault.split("@")[0]
    done = trainer("fit", "config.yaml", "--run-dir", run, cwd=workspace, fault=fault)
    assert_stopped_non_finite(workspace, run, done, kept=f"step-{kept:09d}")
    assert f"in {where}" in done.stderr and named in done.stderr


# Whether a ReLU passes NaN on or turns it into 0 depends on the CPU's instruction set; this
# makes the second behaviour on any machine, so both are tested wherever the suite runs.
ZEROING_RELU = """
import keras.src.backend.tensorflow.nn as nn
import tensorflow as tf

_relu = nn.relu


def relu(x):
    x = tf.convert_to_tensor(x)
    return tf.where(tf.math.is_nan(x), tf.zeros_like(x), _relu(x))


nn.relu = relu
"""


@pytest.mark.parametrize("relu", ["as-this-cpu-does", "zeroes-nan"])
@pytest.mark.parametrize(
    ("fault", "kept", "named"),
    [
        ("nan-kernel@10", 9, "weight dense_0/kernel (1536 NaN"),  # the fresh machine's failure
        ("nan-input@6", 3, "weight dense_0/kernel ("),
    ],
)
def test_nan_behind_a_relu_is_caught_whatever_the_relu_does(workspace, tmp_path, relu, fault,
                                                             kept, named):  # fmt: skip
    path = []
    if relu == "zeroes-nan":
        (tmp_path / "sitecustomize.py").write_text(ZEROING_RELU)
        path.append(tmp_path)
    run = f"run-relu-{relu}-{fault.split('@')[0]}"
    done = trainer("fit", "config.yaml", "--run-dir", run, cwd=workspace, fault=fault, path=path)
    # A ReLU that propagates NaN stops on the loss, one that zeroes it on the weight check of
    # the next checkpoint; both name the kernel and keep the checkpoint before.
    assert_stopped_non_finite(workspace, run, done, kept=f"step-{kept:09d}")
    assert named in done.stderr
    if relu == "zeroes-nan":  # the loss stayed finite: only the weight check could see it
        assert "became non-finite in epoch" in done.stderr
        assert "loss became" not in done.stderr


def test_checkpoint_holding_nan_is_skipped_on_resume(workspace):
    from trainer.training.checkpoint import MANIFEST, STATE, _sha256

    done = trainer("fit", "config.yaml", "--run-dir", "run-poisoned", cwd=workspace,
                   fault="sigterm@13")  # fmt: skip
    assert done.returncode == 143
    newest = workspace / "run-poisoned" / "checkpoints" / "step-000000013"
    with np.load(newest / STATE) as archive:
        arrays = {k: archive[k] for k in archive.files}
    kernel = next(k for k in arrays if k.startswith("optimizer0/") and "velocity" in k)
    arrays[kernel].flat[5] = np.inf
    with open(newest / STATE, "wb") as handle:
        np.savez(handle, **arrays)
    manifest = json.loads((newest / MANIFEST).read_text())  # a consistent manifest: bytes and
    manifest[STATE] = {"bytes": (newest / STATE).stat().st_size, "sha256": _sha256(newest / STATE)}
    (newest / MANIFEST).write_text(json.dumps(manifest))  # SHA-256 alone would not notice
    done = trainer("fit", "--resume", "run-poisoned", cwd=workspace)
    assert done.returncode == 0, done.stderr
    assert "skipped damaged checkpoint step-000000013: state.npz holds non-finite values: " \
        "optimizer variable adam/dense_0_kernel_velocity (1 Inf of 1536 values)" \
        in done.stderr  # fmt: skip
    assert "resuming from step-000000012" in done.stderr
    assert_parity(workspace, "run-poisoned")


@pytest.mark.parametrize("command", [["eval"], ["export", "--format", "saved_model",
                                                 "--output", "exported"]])  # fmt: skip
def test_a_saved_model_with_nan_weights_is_refused(workspace, tmp_path, command):
    import shutil

    import keras

    run = tmp_path / "nan-run"
    shutil.copytree(workspace / "reference", run)
    model = keras.saving.load_model(run / "model.keras")
    bias = model.weights[-1]
    bias.assign(np.where(np.arange(bias.shape[0]) == 2, np.nan, bias.numpy()))
    model.save(run / "model.keras")
    done = trainer(*command, run, cwd=workspace)
    assert done.returncode == 5, done.stderr
    assert "model.keras: refused: it holds non-finite weights" in done.stderr
    assert "/bias (1 NaN of 10 values)" in done.stderr and "Traceback" not in done.stderr


def test_full_disk_fails_cleanly_and_keeps_the_previous_checkpoint(workspace):
    done = trainer("fit", "config.yaml", "--run-dir", "run-full", cwd=workspace,
                   fault="sigterm@7")  # fmt: skip
    assert done.returncode == 143
    checkpoints = workspace / "run-full" / "checkpoints"
    before = (checkpoints / "latest").read_text()
    done = trainer("fit", "--resume", "run-full", cwd=workspace, limit_bytes=20_000)
    assert done.returncode == 6, done.stderr
    assert "cannot write checkpoint" in done.stderr and "File too large" in done.stderr
    assert (checkpoints / "latest").read_text() == before
    from trainer.training.checkpoint import Checkpoints

    assert Checkpoints(checkpoints).verify(checkpoints / before) is None


def test_unwritable_output_fails_before_training(workspace):
    (workspace / "a-file").write_text("not a directory")
    done = trainer("fit", "config.yaml", "--run-dir", "a-file/run", cwd=workspace)
    assert done.returncode == 6, done.stderr
    assert "cannot write to run directory a-file/run" in done.stderr
    assert "loading dataset" not in done.stderr  # refused before any work


def test_changed_config_is_refused_with_a_diff_unless_allowed(workspace):
    done = trainer("fit", "config.yaml", "--run-dir", "run-change", cwd=workspace,
                   fault="sigterm@13")  # fmt: skip
    assert done.returncode == 143
    changed = {**CONFIG, "optimizer": {"type": "adam", "learning_rate": 0.002}}
    (workspace / "changed.yaml").write_text(yaml.safe_dump(changed))
    done = trainer("fit", "changed.yaml", "--run-dir", "run-change", cwd=workspace)
    assert done.returncode == 2
    assert "optimizer.learning_rate: 0.01 -> 0.002" in done.stderr
    done = trainer("fit", "changed.yaml", "--run-dir", "run-change", "--allow-config-change",
                   cwd=workspace)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rates = [line.split(",") for line in (workspace / "run-change" / "history.csv")
             .read_text().splitlines()]  # fmt: skip
    column = rates[0].index("learning_rate")
    assert float(rates[1][column]) == pytest.approx(0.01)
    assert float(rates[-1][column]) == pytest.approx(0.002)


def test_a_complete_run_is_left_alone(workspace):
    model = workspace / "reference" / "model.keras"
    before = model.stat().st_mtime_ns
    done = trainer("fit", "--resume", "reference", "--json", cwd=workspace)
    assert done.returncode == 0 and "complete; nothing to do" in done.stderr
    assert json.loads(done.stdout) == json.loads((model.parent / "metrics.json").read_text())
    assert model.stat().st_mtime_ns == before


def test_a_second_process_on_the_same_run_fails_fast(workspace):
    from trainer.core.files import RunLock

    done = trainer("fit", "config.yaml", "--run-dir", "run-lock", cwd=workspace,
                   fault="sigterm@2")  # fmt: skip
    assert done.returncode == 143
    with RunLock(workspace / "run-lock"):
        done = trainer("fit", "--resume", "run-lock", cwd=workspace)
    assert done.returncode == 2
    assert f"in use by pid {os.getpid()}" in done.stderr


def test_malicious_model_with_a_lambda_layer_does_not_run(workspace, tmp_path):
    import shutil

    import keras

    marker = tmp_path / "pwned"
    run = tmp_path / "evil-run"
    shutil.copytree(workspace / "reference", run)
    inputs = keras.Input((8, 8, 1))
    payload = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")  # the attack
    hostile = keras.layers.Lambda(payload)(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(hostile))
    marker.unlink(missing_ok=True)
    keras.Model(inputs, outputs).save(run / "model.keras")
    marker.unlink(missing_ok=True)
    done = trainer("eval", run, cwd=workspace)
    assert done.returncode == 1
    assert "Lambda" in done.stderr and "safe mode" in done.stderr
    assert not marker.exists()


def test_fused_executions_resume_bit_for_bit(tmp_path):
    """With XLA on and 3 steps per execution, a run killed mid-epoch resumes exactly."""
    fused = {**CONFIG, "training": {**CONFIG["training"], "steps_per_execution": 3}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(fused))
    done = trainer("fit", "config.yaml", "--run-dir", "reference", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    training = json.loads((tmp_path / "reference" / "environment.json").read_text())["training"]
    assert training["fused_steps"] and training["steps_per_execution"] == 3
    done = trainer("fit", "config.yaml", "--run-dir", "killed", cwd=tmp_path, fault="sigkill@13")
    assert done.returncode == -signal.SIGKILL
    # Epochs of 8 steps with a checkpoint every 3: executions end at every checkpoint step as
    # well as every 3 steps, so epoch 2 runs steps 9, 10-12, 13-15, 16. The kill lands at the
    # end of the one holding step 13 (step 15), after the checkpoint at step 12 (epoch 2, 4).
    assert (tmp_path / "killed" / "checkpoints" / "latest").read_text() == "step-000000012"
    done = trainer("fit", "--resume", "killed", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "resuming from step-000000012 (epoch 2, step 4)" in done.stderr
    assert_parity(tmp_path, "killed")
