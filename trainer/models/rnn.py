"""Recurrent network: stacked SimpleRNN, LSTM or GRU layers, then an optional Dense head.

Sequences ``(steps, features)`` go in as they are; images ``(height, width, channels)``
are read row by row, so a 28x28 MNIST digit is 28 steps of 28 features. Every recurrent
layer but the last returns its whole sequence, so the next one has steps to read; the last
returns its final state, which the head and output layer turn into a prediction.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt

from trainer.core.registry import Params
from trainer.models import MODELS, Activation
from trainer.models.inputs import require_kind

Width = Annotated[PositiveInt, Field(le=100_000)]
INPUTS = ("sequence", "image")
CELLS = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


class RNNParams(Params):
    type: Literal["rnn"] = "rnn"
    cell: Literal["simple_rnn", "lstm", "gru"] = Field(
        "lstm", description="The recurrent layer: Keras SimpleRNN, LSTM or GRU."
    )
    units: list[Width] = Field(
        [64], min_length=1, description="Units of each stacked recurrent layer."
    )
    bidirectional: bool = Field(
        False, description="Read each sequence both ways and concatenate (doubles the cost)."
    )
    recurrent_dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout on the recurrent state, inside each layer."
    )
    dense_units: list[Width] = Field(
        [], description="Units of the Dense layers between the last recurrent layer and the output."
    )
    activation: Activation = Field("relu", description="Activation of the Dense head.")


@MODELS.register(
    RNNParams,
    regularization=("l1", "l2", "dropout"),
    tasks=("regression", "binary", "multiclass"),
    inputs=INPUTS,
)
def rnn(spec, *, cell, units, bidirectional, recurrent_dropout, dense_units, activation,
        l1, l2, dropout):  # fmt: skip
    """Stacked recurrent layers (SimpleRNN, LSTM or GRU) for sequences and image rows."""
    kind = require_kind(
        "rnn", spec, INPUTS,
        "use a sequence dataset such as synthetic_sequence or an image dataset (read row "
        "by row), or model fnn for tabular data",
    )  # fmt: skip
    import keras

    from trainer.models.head import dense_head, kernel_regularizer

    inputs = keras.Input(shape=spec.input_shape, name="inputs")
    x = inputs
    if kind == "image":
        height, width, channels = spec.input_shape
        x = keras.layers.Reshape((height, width * channels), name="rows_as_steps")(x)
    layer_class = getattr(keras.layers, CELLS[cell])
    for i, width in enumerate(units):
        layer = layer_class(
            width, return_sequences=i < len(units) - 1, recurrent_dropout=recurrent_dropout,
            kernel_regularizer=kernel_regularizer(l1, l2),
            recurrent_regularizer=kernel_regularizer(l1, l2), name=f"{cell}_{i}",
        )  # fmt: skip
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{cell}_{i}")
        x = layer(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"{cell}_{i}_dropout")(x)
    outputs = dense_head(x, spec, units=dense_units, activation=activation, l1=l1, l2=l2,
                         dropout=dropout)  # fmt: skip
    return keras.Model(inputs, outputs, name="rnn")
