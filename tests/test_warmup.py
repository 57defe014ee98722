"""Linear learning-rate warm-up (optimizer.warmup_epochs): the rate a step sees, on its own
and over a schedule, and a run that uses it saves and reloads in safe mode."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import fit_and_reload
from trainer.cli.commands import app
from trainer.optimizers import OPTIMIZERS, build, linear_warmup

runner = CliRunner()


def rates(optimizer, steps: int) -> list[float]:
    """The rate at each step, from the schedule the optimizer holds (Keras keeps it private)."""
    return [float(optimizer._learning_rate(step)) for step in range(steps)]


def test_a_constant_rate_ramps_up_then_holds():
    params = OPTIMIZERS.get("adam").params(learning_rate=0.01, warmup_epochs=0.4)
    optimizer = build(params, steps_per_epoch=10, epochs=3)  # 4 warm-up steps
    np.testing.assert_allclose(rates(optimizer, 6), [0.0025, 0.005, 0.0075, 0.01, 0.01, 0.01],
                               rtol=1e-6)  # fmt: skip


def test_a_schedule_is_ramped_up_by_the_same_factor():
    import keras

    params = OPTIMIZERS.get("sgd").params(learning_rate=0.1, warmup_epochs=1,
                                          schedule={"type": "cosine"})  # fmt: skip
    optimizer = build(params, steps_per_epoch=5, epochs=4)
    cosine = keras.optimizers.schedules.CosineDecay(0.1, 20)
    expected = [float(cosine(s)) * min(1.0, (s + 1) / 5) for s in range(20)]
    np.testing.assert_allclose(rates(optimizer, 20), expected, rtol=1e-6)


def test_no_warm_up_leaves_keras_s_own_rate():
    optimizer = build(OPTIMIZERS.get("adam").params(), steps_per_epoch=10, epochs=1)
    assert not isinstance(optimizer._learning_rate, linear_warmup())


def test_a_warmed_up_run_saves_and_evaluates(tmp_path):
    config = {"dataset": {"type": "digits", "limit": 300}, "training": {"epochs": 2},
              "optimizer": {"type": "adam", "warmup_epochs": 1,
                            "schedule": {"type": "exponential"}}}  # fmt: skip
    fit_and_reload(tmp_path, config)


def test_a_negative_warm_up_is_a_config_error(tmp_path):
    text = "dataset: digits\noptimizer: {type: adam, warmup_epochs: -1}\n"
    (tmp_path / "c.yaml").write_text(text)
    result = runner.invoke(app, ["config", "validate", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2 and "optimizer.warmup_epochs" in result.output


@pytest.mark.parametrize("steps", [1, 3])
def test_the_first_step_is_never_at_rate_zero(steps):
    schedule = linear_warmup()(0.2, steps)
    assert float(schedule(0)) == pytest.approx(0.2 / steps)
