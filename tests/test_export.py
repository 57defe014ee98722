"""`trainer export`: every format is loaded back in its own runtime and agrees with the
Keras model to within 1e-5 on sample inputs; bad requests are refused before any work."""

import importlib.util
import json

import pytest
import yaml
from typer.testing import CliRunner

from trainer.cli.commands import app
from trainer.workflows.export import KERAS_FORMATS, PACKAGES, TOLERANCE

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny classifier with dropout and batch norm (inference mode must be exported)."""
    tmp_path = tmp_path_factory.mktemp("export")
    config = {
        "dataset": {"type": "digits", "limit": 200},
        "model": {"type": "fnn", "units": [16, 8], "batch_norm": True},
        "regularization": {"dropout": 0.2},
        "training": {"epochs": 1},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = runner.invoke(
        app, ["fit", str(tmp_path / "config.yaml"), "--run-dir", str(tmp_path / "run"), "--json"]
    )
    assert result.exit_code == 0, result.output
    return tmp_path / "run"


@pytest.mark.parametrize("fmt", sorted(KERAS_FORMATS))
def test_each_format_agrees_with_the_keras_model(run, tmp_path, fmt):
    lacking = [p for p in PACKAGES.get(fmt, ()) if importlib.util.find_spec(p) is None]
    if lacking:  # the `export` extra is part of `dev`, so CI has them
        pytest.skip(f"{', '.join(lacking)} not installed (pip install 'trainer[export]')")
    output = tmp_path / {"saved_model": "model", "onnx": "model.onnx", "tflite": "m.tflite"}[fmt]
    result = runner.invoke(
        app, ["export", str(run), "--format", fmt, "--output", str(output), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["max_abs_diff"] <= TOLERANCE == 1e-5
    assert summary["samples"] >= 8 and summary["input_shape"] == [8, 8, 1]
    assert output.exists() and summary["bytes"] > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries


def test_an_unknown_format_gets_a_did_you_mean(run, tmp_path):
    result = runner.invoke(
        app, ["export", str(run), "--format", "tflit", "--output", str(tmp_path / "m")]
    )
    assert result.exit_code == 2
    assert "did you mean 'tflite'" in result.output


def test_an_existing_output_is_not_overwritten(run, tmp_path):
    (tmp_path / "taken.onnx").write_text("keep me")
    result = runner.invoke(
        app, ["export", str(run), "--format", "onnx", "--output", str(tmp_path / "taken.onnx")]
    )
    assert result.exit_code == 2
    assert "already exists" in result.output
    assert (tmp_path / "taken.onnx").read_text() == "keep me"


def test_a_directory_that_is_not_a_run_is_refused(tmp_path):
    result = runner.invoke(
        app, ["export", str(tmp_path), "--format", "onnx", "--output", str(tmp_path / "m.onnx")]
    )
    assert result.exit_code == 2
    assert "not a finished run directory" in result.output
