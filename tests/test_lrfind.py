"""`trainer lr-find`: the range test on tiny data, its suggestion rule and its refusals."""

import csv
import json
import math

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from trainer.cli.commands import app
from trainer.workflows.lrfind import rates, suggest

runner = CliRunner()

CONFIG = {
    "seed": 0,
    "dataset": {
        "type": "synthetic_classification",
        "samples": 300,
        "features": 4,
        "informative": 3,
        "classes": 3,
    },
    "model": {"type": "fnn", "units": [16]},
    "optimizer": {"type": "sgd", "learning_rate": 0.01},
    "training": {"batch_size": 16},
}


def _write(tmp_path, data, name="config.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_rates_grow_geometrically_between_the_bounds():
    found = rates(1e-6, 1.0, 7)
    assert found[0] == pytest.approx(1e-6) and found[-1] == pytest.approx(1.0)
    assert np.allclose(np.diff(np.log10(found)), 1.0)


def test_suggestion_is_the_steepest_descent_before_the_minimum():
    tried = rates(1e-5, 1.0, 51)
    log = np.log10(tried)
    # a falling sigmoid centred at 1e-3 (steepest there), then a blow-up past 1e-1
    curve = 2.0 - np.tanh((log + 3) * 2) + np.where(log > -1, (log + 1) * 20, 0.0)
    steepest, tenth = suggest(tried, list(curve))
    assert steepest == pytest.approx(1e-3, rel=0.3)
    assert tenth == pytest.approx(tried[int(np.argmin(curve))] / 10)


def test_no_suggestion_when_the_loss_only_rises():
    tried = rates(1e-5, 1.0, 30)
    steepest, _ = suggest(tried, [1.0 + i for i in range(30)])
    assert steepest is None


def test_range_test_writes_a_plot_a_table_and_a_finite_suggestion(tmp_path):
    out = tmp_path / "lr"
    result = runner.invoke(
        app,
        [
            "lr-find",
            str(_write(tmp_path, CONFIG)),
            "--output",
            str(out),
            "--steps",
            "40",
            "--min-lr",
            "1e-5",
            "--max-lr",
            "10",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    suggestion = summary["suggestion"]
    assert suggestion is not None and math.isfinite(suggestion)
    assert 1e-5 <= suggestion <= 10
    assert 1e-6 <= summary["minimum_tenth"] <= 1.0
    with Image.open(out / "lr_find.png") as image:
        assert image.format == "PNG" and image.size[0] > 300
    with open(out / "lr_find.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == summary["steps_run"] > 3
    learning_rates = [float(r["learning_rate"]) for r in rows]
    assert learning_rates == sorted(learning_rates)  # grown every step
    assert float(rows[0]["learning_rate"]) == pytest.approx(1e-5)
    assert json.loads((out / "lr_find.json").read_text())["suggestion"] == suggestion


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--min-lr", "1", "--max-lr", "0.1"], "0 < --min-lr < --max-lr"),
        (["--steps", "3"], "--steps must be at least 10"),
    ],
)
def test_impossible_settings_are_refused_before_anything_runs(tmp_path, arguments, message):
    out = tmp_path / "lr"
    result = runner.invoke(
        app, ["lr-find", str(_write(tmp_path, CONFIG)), "--output", str(out), *arguments]
    )
    assert result.exit_code == 2
    assert message in result.output
    assert not out.exists()


def test_generative_models_are_refused(tmp_path):
    config = {"dataset": {"type": "digits", "limit": 50}, "model": {"type": "vae"}}
    result = runner.invoke(
        app, ["lr-find", str(_write(tmp_path, config)), "--output", str(tmp_path / "lr")]
    )
    assert result.exit_code == 2
    assert "supervised" in result.output
