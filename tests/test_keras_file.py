"""The user's own architecture (trainer/models/keras_file.py): a .keras file their Keras code
saved trains from a config, reloads and exports; what could run code is refused unrun; an
architecture that does not fit the data is a config error naming the change."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from trainer.cli.commands import app

runner = CliRunner()


def save(path, *layers, shape=(8, 8, 1)):
    import keras

    model = keras.Sequential([keras.Input(shape), *layers])
    model.save(path)
    return path


def head(units=10, activation="softmax"):
    import keras

    return [keras.layers.Flatten(), keras.layers.Dense(units, activation=activation)]


def config(tmp_path, path, **extra) -> str:
    data = {"seed": 2, "dataset": {"type": "digits", "limit": 400},
            "model": {"type": "keras_file", "path": str(path)}, "training": {"epochs": 2},
            **extra}  # fmt: skip
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    return str(tmp_path / "c.yaml")


def test_a_saved_architecture_trains_reloads_and_exports(tmp_path):
    import keras

    path = save(tmp_path / "arch.keras", keras.layers.Conv2D(8, 3, activation="relu"), *head())
    settings = config(tmp_path, path, training={"epochs": 15})
    fitted = runner.invoke(app, ["fit", settings, "--run-dir",
                                 str(tmp_path / "run"), "--json"])  # fmt: skip
    assert fitted.exit_code == 0, fitted.output
    assert json.loads(fitted.stdout)["test"]["accuracy"] > 0.3  # digits: 10 classes, 0.1 by chance
    evaluated = runner.invoke(app, ["eval", str(tmp_path / "run"), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["test"] == json.loads(fitted.stdout)["test"]
    pytest.importorskip("tf2onnx")
    exported = runner.invoke(app, ["export", str(tmp_path / "run"), "--format", "onnx",
                                   "--output", str(tmp_path / "m.onnx")])  # fmt: skip
    assert exported.exit_code == 0, exported.output
    assert "largest absolute difference" in exported.output


def test_a_lambda_is_refused_and_never_run(tmp_path):
    import keras

    marker = tmp_path / "ran"

    def touch(x):
        marker.write_text("the Lambda ran")
        return x

    path = save(tmp_path / "hostile.keras", keras.layers.Lambda(touch), *head())
    marker.unlink()  # building the model above ran it; loading must not
    result = runner.invoke(app, ["fit", config(tmp_path, path), "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 4, result.output
    said = " ".join(result.output.split())
    assert "refused: it holds a Lambda layer" in said and "Traceback" not in result.output
    assert not marker.exists()


def test_a_class_keras_does_not_know_is_refused(tmp_path):
    import keras

    @keras.saving.register_keras_serializable(package="users_code")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2

    path = save(tmp_path / "custom.keras", Doubler(), *head())
    keras.saving.get_custom_objects().pop("users_code>Doubler")
    result = runner.invoke(app, ["fit", config(tmp_path, path), "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 4, result.output
    assert "names a class Keras does not know" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("layers", "shape", "said"),
    [
        (lambda: head(), (28, 28, 1), "takes inputs shaped (28, 28, 1), but the dataset's "
         "samples are shaped (8, 8, 1)"),
        (lambda: head(units=3), (8, 8, 1), "outputs 3 values a sample, but the multiclass task "
         "needs 10"),
        (lambda: head(activation="linear"), (8, 8, 1), "ends in a 'linear' activation"),
    ],
)  # fmt: skip
def test_an_architecture_that_does_not_fit_the_data_is_a_config_error(tmp_path, layers, shape,
                                                                      said):  # fmt: skip
    path = save(tmp_path / "arch.keras", *layers(), shape=shape)
    result = runner.invoke(app, ["fit", config(tmp_path, path), "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("path", "extra", "said"),
    [
        ("missing.keras", {}, "no file at missing.keras"),
        ("arch.h5", {}, "arch.h5 is not a .keras archive"),
        ("ARCH", {"regularization": {"dropout": 0.2}}, "model 'keras_file' does not use dropout"),
    ],
)
def test_bad_keras_file_settings_are_found_before_training(tmp_path, path, extra, said):
    if path == "ARCH":
        path = save(tmp_path / "arch.keras", *head())
    result = runner.invoke(app, ["config", "validate", config(tmp_path, path, **extra)])
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split())
