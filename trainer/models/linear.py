"""Linear and logistic regression: one Dense layer, the task picks the link function."""

from __future__ import annotations

from typing import Literal

from trainer.core.registry import Params
from trainer.models import MODELS


class LinearParams(Params):
    type: Literal["linear"] = "linear"


def coefficients(model) -> dict:
    """The learned weights and bias, so a user can read off w and b."""
    kernel, bias = model.get_layer("output").get_weights()
    return {"weights": kernel.T.squeeze().tolist(), "bias": bias.squeeze().tolist()}


@MODELS.register(
    LinearParams,
    regularization=("l1", "l2"),
    tasks=("regression", "binary", "multiclass"),
    describe=coefficients,
)
def linear(spec, *, l1, l2, dropout):
    """Linear regression (identity link), logistic or softmax regression (classification)."""
    import keras

    from trainer.models.head import kernel_regularizer, output_layer

    inputs = keras.Input(shape=spec.input_shape, name="inputs")
    x = keras.layers.Flatten()(inputs) if len(spec.input_shape) > 1 else inputs
    outputs = output_layer(spec, kernel_regularizer(l1, l2))(x)
    return keras.Model(inputs, outputs, name="linear")
