"""Convolutional network: convolution blocks, then a Dense head.

Each block is ``convolutions_per_block`` times Conv2D -> [BatchNorm] -> activation, then
pooling, then dropout. The first convolution of a block applies ``strides``. Image
augmentation is the dataset's (``dataset.augmentation``, :mod:`trainer.training.augmentation`), so
every model family on images can use it and the saved model holds none of it.

Feature-map sizes are worked out before any layer is built, so a kernel or pool larger
than the map it meets is a config error naming the key to change, not a TensorFlow error.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt, model_validator

from trainer.core.registry import Params
from trainer.models import MODELS, Activation
from trainer.models.inputs import model_error, require_kind

Width = Annotated[PositiveInt, Field(le=100_000)]
INPUTS = ("image",)


class CNNParams(Params):
    type: Literal["cnn"] = "cnn"
    filters: list[Width] = Field(
        [32, 64], min_length=1, description="Filters of each convolution block."
    )
    convolutions_per_block: int = Field(1, ge=1, le=10, description="Conv2D layers per block.")
    kernel_size: int = Field(3, ge=1, le=15, description="Height and width of every kernel.")
    strides: int = Field(1, ge=1, le=16, description="Stride of each block's first convolution.")
    padding: Literal["same", "valid"] = Field(
        "same", description="'same' keeps the map's size, 'valid' shrinks it by kernel_size - 1."
    )
    pooling: Literal["max", "avg", "none"] = Field("max", description="Pooling after each block.")
    pool_size: int = Field(2, ge=1, le=16, description="Pooling window and stride.")
    batch_norm: bool = Field(False, description="Batch normalization after each convolution.")
    activation: Activation = Field("relu", description="A Keras activation name.")
    dense_units: list[Width] = Field(
        [128], description="Units of the Dense layers between the blocks and the output."
    )

    @model_validator(mode="before")
    @classmethod
    def _augmentation_moved(cls, values):
        if isinstance(values, dict) and "augmentation" in values:
            raise ValueError(
                "augmentation has moved to dataset.augmentation (the same keys, plus contrast); "
                "move the block there"
            )
        return values


def feature_maps(
    image: tuple[int, int], blocks: int, convolutions_per_block: int, kernel_size: int,
    strides: int, padding: str, pooling: str, pool_size: int,
) -> tuple[list[tuple[int, int]], list[str]]:  # fmt: skip
    """The (height, width) leaving each block, or the message for the first layer that cannot
    fit the feature map it meets."""
    size, sizes, problems = image, [], []
    for block in range(1, blocks + 1):
        for conv in range(convolutions_per_block):
            where = f"convolution {conv + 1} of block {block}"
            if kernel_size > min(size):
                problems.append(
                    f"model.kernel_size: {kernel_size} is larger than the {_hw(size)} feature "
                    f"map that {where} sees (input {_hw(image)}{_trail(sizes)}); use "
                    f"kernel_size <= {min(size)}, fewer blocks in model.filters, or less "
                    "downsampling (model.pool_size, model.strides, model.pooling: none)"
                )
                return sizes, problems
            step = strides if conv == 0 else 1
            if padding == "valid":
                size = tuple((s - kernel_size) // step + 1 for s in size)
            else:
                size = tuple(-(-s // step) for s in size)
        if pooling != "none":
            if pool_size > min(size):
                smaller = f"pool_size <= {min(size)}, " if min(size) > 1 else ""
                problems.append(
                    f"model.pool_size: {pool_size} is larger than the {_hw(size)} feature map "
                    f"leaving the convolutions of block {block} (input {_hw(image)}); use "
                    f"{smaller}fewer blocks in model.filters, or model.pooling: none"
                )
                return sizes, problems
            size = tuple(s // pool_size for s in size)
        sizes.append(size)
    return sizes, problems


def _hw(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _trail(sizes: list[tuple[int, int]]) -> str:
    return "".join(f" -> {_hw(s)}" for s in sizes)


@MODELS.register(
    CNNParams,
    regularization=("l1", "l2", "dropout"),
    tasks=("regression", "binary", "multiclass"),
    inputs=INPUTS,
)
def cnn(
    spec, *, filters, convolutions_per_block, kernel_size, strides, padding, pooling, pool_size,
    batch_norm, activation, dense_units, l1, l2, dropout,
):  # fmt: skip
    """Convolution blocks (Conv2D, pooling, dropout) and a Dense head, for images."""
    require_kind("cnn", spec, INPUTS, "use model fnn for tabular data or rnn for sequences")
    _, problems = feature_maps(
        spec.input_shape[:2], len(filters), convolutions_per_block, kernel_size, strides,
        padding, pooling, pool_size,
    )  # fmt: skip
    if problems:
        raise model_error("cnn", spec, problems)

    import keras

    from trainer.models.head import dense_head, kernel_regularizer

    inputs = keras.Input(shape=spec.input_shape, name="inputs")
    x = inputs
    for block, width in enumerate(filters):
        for conv in range(convolutions_per_block):
            name = f"block_{block}_conv_{conv}"
            x = keras.layers.Conv2D(
                width, kernel_size, strides=strides if conv == 0 else 1, padding=padding,
                kernel_regularizer=kernel_regularizer(l1, l2), name=name,
            )(x)  # fmt: skip
            if batch_norm:
                x = keras.layers.BatchNormalization(name=f"{name}_batch_norm")(x)
            x = keras.layers.Activation(activation, name=f"{name}_{activation}")(x)
        if pooling == "max":
            x = keras.layers.MaxPooling2D(pool_size, name=f"block_{block}_max_pool")(x)
        elif pooling == "avg":
            x = keras.layers.AveragePooling2D(pool_size, name=f"block_{block}_avg_pool")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"block_{block}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = dense_head(x, spec, units=dense_units, activation=activation, l1=l1, l2=l2,
                         dropout=dropout)  # fmt: skip
    return keras.Model(inputs, outputs, name="cnn")
