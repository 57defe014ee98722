"""What the speed and memory work promises, checked for correctness (timings live in bench/)."""

import copy
import json

import numpy as np
import pytest

from tests.test_cli import TINY, fit, runner, write_config
from trainer.cli.commands import app
from trainer.datasets import memory, pipeline


def test_training_features_are_a_read_only_view_of_the_pipeline_copy():
    x = np.arange(12, dtype="float32").reshape(6, 2)
    source = pipeline.TrainingBatches(x, np.arange(6, dtype="int32"), batch_size=2, seed=0)
    np.testing.assert_array_equal(source.features, x)
    assert not source.features.flags.owndata  # no second copy of the training split
    assert not source.features.flags.writeable


def test_scaling_copies_once_and_leaves_the_callers_array_alone():
    from trainer.datasets import _fit_scaler

    x = np.array([[0.0, 10.0], [4.0, 30.0]], dtype="float32")
    before = x.copy()
    scaled = _fit_scaler("standard", x, None)(x)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_allclose(scaled, (before - before.mean(0)) / before.std(0), rtol=1e-6)
    assert scaled.dtype == np.float32
    pixels = np.array([[0, 51, 255]], dtype="uint8")
    unit = _fit_scaler("unit", pixels, (0.0, 255.0))(pixels)
    np.testing.assert_allclose(unit, [[0.0, 0.2, 1.0]], rtol=1e-6)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_computes_in_16_bits_with_float32_outputs(tmp_path, precision):
    import keras

    data = copy.deepcopy(TINY)
    data["training"]["precision"] = precision
    result, run_dir = fit(tmp_path, "--json", data=data)
    assert result.exit_code == 0, result.output
    model = keras.saving.load_model(run_dir / "model.keras")
    keras.config.set_dtype_policy("float32")
    assert model.get_layer("dense_0").dtype_policy.name == precision
    assert model.get_layer("output").dtype_policy.name == "float32"
    assert model.get_layer("dense_0").kernel.dtype == "float32"  # weights stay float32
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert np.isfinite(metrics["test"]["loss"]) and metrics["test"]["accuracy"] > 0.3


def test_mixed_precision_is_refused_for_custom_training_steps(tmp_path):
    data = copy.deepcopy(TINY)
    data["model"] = {"type": "vae", "latent_dim": 2}
    data["training"]["precision"] = "mixed_float16"
    result = runner.invoke(app, ["config", "validate", str(write_config(tmp_path, data))])
    assert result.exit_code == 2
    assert "training.precision" in result.output and "supervised" in result.output


def _keras_model(kind: str):
    import keras

    layers = keras.layers
    if kind == "mlp":  # the benchmark's MLP: ~1000 numbers per sample
        body = [layers.Flatten(), layers.Dense(128), layers.Dense(64)]
    else:  # the Keras-example CNN: ~45 000 numbers per sample
        body = [layers.Conv2D(32, 3), layers.MaxPooling2D(2), layers.Conv2D(64, 3),
                layers.MaxPooling2D(2), layers.Flatten()]  # fmt: skip
    return keras.Sequential([keras.Input((28, 28, 1)), *body, layers.Dense(10)])


@pytest.mark.parametrize(
    ("kind", "setting", "batch_size", "multiple", "expected"),
    [
        ("mlp", "auto", 32, 1, 1024),  # small activations: large batches
        ("cnn", "auto", 32, 1, 128),  # 128 x 45k floats fit in 32 MiB, 256 do not
        ("cnn", "auto", 500, 1, 500),  # never less than training already held
        ("cnn", "auto", "full", 1, 128),
        ("mlp", "auto", 32, 3, 1023),  # split evenly over 3 replicas
        ("cnn", 77, 32, 1, 77),  # an explicit setting is taken as it is
    ],
)
def test_auto_eval_batch_size_bounds_activation_memory(kind, setting, batch_size, multiple,
                                                       expected):  # fmt: skip
    from trainer.settings.sections import Training

    model = _keras_model(kind)
    per_sample = pipeline.activations_per_sample(model)
    convolutions = 26 * 26 * 32 + 13 * 13 * 32 + 11 * 11 * 64 + 2 * 5 * 5 * 64
    assert per_sample == 784 + (784 + 128 + 64 if kind == "mlp" else convolutions) + 10
    training = Training(eval_batch_size=setting, batch_size=batch_size)
    assert pipeline.eval_batch_size(training, model, multiple) == expected


def test_an_aligned_split_is_shared_with_tensorflow_not_copied():
    x = memory.aligned_empty((6, 2), "float32")
    x[...] = np.arange(12, dtype="float32").reshape(6, 2)
    assert x.ctypes.data % memory.ALIGNMENT == 0
    source = pipeline.TrainingBatches(x, np.arange(6, dtype="int32"), batch_size=2, seed=0)
    assert np.shares_memory(np.asarray(source._x), x)  # one copy, used by both
    assert not x.flags.writeable  # TensorFlow reads it: it may not change under the tensor
    np.testing.assert_array_equal(source.features, np.arange(12).reshape(6, 2))
    unaligned = np.arange(13, dtype="float32")[1:].reshape(6, 2)  # 4 bytes off: copied
    copied = pipeline.TrainingBatches(unaligned, np.arange(6, dtype="int32"), 2, 0)
    assert not np.shares_memory(np.asarray(copied._x), unaligned) and unaligned.flags.writeable


@pytest.mark.parametrize(
    ("dtype", "shared"),
    [("float32", True), ("float64", True), ("int32", True), ("int64", True),
     ("uint8", False), ("bool", False), ("float16", False)],
)  # fmt: skip
def test_aligned_arrays_of_common_types_are_shared_and_the_rest_copied(dtype, shared):
    x = memory.aligned_empty((5, 3), dtype)
    x[...] = np.arange(15).reshape(5, 3) % 2
    tensor = pipeline.shared_tensor(x)
    np.testing.assert_array_equal(np.asarray(tensor), np.arange(15).reshape(5, 3) % 2)
    assert np.shares_memory(np.asarray(tensor), x) == shared
    assert x.flags.writeable != shared
