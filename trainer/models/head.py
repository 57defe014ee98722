"""The output layer and the default loss that follow from the dataset's task."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

    from trainer.datasets import DataSpec


def output_layer(spec: DataSpec, regularizer=None, name: str = "output") -> keras.layers.Layer:
    """Dense output: linear for regression, sigmoid for binary, softmax for multiclass."""
    import keras

    if spec.task == "regression":
        units, activation = spec.target_dim, "linear"
    elif spec.task == "binary":
        units, activation = 1, "sigmoid"
    else:
        units, activation = spec.num_classes, "softmax"
    # float32 outputs under a mixed-precision policy: softmax and the loss stay stable.
    return keras.layers.Dense(
        units, activation=activation, kernel_regularizer=regularizer, name=name, dtype="float32"
    )


def kernel_regularizer(l1: float, l2: float):
    """An L1, L2 or L1+L2 kernel penalty, or None when both are zero."""
    import keras

    if l1 == 0 and l2 == 0:
        return None
    return keras.regularizers.L1L2(l1=l1, l2=l2)


def dense_head(x, spec: DataSpec, *, units, activation, l1: float, l2: float, dropout: float):
    """Dense layers (each followed by dropout when set), then the task's output layer."""
    import keras

    for i, width in enumerate(units):
        x = keras.layers.Dense(
            width, activation=activation, kernel_regularizer=kernel_regularizer(l1, l2),
            name=f"dense_{i}",
        )(x)  # fmt: skip
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"dense_{i}_dropout")(x)
    return output_layer(spec, kernel_regularizer(l1, l2))(x)
