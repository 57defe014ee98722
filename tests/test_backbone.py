"""Pretrained backbones (trainer/models/backbone.py): every keras.applications network the
schema names builds under the task's head, with its preprocessing inside the model; weights
from a file the test writes; ImageNet's download failing offline is exit 4; frozen layers."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import fit_and_reload
from tests.test_streaming import folder
from trainer.cli.commands import app
from trainer.core.errors import DataError
from trainer.datasets import DataSpec
from trainer.models import MODELS
from trainer.models.backbone import ARCHITECTURES

runner = CliRunner()
SPEC = DataSpec((28, 28, 1), "multiclass", 5, 1)


def build(spec=SPEC, **params):
    entry = MODELS.get("backbone")
    return entry.factory(spec, **entry.params(**params).kwargs(), l1=0.0, l2=0.0, dropout=0.1)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_every_architecture_builds_under_the_head_with_its_input_handling(architecture):
    import keras

    model = build(architecture=architecture, freeze="all")
    assert model.output_shape == (None, 5)
    names = [layer.name for layer in model.layers]
    assert "gray_to_rgb" in names and "resize_up" in names  # 28x28x1 -> 32x32x3
    network = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    assert network.input_shape == (None, 32, 32, 3) and network.output_shape[-1] > 0
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == {"output"}  # freeze: all trains the head alone


def test_the_preprocessing_is_inside_the_model_and_gray_is_repeated():
    model = build(architecture="resnet50_v2")
    names = [layer.name for layer in model.layers]
    assert names.index("to_0_255") < names.index("to_minus1_1")  # ResNetV2's [-1, 1]
    assert "to_minus1_1" not in [layer.name for layer in build().layers]  # MobileNetV3: its own


def test_freeze_n_freezes_the_first_n_layers_of_the_backbone():
    model = build(freeze=5)
    network = next(layer for layer in model.layers if hasattr(layer, "layers"))
    assert [layer.trainable for layer in network.layers[:5]] == [False] * 5
    assert all(layer.trainable for layer in network.layers[5:])


def test_weights_from_a_file_are_loaded(tmp_path):
    import keras

    keras.utils.set_random_seed(1)
    source = build()
    network = next(layer for layer in source.layers if hasattr(layer, "layers"))
    network.save_weights(tmp_path / "mine.weights.h5")
    keras.utils.set_random_seed(2)
    loaded = build(weights=str(tmp_path / "mine.weights.h5"))
    other = next(layer for layer in loaded.layers if hasattr(layer, "layers"))
    for a, b in zip(network.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(
            network.get_weights(),
            next(layer for layer in build().layers if hasattr(layer, "layers")).get_weights(),
            strict=True,
        )
    )


def test_imagenet_offline_is_a_data_error_saying_where_the_file_goes(monkeypatch, tmp_path):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/x.h5: None -- "
                        "[Errno -3] Temporary failure in name resolution")  # fmt: skip

    monkeypatch.setattr(file_utils, "get_file", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(DataError) as raised:
        build(weights="imagenet")
    assert raised.value.exit_code == 4
    assert "cannot download the ImageNet weights of MobileNetV3Small" in raised.value.message
    assert str(tmp_path / "keras" / "models") in raised.value.hint


@pytest.mark.parametrize(
    ("model", "said"),
    [
        ({"weights": "weights.bin"}, "neither none, imagenet nor a weights file"),
        ({"weights": "missing.weights.h5"}, "no weights file at missing.weights.h5"),
        ({"architecture": "resnet51"}, "resnet50_v2"),
        ({"freeze": -1}, "greater than or equal to 0"),
        ({"freeze": "all"}, "set freeze: none to train it from scratch"),
    ],
)
def test_bad_backbone_settings_are_config_errors(tmp_path, model, said):
    config = {"dataset": "fashion_mnist", "model": {"type": "backbone", **model}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["config", "validate", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split())


def test_standard_scaling_is_refused_for_a_backbone(tmp_path):
    config = {"dataset": {"type": "fashion_mnist", "scaling": "standard"}, "model": "backbone"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["config", "validate", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2 and "takes pixels in [0, 1]" in " ".join(result.output.split())


def test_a_backbone_fine_tunes_saves_and_evaluates_from_an_image_folder(tmp_path):
    root = folder(tmp_path)
    config = {
        "seed": 3,
        "dataset": {
            "type": "image_folder",
            "path": str(root),
            "image_size": [24, 24],
            "validation_split": 0.2,
        },  # fmt: skip
        "model": {"type": "backbone", "architecture": "mobilenet_v3_small"},
        "regularization": {"dropout": 0.2},
        "training": {"epochs": 1, "batch_size": 8},
    }
    fit_and_reload(tmp_path, config)
