"""Every loss the schema accepts (trainer/losses.py), against Keras: its class and arguments
exist in the installed Keras, it builds and trains a step on labels of its task, and the
categorical ones take class indices, encoded one-hot batch by batch."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from trainer.cli.commands import app
from trainer.losses import LOSSES, build, one_hot_labels

runner = CliRunner()
CLASSES = 4


def labels_for(task: str, rng) -> tuple[np.ndarray, int]:
    if task == "regression":
        return rng.uniform(0.5, 3.0, size=(16, 1)).astype(np.float32), 1
    if task == "binary":
        return rng.integers(0, 2, size=(16, 1)).astype(np.int32), 1
    return rng.integers(0, CLASSES, size=(16,)).astype(np.int32), CLASSES


@pytest.mark.parametrize("name", LOSSES.names())
def test_keras_has_the_class_and_arguments_the_table_names(name):
    import keras

    entry = LOSSES.get(name)
    keras_class = getattr(keras.losses, entry.factory())
    signature = inspect.signature(keras_class.__init__).parameters
    for key, field in entry.params.model_fields.items():
        if key == "type":
            continue
        assert key in signature, f"{name}: Keras's {entry.factory()} takes no {key}"
        assert field.default == signature[key].default, (name, key)


@pytest.mark.parametrize("name", LOSSES.names())
def test_each_loss_builds_and_trains_a_step_on_its_tasks_labels(name):
    import keras

    entry = LOSSES.get(name)
    rng = np.random.default_rng(0)
    task = entry.info["tasks"][0]
    y, units = labels_for(task, rng)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    head = {"regression": "softplus", "binary": "sigmoid", "multiclass": "softmax"}[task]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(units, activation=head)])
    loss = build(entry.params(), num_classes=units)
    model.compile(optimizer="sgd", loss=loss)
    before = model.get_weights()
    value = float(model.train_on_batch(x, y))
    assert np.isfinite(value)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    if entry.info["one_hot"]:  # the value Keras gives on one-hot labels
        reference = keras.losses.get(entry.factory())
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(units, activation=head)])
        model.set_weights(before)
        expected = float(reference(np.eye(units)[y], model(x)))
        assert float(loss(y, model(x))) == pytest.approx(expected, rel=1e-6)


def test_label_smoothing_reaches_keras():
    import keras

    params = LOSSES.get("categorical_crossentropy").params(label_smoothing=0.1)
    loss = build(params, num_classes=3)
    y = np.array([0, 2])
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    smoothed = np.eye(3)[y] * 0.9 + 0.1 / 3
    expected = float(np.mean(-(smoothed * np.log(p)).sum(axis=1)))
    assert float(loss(y, p)) == pytest.approx(expected, rel=1e-5)
    plain = build(LOSSES.get("categorical_crossentropy").params(), num_classes=3)
    assert float(plain(y, p)) < float(loss(y, p))
    assert keras.losses.get("categorical_crossentropy") is not None


def test_a_model_with_a_wrapped_loss_reloads_in_safe_mode(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="softmax")])
    params = LOSSES.get("categorical_focal_crossentropy").params(gamma=1.5, label_smoothing=0.05)
    model.compile(optimizer="adam", loss=build(params, num_classes=3))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(loaded.loss, one_hot_labels())
    assert loaded.loss.num_classes == 3 and loaded.loss.loss.gamma == 1.5
    x, y = np.ones((4, 2), np.float32), np.array([0, 1, 2, 1])
    assert float(loaded.loss(y, loaded(x))) == pytest.approx(float(model.loss(y, model(x))))


def test_categorical_crossentropy_with_smoothing_trains_saves_and_evaluates(tmp_path):
    config = {
        "dataset": {"type": "digits", "limit": 300},
        "model": {"type": "fnn", "units": [16]},
        "training": {"epochs": 2, "batch_size": 32},
        "loss": {"type": "categorical_crossentropy", "label_smoothing": 0.1},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    fitted = runner.invoke(app, ["fit", str(tmp_path / "c.yaml"), "--run-dir",
                                 str(tmp_path / "run"), "--json"])  # fmt: skip
    assert fitted.exit_code == 0, fitted.output
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["loss"] == {"type": "categorical_crossentropy", "label_smoothing": 0.1}
    evaluated = runner.invoke(app, ["eval", str(tmp_path / "run"), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["test"] == json.loads(fitted.stdout)["test"]


@pytest.mark.parametrize(
    ("loss", "said"),
    [
        ("categorical_crossentropyy", "did you mean 'categorical_crossentropy'?"),
        ({"type": "huber", "label_smoothing": 0.1}, "unknown key 'label_smoothing'; valid: delta"),
        ({"type": "categorical_crossentropy", "label_smoothing": 1.0}, "must be less than 1"),
        ("mean_squared_error", "does not fit the multiclass task"),
    ],
)
def test_bad_losses_are_config_errors_naming_the_key(tmp_path, loss, said):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"dataset": "digits", "loss": loss}))
    result = runner.invoke(app, ["config", "validate", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split()) and "loss" in result.output
