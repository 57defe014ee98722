"""Pretrained backbones: the image classifiers of ``keras.applications``, under the task's head.

``architecture`` names the network (``mobilenet_v3_small``, ``efficientnet_v2_b0``,
``resnet50_v2``, ``convnext_tiny``, ...), built by Keras without its ImageNet top and pooled
to one vector per image; a dropout and the task's output layer follow. ``weights``:

- ``none`` (the default: nothing is downloaded unless asked): random initialisation;
- ``imagenet``: Keras's own download into its cache (``~/.keras/models``, or
  ``$KERAS_HOME/models``) with its hash check; a machine that cannot reach the download fails
  with exit 4 and says where to put the file;
- a path to a weights file of the backbone without its top (what Keras downloads, or what
  ``backbone.save_weights`` wrote), loaded by Keras.

Everything the backbone expects of its input happens inside the model, so ``predict``,
``export`` and ONNX get it too: pixels in [0, 1] (``dataset.scaling: unit``) are taken back to
[0, 255] and through the network's own preprocessing, grayscale is repeated to three channels,
and an image smaller than the network's minimum (32x32) is resized up to it.

``freeze``: ``all`` trains only the head (the backbone's BatchNorm layers then run in
inference mode, as the Keras transfer-learning guide prescribes: Keras 3 runs a layer whose
``trainable`` is False in inference mode), ``none`` trains everything, ``N`` freezes the
backbone's first N layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from trainer.core.errors import DataError
from trainer.core.registry import Params
from trainer.models import MODELS
from trainer.models.inputs import require_kind

INPUTS = ("image",)
MIN_SIZE = 32  # pixels: the smallest input keras.applications builds these networks for
# name -> (Keras class, whether it normalizes 0-255 pixels itself: include_preprocessing, Keras's
# default; ResNetV2 has no such layer and takes [-1, 1])
ARCHITECTURES = {
    "mobilenet_v3_small": ("MobileNetV3Small", True),
    "mobilenet_v3_large": ("MobileNetV3Large", True),
    "efficientnet_v2_b0": ("EfficientNetV2B0", True),
    "efficientnet_v2_b1": ("EfficientNetV2B1", True),
    "efficientnet_v2_b2": ("EfficientNetV2B2", True),
    "efficientnet_v2_b3": ("EfficientNetV2B3", True),
    "resnet50_v2": ("ResNet50V2", False),
    "convnext_tiny": ("ConvNeXtTiny", True),
}
Architecture = Literal[tuple(ARCHITECTURES)]  # type: ignore[valid-type]


class BackboneParams(Params):
    type: Literal["backbone"] = "backbone"
    architecture: Architecture = Field(
        "mobilenet_v3_small", description="A keras.applications image classifier, without top."
    )
    weights: str = Field(
        "none",
        description="none (random), imagenet (Keras's download and cache, hash-checked), or "
        "the path of a weights file of the backbone without its top.",
    )
    freeze: Literal["all", "none"] | Annotated[int, Field(ge=0, le=100_000)] = Field(
        "none",
        description="all: train only the head; none: train everything; N: freeze the "
        "backbone's first N layers.",
    )

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str) -> str:
        if value in ("none", "imagenet"):
            return value
        path = Path(value)
        if not path.name.endswith(".h5"):
            raise ValueError(
                f"'{value}' is neither none, imagenet nor a weights file (.h5 or .weights.h5)"
            )
        return value


def _checks(cfg):
    """The backbone takes pixels in [0, 1], and a weights file that is there."""
    if cfg.dataset.scaling not in ("default", "unit"):
        yield (
            ("dataset", "scaling"),
            f"model 'backbone' takes pixels in [0, 1] and applies its own normalization, but "
            f"scaling is '{cfg.dataset.scaling}'; use scaling: unit (or leave it out)",
        )
    weights = cfg.model.weights
    if weights not in ("none", "imagenet") and not Path(weights).is_file():
        yield (("model", "weights"), f"no weights file at {weights}; give its path, or imagenet")
    if weights == "none" and cfg.model.freeze != "none":
        yield (
            ("model", "freeze"),
            f"freeze: {cfg.model.freeze} keeps layers of a randomly initialised network fixed "
            "(weights: none), so they never learn; set freeze: none to train it from scratch, "
            "or weights: imagenet (or a file) to fine-tune",
        )


@MODELS.register(
    BackboneParams,
    regularization=("l1", "l2", "dropout"),
    tasks=("regression", "binary", "multiclass"),
    inputs=INPUTS,
    checks=[_checks],
)
def backbone(spec, *, architecture, weights, freeze, l1, l2, dropout):
    """A keras.applications network (ImageNet weights optional) under the task's head."""
    require_kind("backbone", spec, INPUTS, "a backbone reads images; use fnn for tables")
    import keras

    from trainer.models.head import kernel_regularizer, output_layer

    height, width, channels = spec.input_shape
    inputs = keras.Input(shape=spec.input_shape, name="inputs")
    x = inputs
    if channels == 1:  # the networks read RGB
        x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
    elif channels != 3:
        from trainer.models.inputs import model_error

        problem = f"model 'backbone' reads grayscale or RGB images, not {channels} channels"
        raise model_error("backbone", spec, [f"{problem}; set dataset.color_mode: rgb"])
    size = (max(height, MIN_SIZE), max(width, MIN_SIZE))
    if size != (height, width):
        x = keras.layers.Resizing(*size, interpolation="bilinear", name="resize_up")(x)
    class_name, preprocesses = ARCHITECTURES[architecture]
    x = keras.layers.Rescaling(255.0, name="to_0_255")(x)  # the networks take 0-255 pixels
    if not preprocesses:  # ResNetV2: the 'tf' mode of its preprocess_input, to [-1, 1]
        x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="to_minus1_1")(x)
    network = _network(class_name, (*size, 3), weights)
    _freeze(network, freeze)
    x = network(x, training=False) if freeze == "all" else network(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = output_layer(spec, kernel_regularizer(l1, l2))(x)
    return keras.Model(inputs, outputs, name=f"backbone_{architecture}")


def _network(class_name: str, shape: tuple[int, int, int], weights: str):
    """The Keras application without its top, average-pooled, with the weights asked for."""
    import keras

    build = getattr(keras.applications, class_name)
    options = {"include_top": False, "pooling": "avg", "input_shape": shape}
    source = None if weights == "none" else weights
    try:
        return build(weights=source, **options)
    except Exception as error:  # Keras raises a bare Exception for a failed download
        if weights == "imagenet" and ("URL fetch failure" in str(error) or isinstance(
                error, OSError | ConnectionError)):  # fmt: skip
            cache = _keras_home() / "models"
            raise DataError(
                f"model.weights: imagenet: cannot download the ImageNet weights of {class_name} "
                f"({str(error)[:200]})",
                hint=f"on a machine without network, copy the file Keras downloads into "
                f"{cache}, or give model.weights the path of a weights file; weights: none "
                "trains from scratch",
            ) from None
        if source is not None and weights != "imagenet":
            raise DataError(
                f"model.weights: {weights}: not weights of {class_name} without its top "
                f"({str(error)[:300]})",
                hint="give the weights file of the same architecture, saved without its top",
            ) from None
        raise


def _freeze(network, freeze) -> None:
    if freeze == "all":
        network.trainable = False
    elif isinstance(freeze, int) and freeze:
        for layer in network.layers[:freeze]:
            layer.trainable = False


def _keras_home() -> Path:
    """Where Keras caches downloads: $KERAS_HOME, else ~/.keras (Keras's own rule)."""
    import os

    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
