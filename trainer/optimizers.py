"""Optimizers and learning-rate schedules by name, built through Keras's own lookups.

Each entry maps a short config name to a Keras optimizer class name and the keyword
arguments Keras takes (``keras.optimizers.get`` does the construction). ``gd`` is plain
gradient descent on the full training set in one batch; ``momentum`` is SGD with momentum.
Schedules are given in epochs, the unit users think in, and turned into optimizer steps.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from trainer.core.registry import Params, Registry
from trainer.settings.sections import MAX_EPOCHS

OPTIMIZERS = Registry("optimizer")

Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
Positive = Annotated[float, Field(gt=0.0)]


class ExponentialSchedule(Params):
    type: Literal["exponential"] = "exponential"
    decay_rate: float = Field(0.9, gt=0.0, le=1.0, description="Factor per decay_epochs.")
    decay_epochs: float = Field(1.0, gt=0.0, le=MAX_EPOCHS)
    staircase: bool = False


class StepSchedule(Params):
    type: Literal["step"] = "step"
    step_epochs: int = Field(
        10, ge=1, le=MAX_EPOCHS, description="Multiply the rate by gamma every N epochs."
    )
    gamma: float = Field(0.1, gt=0.0, le=1.0)


class CosineSchedule(Params):
    type: Literal["cosine"] = "cosine"
    decay_epochs: int | None = Field(
        None, ge=1, le=MAX_EPOCHS, description="Default: all training epochs."
    )
    alpha: float = Field(0.0, ge=0.0, le=1.0, description="Final rate as a fraction of the first.")


Schedule = Annotated[
    Union[ExponentialSchedule, StepSchedule, CosineSchedule],  # noqa: UP007
    Field(discriminator="type"),
]


class OptimizerParams(Params):
    schedule: Schedule | None = None
    warmup_epochs: float = Field(
        0.0, ge=0.0, le=MAX_EPOCHS,
        description="Linear warm-up: the rate (or the schedule's) rises from near 0 over this "
        "many epochs (fractions allowed); 0: none.",
    )  # fmt: skip
    clipnorm: Positive | None = Field(None, description="Clip each gradient to this norm.")
    clipvalue: Positive | None = Field(None, description="Clip each gradient element.")
    global_clipnorm: Positive | None = Field(None, description="Clip the global gradient norm.")


class GDParams(OptimizerParams):
    type: Literal["gd"] = "gd"
    learning_rate: float = Field(0.01, gt=0.0)


class SGDParams(OptimizerParams):
    type: Literal["sgd"] = "sgd"
    learning_rate: float = Field(0.01, gt=0.0)


class MomentumParams(OptimizerParams):
    type: Literal["momentum"] = "momentum"
    learning_rate: float = Field(0.01, gt=0.0)
    momentum: Fraction = 0.9
    nesterov: bool = False


class AdagradParams(OptimizerParams):
    type: Literal["adagrad"] = "adagrad"
    learning_rate: float = Field(0.01, gt=0.0)
    initial_accumulator_value: float = Field(0.1, ge=0.0)
    epsilon: Positive = 1e-7


class RMSpropParams(OptimizerParams):
    type: Literal["rmsprop"] = "rmsprop"
    learning_rate: float = Field(0.001, gt=0.0)
    rho: Fraction = 0.9
    momentum: Fraction = 0.0
    epsilon: Positive = 1e-7
    centered: bool = False


class AdamParams(OptimizerParams):
    type: Literal["adam"] = "adam"
    learning_rate: float = Field(0.001, gt=0.0)
    beta_1: Fraction = 0.9
    beta_2: Fraction = 0.999
    epsilon: Positive = 1e-7
    amsgrad: bool = False


class AdamWParams(AdamParams):
    type: Literal["adamw"] = "adamw"
    weight_decay: float = Field(0.004, ge=0.0)


class NadamParams(OptimizerParams):
    type: Literal["nadam"] = "nadam"
    learning_rate: float = Field(0.001, gt=0.0)
    beta_1: Fraction = 0.9
    beta_2: Fraction = 0.999
    epsilon: Positive = 1e-7


class AdamaxParams(NadamParams):
    type: Literal["adamax"] = "adamax"


for _params, _keras_name, _description in (
    (GDParams, "SGD", "Full-batch gradient descent: one step per epoch on all training data."),
    (SGDParams, "SGD", "Stochastic gradient descent on mini-batches."),
    (MomentumParams, "SGD", "SGD with (optionally Nesterov) momentum."),
    (AdagradParams, "Adagrad", "Per-parameter rates scaled by accumulated squared gradients."),
    (RMSpropParams, "RMSprop", "Rates scaled by a moving average of squared gradients."),
    (AdamParams, "Adam", "Adaptive moment estimation (Kingma & Ba)."),
    (AdamWParams, "AdamW", "Adam with decoupled weight decay."),
    (NadamParams, "Nadam", "Adam with Nesterov momentum."),
    (AdamaxParams, "Adamax", "Adam with the infinity norm."),
):
    OPTIMIZERS.register(_params, description=_description, full_batch=_params is GDParams)(
        lambda _name=_keras_name: _name  # the factory names the Keras class
    )


def build(params: OptimizerParams, steps_per_epoch: int, epochs: int):
    """A Keras optimizer from validated params; schedules are converted from epochs to steps."""
    import keras

    entry = OPTIMIZERS.get(params.type)
    kwargs = params.kwargs()
    schedule = kwargs.pop("schedule")
    warmup = round(kwargs.pop("warmup_epochs") * steps_per_epoch)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if schedule is not None:
        kwargs["learning_rate"] = _schedule(
            schedule, kwargs["learning_rate"], steps_per_epoch, epochs
        )
    if warmup > 0:
        kwargs["learning_rate"] = linear_warmup()(kwargs["learning_rate"], warmup)
    return keras.optimizers.get({"class_name": entry.factory(), "config": kwargs})


_WARMUP = None


def linear_warmup():
    """The :class:`LinearWarmup` schedule class, made (and registered with Keras, so a saved
    model's optimizer reloads in safe mode) on first use: importing this module imports no
    Keras."""
    global _WARMUP
    if _WARMUP is not None:
        return _WARMUP
    import keras

    @keras.saving.register_keras_serializable(package="trainer")
    class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
        """``rate(step) * min(1, (step + 1) / warmup_steps)``: a constant rate or a schedule,
        ramped up linearly over the first ``warmup_steps`` steps."""

        def __init__(self, rate, warmup_steps: int) -> None:
            if isinstance(rate, dict):
                rate = keras.optimizers.schedules.deserialize(rate)
            self.rate, self.warmup_steps = rate, int(warmup_steps)

        def __call__(self, step):
            step = keras.ops.cast(step, "float32")
            base = self.rate(step) if callable(self.rate) else self.rate
            ramp = keras.ops.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
            return keras.ops.cast(base, "float32") * ramp

        def get_config(self):
            rate = self.rate
            if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
                rate = keras.optimizers.schedules.serialize(rate)
            return {"rate": rate, "warmup_steps": self.warmup_steps}

    _WARMUP = LinearWarmup
    return LinearWarmup


def _schedule(schedule, initial: float, steps_per_epoch: int, epochs: int):
    from keras.optimizers import schedules

    if schedule.type == "exponential":
        return schedules.ExponentialDecay(
            initial, max(1, round(schedule.decay_epochs * steps_per_epoch)),
            schedule.decay_rate, staircase=schedule.staircase,
        )  # fmt: skip
    if schedule.type == "step":
        return schedules.ExponentialDecay(
            initial, schedule.step_epochs * steps_per_epoch, schedule.gamma, staircase=True
        )
    decay_epochs = schedule.decay_epochs or epochs
    return schedules.CosineDecay(initial, decay_epochs * steps_per_epoch, alpha=schedule.alpha)
