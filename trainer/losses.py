"""Losses by name and keyword arguments, built through Keras's own lookups.

Each entry maps Keras's snake-case loss name to its class (``keras.losses.get`` builds it)
and the tasks it fits; its ``Params`` hold the keyword arguments Keras takes
(``label_smoothing``, ``alpha``, ``gamma``, ``delta``). ``loss: categorical_crossentropy`` is
short for ``{type: categorical_crossentropy}``.

Labels are class indices for every classification task, as the datasets give them. The
categorical losses (``categorical_crossentropy``, ``categorical_focal_crossentropy``,
``kl_divergence``, ``categorical_hinge``) take one-hot labels in Keras, so the trainer wraps
them in :class:`OneHotLabels`, which encodes each batch's indices as it computes the loss:
the datasets, metrics and predictions stay as they are. The wrapper is registered with Keras
(``trainer>OneHotLabels``), so a saved model reloads with its loss in safe mode.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, create_model

from trainer.core.registry import Params, Registry

LOSSES = Registry("loss")

SMOOTHING = "Share of each label's mass spread over the classes (Keras's label_smoothing)."
Smoothing = Annotated[float, Field(ge=0.0, lt=1.0, description=SMOOTHING)]


class LossParams(Params):
    pass


def _simple(name: str) -> type[LossParams]:
    """The params of a loss Keras builds without arguments: its name alone."""
    return create_model(f"{name}_params", __base__=LossParams, type=(Literal[name], name))


class HuberParams(LossParams):
    type: Literal["huber"] = "huber"
    delta: float = Field(1.0, gt=0.0, description="Where the loss turns from squared to linear.")


class BinaryCrossentropyParams(LossParams):
    type: Literal["binary_crossentropy"] = "binary_crossentropy"
    label_smoothing: Smoothing = 0.0


class BinaryFocalParams(LossParams):
    type: Literal["binary_focal_crossentropy"] = "binary_focal_crossentropy"
    apply_class_balancing: bool = Field(False, description="Weight the classes by alpha.")
    alpha: float = Field(0.25, ge=0.0, le=1.0, description="The positive class's weight.")
    gamma: float = Field(2.0, ge=0.0, le=10.0, description="Focusing: down-weights easy examples.")
    label_smoothing: Smoothing = 0.0


class CategoricalCrossentropyParams(LossParams):
    type: Literal["categorical_crossentropy"] = "categorical_crossentropy"
    label_smoothing: Smoothing = 0.0


class CategoricalFocalParams(LossParams):
    type: Literal["categorical_focal_crossentropy"] = "categorical_focal_crossentropy"
    alpha: float = Field(0.25, ge=0.0, le=1.0, description="Weight of every class's term.")
    gamma: float = Field(2.0, ge=0.0, le=10.0, description="Focusing: down-weights easy examples.")
    label_smoothing: Smoothing = 0.0


# name -> (Params, Keras class, tasks, one-hot labels, description)
_TABLE = (
    ("mean_squared_error", None, "MeanSquaredError", ("regression",), "Mean squared error."),
    ("mean_absolute_error", None, "MeanAbsoluteError", ("regression",), "Mean absolute error."),
    ("mean_absolute_percentage_error", None, "MeanAbsolutePercentageError", ("regression",),
     "Mean absolute error as a percentage of the target."),
    ("mean_squared_logarithmic_error", None, "MeanSquaredLogarithmicError", ("regression",),
     "Mean squared error of log(1 + x): relative errors, for positive targets."),
    ("huber", HuberParams, "Huber", ("regression",), "Squared near zero, linear beyond delta."),
    ("log_cosh", None, "LogCosh", ("regression",), "log(cosh(error)): a smooth Huber."),
    ("poisson", None, "Poisson", ("regression",), "Poisson deviance, for counts."),
    ("binary_crossentropy", BinaryCrossentropyParams, "BinaryCrossentropy", ("binary",),
     "Log loss of the positive class."),
    ("binary_focal_crossentropy", BinaryFocalParams, "BinaryFocalCrossentropy", ("binary",),
     "Log loss down-weighting easy examples (Lin et al.)."),
    ("hinge", None, "Hinge", ("binary",), "The SVM's hinge loss."),
    ("squared_hinge", None, "SquaredHinge", ("binary",), "The hinge loss, squared."),
    ("sparse_categorical_crossentropy", None, "SparseCategoricalCrossentropy", ("multiclass",),
     "Log loss of the true class, from its index."),
    ("categorical_crossentropy", CategoricalCrossentropyParams, "CategoricalCrossentropy",
     ("multiclass",), "Log loss against one-hot labels; takes label_smoothing."),
    ("categorical_focal_crossentropy", CategoricalFocalParams, "CategoricalFocalCrossentropy",
     ("multiclass",), "Categorical log loss down-weighting easy examples."),
    ("kl_divergence", None, "KLDivergence", ("multiclass",),
     "Kullback-Leibler divergence from the one-hot labels."),
    ("categorical_hinge", None, "CategoricalHinge", ("multiclass",), "Multiclass hinge loss."),
)  # fmt: skip
ONE_HOT = {"CategoricalCrossentropy", "CategoricalFocalCrossentropy", "KLDivergence",
           "CategoricalHinge"}  # fmt: skip

for _name, _params, _keras_name, _tasks, _description in _TABLE:
    LOSSES.register(
        _params or _simple(_name),
        description=_description,
        tasks=_tasks,
        keras_name=_keras_name,
        one_hot=_keras_name in ONE_HOT,
    )(  # fmt: skip
        lambda _class=_keras_name: _class  # the factory names the Keras class
    )


def tasks() -> dict[str, tuple[str, ...]]:
    """Each loss name -> the tasks it fits."""
    return {entry.name: entry.info["tasks"] for entry in LOSSES.entries()}


def build(params: LossParams, num_classes: int = 0):
    """The Keras loss of validated params (wrapped to take class indices if it needs one-hot
    labels)."""
    import keras

    entry = LOSSES.get(params.type)
    loss = keras.losses.get({"class_name": entry.factory(), "config": params.kwargs()})
    if entry.info["one_hot"]:
        return one_hot_labels()(loss, num_classes)
    return loss


_ONE_HOT_CLASS = None


def one_hot_labels():
    """The :class:`OneHotLabels` loss class, made (and registered with Keras) on first use, so
    importing this module imports no Keras."""
    global _ONE_HOT_CLASS
    if _ONE_HOT_CLASS is not None:
        return _ONE_HOT_CLASS
    import keras

    @keras.saving.register_keras_serializable(package="trainer")
    class OneHotLabels(keras.losses.Loss):
        """A categorical loss computed on class indices, one-hot encoded batch by batch."""

        def __init__(self, loss, num_classes: int, **kwargs) -> None:
            if isinstance(loss, dict):
                loss = keras.losses.deserialize(loss)
            kwargs.setdefault("name", loss.name)
            kwargs.setdefault("reduction", loss.reduction)
            super().__init__(**kwargs)
            self.loss, self.num_classes = loss, int(num_classes)

        def call(self, y_true, y_pred):
            indices = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
            labels = keras.ops.one_hot(indices, self.num_classes, dtype=y_pred.dtype)
            return self.loss.call(labels, y_pred)

        def get_config(self):
            return {**super().get_config(), "loss": keras.losses.serialize(self.loss),
                    "num_classes": self.num_classes}  # fmt: skip

    _ONE_HOT_CLASS = OneHotLabels
    return OneHotLabels
