"""Every registered model family, on every task and input kind it claims: builds, trains,
saves, reloads. Then what each family promises beyond that."""

import dataclasses

import numpy as np
import pytest

from trainer.core.errors import ConfigError
from trainer.datasets import DataSpec
from trainer.models import MODELS
from trainer.models.inputs import accepted_kinds

SPECS = {
    "regression": DataSpec((3,), "regression", 0, 1),
    "binary": DataSpec((3,), "binary", 2, 1, ("no", "yes")),
    "multiclass": DataSpec((4, 4, 1), "multiclass", 3, 1, ("a", "b", "c")),
}
LOSS = {"regression": "mse", "binary": "binary_crossentropy",
        "multiclass": "sparse_categorical_crossentropy"}  # fmt: skip
SHAPES = {"vector": (3,), "sequence": (5, 3), "image": (8, 8, 1)}  # one per input kind


def spec_for(task: str, kind: str) -> DataSpec:
    return dataclasses.replace(SPECS[task], input_shape=SHAPES[kind])


def _cases():
    """Every task and every input kind of each family, each at least once, in few cases.

    Generative families (an ``evaluate`` hook of their own) output images, not predictions
    of the labels: tests/test_generative.py gives them their round trip."""
    for entry in MODELS.entries():
        if "evaluate" in entry.info:
            continue
        tasks, kinds = entry.info["tasks"], accepted_kinds(entry)
        for i in range(max(len(tasks), len(kinds))):
            task, kind = tasks[i % len(tasks)], kinds[i % len(kinds)]
            yield pytest.param(entry.name, task, kind, id=f"{entry.name}-{task}-{kind}")


def _data(spec, n=16):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, *spec.input_shape)).astype("float32")
    if spec.task == "regression":
        return x, rng.normal(size=(n, 1)).astype("float32")
    return x, rng.integers(0, spec.num_classes, size=n).astype("int32")


def _build(name, spec, params=None, **reg):
    entry = MODELS.get(name)
    regularization = {"l1": 0.0, "l2": 0.0, "dropout": 0.0, **reg}
    params = dict(params or {})
    if name == "keras_file":  # the user's own architecture: one the test saves, fitting spec
        params.setdefault("path", str(_archive(spec)))
    return entry.factory(spec, **entry.params(**params).kwargs(), **regularization)


def _archive(spec):
    """A .keras file of a small architecture that fits ``spec``, as a user's code saves one."""
    import tempfile
    from pathlib import Path

    import keras

    units = {"regression": spec.target_dim, "binary": 1, "multiclass": spec.num_classes}
    head = {"regression": "linear", "binary": "sigmoid", "multiclass": "softmax"}[spec.task]
    model = keras.Sequential([keras.Input(spec.input_shape), keras.layers.Flatten(),
                              keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(units[spec.task], activation=head)])  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "arch.keras"
    model.save(path)
    return path


@pytest.mark.parametrize(("name", "task", "kind"), list(_cases()))
def test_output_fits_task_and_round_trips(name, task, kind, tmp_path):
    import keras

    spec = spec_for(task, kind)
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


@pytest.mark.parametrize(
    "name", [n for n in MODELS.names() if "l1" in MODELS.get(n).info.get("regularization", ())]
)
def test_regularization_adds_losses(name):
    spec = spec_for("binary", accepted_kinds(MODELS.get(name))[0])
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


# --- cnn ----------------------------------------------------------------------------------


def test_cnn_feature_maps_follow_padding_strides_and_pooling():
    from trainer.models.cnn import feature_maps

    assert feature_maps((28, 28), 2, 1, 3, 1, "same", "max", 2) == ([(14, 14), (7, 7)], [])
    assert feature_maps((28, 20), 2, 2, 3, 1, "valid", "max", 2) == ([(12, 8), (4, 2)], [])
    assert feature_maps((28, 28), 1, 2, 3, 2, "same", "none", 2) == ([(14, 14)], [])


@pytest.mark.parametrize(
    ("params", "shape", "fragments"),
    [
        ({"filters": [8, 8, 8], "kernel_size": 5}, (8, 8, 1),
         ["model.kernel_size: 5 is larger than the 4x4 feature map", "block 2", "<= 4"]),
        ({"filters": [8, 8, 8]}, (8, 8, 1),
         ["model.kernel_size: 3 is larger than the 2x2 feature map", "block 3", "pooling: none"]),
        ({"filters": [8, 8], "padding": "valid"}, (8, 8, 1),
         ["model.pool_size: 2 is larger than the 1x1 feature map", "model.pooling: none"]),
        ({"kernel_size": 9}, (8, 8, 1), ["model.kernel_size: 9", "the 8x8 feature map"]),
        ({}, (64,), ["model.type: 'cnn' needs images", "vectors of shape (64,)", "fnn"]),
        ({}, (8, 8), ["model.type: 'cnn' needs images", "sequences of shape (8, 8)", "rnn"]),
    ],
)  # fmt: skip
def test_cnn_hyperparameters_that_cannot_fit_are_config_errors(params, shape, fragments):
    spec = dataclasses.replace(SPECS["multiclass"], input_shape=shape)
    with pytest.raises(ConfigError) as info:
        _build("cnn", spec, params)
    assert info.value.exit_code == 2
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_cnn_structure_follows_params():
    params = {"filters": [4, 6], "convolutions_per_block": 2, "batch_norm": True,
              "pooling": "avg", "dense_units": [8, 8]}  # fmt: skip
    model = _build("cnn", spec_for("multiclass", "image"), params, dropout=0.5)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Conv2D") == 4 and kinds.count("BatchNormalization") == 4
    assert kinds.count("AveragePooling2D") == 2 and "MaxPooling2D" not in kinds
    assert kinds.count("Dropout") == 4  # after each block and each Dense layer
    assert kinds.count("Dense") == 3
    assert model.get_layer("block_1_conv_0").filters == 6


# --- rnn ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_rnn_stacks_cells_and_reads_images_row_by_row(cell):
    params = {"cell": cell, "units": [5, 4], "bidirectional": True, "dense_units": [3]}
    model = _build("rnn", spec_for("multiclass", "image"), params, dropout=0.1)
    assert model.get_layer("rows_as_steps").output.shape == (None, 8, 8)  # 8 steps of 8
    first, last = (model.get_layer(f"bidirectional_{cell}_{i}") for i in (0, 1))
    assert first.output.shape == (None, 8, 10)  # the whole sequence, both directions
    assert last.output.shape == (None, 8)  # the final state only
    assert type(first.forward_layer).__name__ == {"simple_rnn": "SimpleRNN", "lstm": "LSTM",
                                                  "gru": "GRU"}[cell]  # fmt: skip
    assert model.predict(np.zeros((2, 8, 8, 1), "float32"), verbose=0).shape == (2, 3)


def test_rnn_refuses_tabular_data():
    with pytest.raises(ConfigError) as info:
        _build("rnn", SPECS["binary"])
    message = str(info.value)
    assert "model.type: 'rnn' needs sequences (steps, features)" in message
    assert "vectors of shape (3,)" in message and "synthetic_sequence" in message
