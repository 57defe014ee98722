"""The config's plain sections: regularization, early stopping, checkpoints, training (with its
distribution), tracking, and a dataset's augmentation. Each is a pydantic model with bounds and
descriptions; what the settings do lives in the packages that read them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from trainer.core.registry import bare_type


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# Ceilings the code downstream can honour: step counters, batch and shape sizes are int32 in
# TensorFlow and XLA, epochs are counted one by one, and nothing needs more.
MAX_COUNT = 2**31 - 1
MAX_EPOCHS = 1_000_000
# What the validators below accept, as types: the exported JSON Schema reads these bounds
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]
Weight = Annotated[float, Field(gt=0)]


def _positive_int_or(word: str, value: Any) -> Any:
    """Accept a positive integer (up to MAX_COUNT) or the one keyword; YAML booleans are not
    integers here."""
    if value == word or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        if value != word and value > MAX_COUNT:
            raise ValueError(f"must be at most {MAX_COUNT:,} (2**31 - 1) (got {value:.3g})")
        return value
    raise ValueError(f"must be a positive integer or '{word}' (got {value!r})")


class Augmentation(BaseModel):
    """Random image transformations applied to training batches only."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    flip: Literal["none", "horizontal", "vertical", "horizontal_and_vertical"] = Field(
        "none", description="Random mirroring (Keras RandomFlip mode); none for digits and text."
    )
    rotation: float = Field(
        0.0, ge=0.0, le=0.5, description="Largest rotation, as a fraction of a full turn."
    )
    translation: float = Field(
        0.0, ge=0.0, lt=1.0, description="Largest shift, as a fraction of height and width."
    )
    zoom: float = Field(
        0.0, ge=0.0, lt=1.0, description="Largest zoom in or out, as a fraction of the size."
    )
    contrast: float = Field(
        0.0, ge=0.0, le=1.0, description="Largest contrast change: a factor in [1-c, 1+c]."
    )
    fill_mode: Literal["constant", "reflect", "wrap", "nearest"] = Field(
        "constant", description="How pixels moved in from outside the image are filled."
    )

    def active(self) -> bool:
        return any(getattr(self, k) for k in ("rotation", "translation", "zoom", "contrast")) or (
            self.flip != "none"
        )


Device = Annotated[str, StringConstraints(pattern=r"^(cpu|gpu):\d+$")]


DistributionType = Literal["none", "mirrored", "multi_host"]


class Distribution(BaseModel):
    """How many devices or machines train one model (see :mod:`trainer.training.distribution`)."""

    model_config = ConfigDict(extra="forbid")

    type: DistributionType = Field(
        "none",
        description="none: one device; mirrored: every local GPU (or `devices`); multi_host: "
        "several processes that read the cluster from JAX_* variables, TF_CONFIG or SLURM "
        "(JAX backend).",
    )
    devices: list[Device] | None = Field(
        None, description="mirrored only: the local devices, e.g. [gpu:0, gpu:1]."
    )
    timeout: int = Field(
        300, ge=1, le=7 * 86400, description="multi_host: seconds to wait for the other processes."
    )


UNSUPPORTED = (
    "'multi_host' runs on the JAX backend only: TensorFlow's MultiWorkerMirroredStrategy "
    "fails with Keras 3 fit (keras-team/keras#20585); set training.backend: jax"
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TensorBoardSettings(_Section):
    enabled: bool = Field(True, description="Write TensorBoard logs to RUN_DIR/tensorboard/.")
    histogram_freq: int = Field(
        0,
        ge=0,
        le=MAX_EPOCHS,
        description="Weight histograms every N epochs (0: none; they cost time).",
    )
    write_graph: bool = Field(True, description="The model's graph, once per run.")


class MlflowSettings(_Section):
    uri: str = Field(
        "sqlite:///mlflow.db",
        description="Tracking URI: a database (sqlite:///path.db) or a server (http://host:5000).",
    )
    experiment: str | None = Field(None, description="Experiment name; default: the run's name.")
    artifact_location: str | None = Field(
        None,
        description="Where a new experiment keeps artifacts; default: mlartifacts/ beside an "
        "SQLite database, else the server's default.",
    )
    log_model: bool = Field(True, description="Upload model.keras as an artifact.")


class Tracking(_Section):
    tensorboard: TensorBoardSettings = Field(default_factory=TensorBoardSettings)
    mlflow: MlflowSettings | None = Field(None, description="Omit or null: no MLflow.")

    # json_schema_input_type: the forms each shorthand accepts, for the exported JSON Schema
    @field_validator(
        "tensorboard", mode="before", json_schema_input_type=TensorBoardSettings | bool
    )
    @classmethod
    def _on_off(cls, value: Any) -> Any:
        """`tensorboard: false` turns it off; `tensorboard: true` takes the defaults."""
        return {"enabled": value} if isinstance(value, bool) else value

    @field_validator("mlflow", mode="before", json_schema_input_type=MlflowSettings | str | None)
    @classmethod
    def _uri_only(cls, value: Any) -> Any:
        """`mlflow: sqlite:///mlflow.db` is shorthand for `mlflow: {uri: ...}`."""
        return {"uri": value} if isinstance(value, str) else value


class Regularization(Section):
    l1: float = Field(
        0.0, ge=0.0, description="L1 penalty on weight kernels (Dense, Conv2D, recurrent)."
    )
    l2: float = Field(
        0.0, ge=0.0, description="L2 penalty on weight kernels (Dense, Conv2D, recurrent)."
    )
    dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Dropout after each hidden layer (Dense, convolution block, recurrent).",
    )


class EarlyStopping(Section):
    monitor: str = Field("val_loss", description="A quantity logged every epoch.")
    patience: int = Field(
        3, ge=0, le=MAX_EPOCHS, description="Epochs without improvement before stopping."
    )
    min_delta: float = Field(0.0, ge=0.0, description="Smallest change that counts.")
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best_weights: bool = True


class Checkpoint(Section):
    every_steps: int = Field(
        0,
        ge=0,
        le=MAX_COUNT,
        description="Also checkpoint every N optimizer steps (0: at epoch ends only).",
    )
    keep: int = Field(3, ge=1, le=10_000, description="How many recent checkpoints to keep.")


class Training(Section):
    epochs: int = Field(10, ge=1, le=MAX_EPOCHS)
    batch_size: Count | Literal["full"] = Field(
        32, description="Samples per step; 'full' is full-batch gradient descent."
    )
    device: Literal["auto", "cpu", "gpu"] = "auto"
    steps_per_execution: Count | Literal["auto"] = Field(
        "auto",
        description="Optimizer steps per call into the compiled graph (fewer Python round-trips); "
        "'auto' takes up to 64 (on backends fed from Python, a divisor of the steps per epoch).",
    )
    jit_compile: bool | Literal["auto"] = Field(
        "auto",
        description="XLA compilation; 'auto' uses it on GPUs, and on CPUs for models of Dense "
        "layers only (convolutions measured slower with it: see bench/RESULTS.md).",
    )
    backend: Literal["auto", "tensorflow", "jax"] = Field(
        "auto", description="Keras backend; 'auto' follows KERAS_BACKEND, else TensorFlow."
    )
    eval_batch_size: Count | Literal["auto"] = Field(
        "auto",
        description="Batch size for validation, evaluation and prediction; 'auto' takes the "
        "largest power of two up to 1024 whose activations fit in 32 MiB, and at least "
        "batch_size.",
    )
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = Field(
        "float32",
        description="Keras dtype policy: mixed_float16 (with loss scaling) or mixed_bfloat16 "
        "compute in 16 bits and keep float32 weights; they pay off on GPUs, not on most CPUs.",
    )
    class_weight: Literal["none", "balanced"] | dict[int | str, Weight] = Field(
        "none",
        description="Weigh each class's examples in the loss (classification): 'balanced' "
        "weighs class c by n / (k * n_c); a mapping {class name or index: weight} sets them, "
        "and classes it leaves out weigh 1.",
    )
    distribution: Distribution = Field(
        default_factory=Distribution,
        description="Devices or machines that train together; batch_size is the global batch.",
    )
    lr_scaling: Literal["none", "linear"] = Field(
        "none", description="linear: multiply learning_rate by the number of replicas."
    )

    _distribution = field_validator(
        "distribution", mode="before", json_schema_input_type=Distribution | DistributionType
    )(bare_type)

    @field_validator("class_weight", mode="before")
    @classmethod
    def _class_names_not_booleans(cls, value):
        if isinstance(value, dict):
            for key, weight in value.items():
                if isinstance(key, bool):
                    raise ValueError(
                        f"class {key!r} is a boolean: YAML reads yes, no, true and false as "
                        "booleans; quote class names ('yes': 9.0)"
                    )
                if not isinstance(weight, int | float) or isinstance(weight, bool) or weight <= 0:
                    raise ValueError(f"the weight of class {key!r} must be a positive number")
        return value

    @field_validator("steps_per_execution", mode="before")
    @classmethod
    def _positive_or_auto(cls, value):
        return _positive_int_or("auto", value)

    @field_validator("eval_batch_size", mode="before")
    @classmethod
    def _eval_positive_or_auto(cls, value):
        return _positive_int_or("auto", value)

    @field_validator("batch_size", mode="before")
    @classmethod
    def _positive_or_full(cls, value):
        return _positive_int_or("full", value)
