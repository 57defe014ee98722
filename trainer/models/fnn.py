"""Feed-forward network: a stack of Dense layers on flattened inputs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt

from trainer.core.registry import Params
from trainer.models import MODELS, Activation


class FNNParams(Params):
    type: Literal["fnn"] = "fnn"
    units: list[Annotated[PositiveInt, Field(le=100_000)]] = Field(
        [128, 64], min_length=1, description="Units per hidden layer."
    )
    activation: Activation = Field("relu", description="A Keras activation name.")
    batch_norm: bool = Field(False, description="Batch normalization after each hidden layer.")


@MODELS.register(
    FNNParams, regularization=("l1", "l2", "dropout"), tasks=("regression", "binary", "multiclass")
)
def fnn(spec, *, units, activation, batch_norm, l1, l2, dropout):
    """Multilayer perceptron: Dense -> [BatchNorm] -> activation -> [Dropout], repeated."""
    import keras

    from trainer.models.head import kernel_regularizer, output_layer

    inputs = keras.Input(shape=spec.input_shape, name="inputs")
    x = keras.layers.Flatten()(inputs) if len(spec.input_shape) > 1 else inputs
    for i, width in enumerate(units):
        x = keras.layers.Dense(
            width, kernel_regularizer=kernel_regularizer(l1, l2), name=f"dense_{i}"
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"batch_norm_{i}")(x)
        x = keras.layers.Activation(activation, name=f"{activation}_{i}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = output_layer(spec, kernel_regularizer(l1, l2))(x)
    return keras.Model(inputs, outputs, name="fnn")
