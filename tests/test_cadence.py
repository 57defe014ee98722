"""Checkpoint cadence: with ``checkpoint.every_steps: N`` a checkpoint is written at every
multiple of N optimizer steps (and at epoch ends), because no call into the compiled graph
runs past one, on each path: TensorFlow with Keras's steps per call, fused steps, and JAX.
"""

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
from trainer.datasets import pipeline
from trainer.training.fused import FusedBatches

ROOT = Path(__file__).resolve().parent.parent

# 96 training images in batches of 10: 10 steps per epoch, the last of 6 samples. With a
# checkpoint every 4 steps they fall at steps 4 and 8 of epoch 1, 2 and 6 of epoch 2, and
# 4 and 8 of epoch 3: a different place in every epoch.
CONFIG = {
    "name": "cadence",
    "seed": 7,
    "deterministic": True,
    "dataset": {"type": "digits", "limit": 150, "validation_split": 0.2},
    "model": {"type": "fnn", "units": [8]},
    "optimizer": {"type": "adam", "learning_rate": 0.01},
    "training": {"epochs": 3, "batch_size": 10},
    "checkpoint": {"every_steps": 4, "keep": 100},
}
STEPS, EVERY, EPOCHS = 10, 4, 3
EXPECTED = sorted({*range(EVERY, STEPS * EPOCHS + 1, EVERY), *range(STEPS, STEPS * EPOCHS + 1,
                                                                     STEPS)})  # fmt: skip


def boundaries(epoch: int, steps: int, every: int) -> set[int]:
    """The in-epoch steps (1..steps) at which a checkpoint of ``every`` is due."""
    return {s for s in range(1, steps + 1) if (epoch * steps + s) % every == 0}


def keras_ends(start: int, steps: int, per_call: int) -> list[int]:
    """Where Keras's calls of ``per_call`` steps end in an epoch fed from ``start``."""
    return [min(end, steps) for end in range(start + per_call, steps + per_call, per_call)]


@pytest.mark.parametrize("divisor", [False, True])
@pytest.mark.parametrize("steps", [1, 7, 10, 12, 36, 143, 144, 1688])
@pytest.mark.parametrize("every", [0, 1, 3, 4, 10, 12, 72, 286])
@pytest.mark.parametrize("requested", ["auto", 1, 5, 12, 64])
def test_calls_of_a_fixed_size_never_run_past_a_checkpoint(requested, every, steps, divisor):
    value = pipeline.steps_per_execution(requested, steps, divisor, every)
    plain = pipeline.steps_per_execution(requested, steps, divisor)
    assert 1 <= value <= plain
    if divisor:
        assert steps % value == 0
    for epoch in range(every // np.gcd(every, steps) if every else 1):  # every offset once
        ends = keras_ends(0, steps, value)
        assert boundaries(epoch, steps, every or steps * 10**6) <= set(ends), (epoch, ends)
    # as large as it may be: the next larger value would run past one, or is not allowed
    larger = [v for v in range(value + 1, plain + 1) if not divisor or steps % v == 0]
    for candidate in larger[:1]:
        crossing = any(
            not boundaries(e, steps, every) <= set(keras_ends(0, steps, candidate))
            for e in range(every // np.gcd(every, steps))
        )
        assert every and crossing


def test_steps_per_execution_examples():
    assert pipeline.steps_per_execution("auto", 143, every=10) == 1  # gcd(143, 10) = 1
    assert pipeline.steps_per_execution("auto", 1688, every=10) == 2
    assert pipeline.steps_per_execution("auto", 1688, every=200) == 8
    assert pipeline.steps_per_execution("auto", 144, every=72) == 36  # epoch ends: 144 = 4 * 36
    assert pipeline.steps_per_execution("auto", 144, every=288) == 64  # epoch ends only
    assert pipeline.steps_per_execution("auto", 144, True, every=288) == 48
    assert pipeline.steps_per_execution(32, 36, True, every=12) == 12
    assert pipeline.steps_per_execution("auto", 143, every=10, anywhere=True) == 10
    assert pipeline.steps_per_execution(4, 143, every=10, anywhere=True) == 4
    assert pipeline.steps_per_execution("auto", 143) == 64  # no checkpoints: unchanged


# (samples, batch size, steps per execution, every_steps)
FUSED = [(96, 10, 4, 4), (96, 10, 64, 4), (100, 8, 4, 6), (33, 4, 3, 5), (61, 8, 3, 3),
         (64, 8, 8, 16), (40, 4, 64, 7)]  # fmt: skip


@pytest.mark.parametrize(("n", "batch", "group", "every"), FUSED)
def test_fused_executions_end_at_every_checkpoint_step(n, batch, group, every):
    x, y = np.zeros((n, 1), "float32"), np.zeros(n, "int32")
    fused = FusedBatches(x, y, batch, seed=1, group=group, every=every)
    for epoch in range(2 * every):
        whole = fused.ends(0, epoch)
        assert boundaries(epoch, fused.steps, every) <= set(whole), (epoch, whole)
        sizes = np.diff([0, *whole])
        assert sizes.min() >= 1 and sizes.max() <= group
        assert whole[-1] == fused.steps and fused.full in whole  # the short batch alone
        for stop in whole[:-1]:  # a resume at any checkpointed step runs the same executions
            assert fused.ends(stop, epoch) == [end for end in whole if end > stop]
        assert fused.executions(0, epoch) == len(whole)
        rows = [r.numpy() for r in fused.epoch(epoch)]
        assert [len(r) for r in rows] == list(sizes)


def test_fused_executions_without_checkpoints_are_unchanged():
    x, y = np.zeros((100, 1), "float32"), np.zeros(100, "int32")
    fused = FusedBatches(x, y, 8, seed=1, group=4)
    assert fused.ends(0, 3) == fused.ends(0) == [4, 8, 12, 13]


def checkpoint_steps(run: Path) -> list[int]:
    return sorted(int(p.name.removeprefix("step-")) for p in (run / "checkpoints").glob("step-*"))


@pytest.mark.parametrize(("jit", "fused", "per_call"), [(True, True, 4), (False, False, 2)])
def test_checkpoints_fall_at_every_multiple_on_tensorflow(tmp_path, jit, fused, per_call):
    config = {**CONFIG, "training": {**CONFIG["training"], "jit_compile": jit}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["fit", str(tmp_path / "config.yaml"), "--run-dir", str(run)])
    assert result.exit_code == 0, result.output
    assert checkpoint_steps(run) == EXPECTED
    training = json.loads((run / "environment.json").read_text())["training"]
    assert training["steps_per_epoch"] == STEPS and training["fused_steps"] is fused
    assert training["steps_per_execution"] == per_call
    said = " ".join(result.output.split())
    assert f"training.steps_per_execution: 10 steps per call lowered to {'at most ' * fused}" \
        f"{per_call}" in said  # fmt: skip
    assert "checkpoint.every_steps (4)" in said


def test_checkpoints_fall_at_every_multiple_on_jax(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KERAS_BACKEND": "jax",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    env.pop("TRAINER_FAULT", None)
    command = [sys.executable, "-m", "trainer", "fit", "config.yaml", "--run-dir", "run"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    environment = json.loads((tmp_path / "run" / "environment.json").read_text())
    assert environment["backend"] == "jax"
    assert environment["training"]["steps_per_execution"] == 2  # divides 10 and gcd(10, 4)
    assert checkpoint_steps(tmp_path / "run") == EXPECTED
