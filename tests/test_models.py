"""Every registered model family, on every task it claims: builds, trains, saves, reloads."""

import numpy as np
import pytest

from trainer.datasets import DataSpec
from trainer.models import MODELS

SPECS = {
    "regression": DataSpec((3,), "regression", 0, 1),
    "binary": DataSpec((3,), "binary", 2, 1, ("no", "yes")),
    "multiclass": DataSpec((4, 4, 1), "multiclass", 3, 1, ("a", "b", "c")),
}
LOSS = {"regression": "mse", "binary": "binary_crossentropy",
        "multiclass": "sparse_categorical_crossentropy"}  # fmt: skip


def _cases():
    for entry in MODELS.entries():
        for task in entry.info["tasks"]:
            yield pytest.param(entry.name, task, id=f"{entry.name}-{task}")


def _data(spec, n=16):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, *spec.input_shape)).astype("float32")
    if spec.task == "regression":
        return x, rng.normal(size=(n, 1)).astype("float32")
    return x, rng.integers(0, spec.num_classes, size=n).astype("int32")


def _build(name, spec, **reg):
    entry = MODELS.get(name)
    regularization = {"l1": 0.0, "l2": 0.0, "dropout": 0.0, **reg}
    return entry.factory(spec, **entry.params().kwargs(), **regularization)


@pytest.mark.parametrize(("name", "task"), list(_cases()))
def test_output_fits_task_and_round_trips(name, task, tmp_path):
    import keras

    spec = SPECS[task]
    keras.utils.set_random_seed(0)
    model = _build(name, spec, l2=1e-3)
    model.compile(optimizer="adam", loss=LOSS[task])
    x, y = _data(spec)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    predictions = model.predict(x, verbose=0)
    expected_width = {"regression": 1, "binary": 1, "multiclass": spec.num_classes}[task]
    assert predictions.shape == (len(x), expected_width)
    if task == "multiclass":
        np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-5)
    if task == "binary":
        assert ((predictions >= 0) & (predictions <= 1)).all()

    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), predictions)


@pytest.mark.parametrize("name", MODELS.names())
def test_regularization_adds_losses(name):
    spec = SPECS["binary"]
    plain = _build(name, spec)
    penalised = _build(name, spec, l1=0.01, l2=0.01)
    assert len(plain.losses) == 0
    assert len(penalised.losses) > 0


def test_fnn_structure_follows_params():
    model = MODELS.get("fnn").factory(
        SPECS["multiclass"], units=[8, 4], activation="tanh", batch_norm=True,
        l1=0.0, l2=0.0, dropout=0.5,
    )  # fmt: skip
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Dense") == 3  # two hidden layers and the output
    assert kinds.count("BatchNormalization") == 2
    assert kinds.count("Dropout") == 2
    assert kinds[1] == "Flatten"  # image-shaped input is flattened first


def test_linear_describes_its_coefficients():
    spec = DataSpec((1,), "regression", 0, 1)
    entry = MODELS.get("linear")
    model = entry.factory(spec, l1=0.0, l2=0.0, dropout=0.0)
    model.get_layer("output").set_weights([np.array([[2.5]]), np.array([-1.0])])
    assert entry.info["describe"](model) == {"weights": 2.5, "bias": -1.0}
