"""Generative adversarial network: a generator of images and a discriminator judging them.

``architecture: dcgan`` (Radford et al.): the generator projects z to a small feature map,
doubles it with stride-2 transposed convolutions (``filters``, from the smallest map up,
with batch normalization) and ends in a stride-1 convolution to the pixels; the
discriminator mirrors it with stride-2 convolutions.
``mlp``: Dense layers both ways (``units``). Hidden layers use ``activation`` (LeakyReLU,
slope 0.2, by default); the generator ends in a sigmoid, the data's [0, 1] pixel range.
Regularization applies to the discriminator only: L1/L2 penalise its kernels and dropout
follows each of its hidden layers (as in the DCGAN TensorFlow tutorial); the generator is
left free, as penalties there only blur its samples.

Each network may have its own optimizer (``generator_optimizer``, ``discriminator_optimizer``,
same settings as the top-level ``optimizer``, which is the fallback). The report gives the
test-set generator and discriminator losses (fixed noise), the discriminator's accuracy, and
a Fréchet distance of generated to real test images (see :mod:`trainer.models.generative`); the run
directory gets ``samples.png``, and ``samples/epoch_NNN.png`` every ``sample_every`` epochs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, PositiveInt

from trainer.core.registry import Params
from trainer.models import MODELS, Activation
from trainer.models.generative import config_checks
from trainer.optimizers import OPTIMIZERS
from trainer.settings.sections import MAX_EPOCHS

if TYPE_CHECKING:
    from trainer.config.schema import Config
    from trainer.datasets import Dataset

Width = Annotated[PositiveInt, Field(le=100_000)]
Optimizer = OPTIMIZERS.params_union()
GRID_ROWS = 8


class GANParams(Params):
    type: Literal["gan"] = "gan"
    architecture: Literal["dcgan", "mlp"] = Field(
        "dcgan", description="'dcgan': (transposed) convolutions; 'mlp': Dense layers."
    )
    latent_dim: int = Field(64, ge=1, le=1024, description="Size of the generator's noise z.")
    filters: list[Width] = Field(
        [128, 64],
        min_length=1,
        description="'dcgan' only: filters of the generator's transposed convolutions, from "
        "the smallest feature map up; each doubles the map, so height and width must divide "
        "by 2**len(filters). The discriminator uses them in reverse.",
    )
    units: list[Width] = Field(
        [256, 512],
        min_length=1,
        description="'mlp' only: generator Dense layers; the discriminator uses them in reverse.",
    )
    kernel_size: int = Field(5, ge=1, le=15, description="'dcgan' only: kernel size.")
    batch_norm: bool = Field(True, description="Batch normalization in the generator.")
    activation: Activation = Field("leaky_relu", description="Hidden layers' Keras activation.")
    label_smoothing: float = Field(
        0.1, ge=0.0, le=0.5, description="One-sided: the discriminator's real targets are 1 - this."
    )
    conditional: bool = Field(False, description="Give both networks the class label too.")
    sample_every: int = Field(
        0,
        ge=0,
        le=MAX_EPOCHS,
        description="Write a sample grid every N epochs (0: only at the end).",
    )
    generator_optimizer: Optimizer | None = Field(  # type: ignore[valid-type]
        None, description="Default: the top-level optimizer."
    )
    discriminator_optimizer: Optimizer | None = Field(  # type: ignore[valid-type]
        None, description="Default: the top-level optimizer."
    )


def compile(model, cfg: Config, make_optimizer, **options) -> None:  # noqa: A001
    params = cfg.model
    model.compile(
        generator_optimizer=make_optimizer(params.generator_optimizer or cfg.optimizer),
        discriminator_optimizer=make_optimizer(params.discriminator_optimizer or cfg.optimizer),
        **options,
    )


def logged(cfg: Config) -> list[str]:
    return ["d_loss", "g_loss"]


def evaluate(model, cfg: Config, data: Dataset, artifacts: Path | None = None) -> dict[str, Any]:
    """Test losses and sample quality with fixed noise; ``samples.png`` into ``artifacts``."""
    import numpy as np

    from trainer.datasets.pipeline import eval_batch_size
    from trainer.evaluation import pictures
    from trainer.models import generative

    batch, seed = eval_batch_size(cfg.training, model), cfg.seed
    n = min(generative.FRECHET_SAMPLES, len(data.x_test))
    real, labels = data.x_test[:n], data.y_test[:n]  # generated with the test split's labels
    z = generative.noise(seed, n, model.latent_dim, 4)

    def predict(network, inputs):
        inputs = [inputs, labels] if model.conditional else inputs
        return np.asarray(generative.predict(network, inputs, batch), np.float64)

    fake = predict(model.generator, z).astype(np.float32)
    real_logits = predict(model.discriminator, real)
    fake_logits = predict(model.discriminator, fake)
    smooth = 1.0 - model.label_smoothing
    d_loss = _cross_entropy(smooth, real_logits) + _cross_entropy(0.0, fake_logits)
    quality = generative.sample_quality(fake, data, seed)
    if artifacts is not None:
        pictures.save_png(artifacts / "samples.png", sample_grid(model, data, seed))
    return {
        "task": "generative",
        "family": "gan",
        "test": {
            "d_loss": d_loss,
            "g_loss": _cross_entropy(1.0, fake_logits),
            "discriminator_accuracy": float(
                ((real_logits > 0).mean() + (fake_logits <= 0).mean()) / 2
            ),
            "frechet_distance": quality.pop("frechet_distance"),
        },
        "frechet": quality,
    }


def _cross_entropy(target: float, logits) -> float:
    """Binary cross-entropy of sigmoid(logits) against ``target``, in a stable form."""
    import numpy as np

    logits = np.asarray(logits, dtype=np.float64)
    losses = np.maximum(logits, 0) - logits * target + np.log1p(np.exp(-np.abs(logits)))
    return float(losses.mean())


def sample_grid(model, data: Dataset, seed: int):
    """Generated images from the same noise every time (one column per class when
    conditional), so grids from different epochs show the same samples improving."""
    from trainer.evaluation import pictures
    from trainer.models import generative

    classes = data.spec.num_classes
    columns = classes if model.conditional else 8
    n = GRID_ROWS * columns
    z = generative.noise(seed, n, model.latent_dim, 5)
    inputs = [z, generative.sample_labels(n, classes)] if model.conditional else z
    return pictures.grid(generative.predict(model.generator, inputs, n), columns)


def callbacks(model, cfg: Config, data: Dataset, run_dir: Path) -> list:
    """A sample grid every ``sample_every`` epochs, into ``run_dir/samples/``."""
    every = cfg.model.sample_every
    if not every:
        return []
    import keras

    from trainer.evaluation import pictures

    class SampleGrid(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % every == 0:
                path = run_dir / "samples" / f"epoch_{epoch + 1:03d}.png"
                pictures.save_png(path, sample_grid(self.model, data, cfg.seed))

    return [SampleGrid()]


@MODELS.register(
    GANParams,
    tasks=("binary", "multiclass"),
    regularization=("l1", "l2", "dropout"),
    inputs=("image",),
    compile=compile,
    evaluate=evaluate,
    logged=logged,
    callbacks=callbacks,
    checks=[config_checks("gan")],
    custom_objects_module="trainer.models._gan_model",
)
def gan(spec, *, architecture, latent_dim, filters, units, kernel_size, batch_norm, activation,
        label_smoothing, conditional, sample_every, generator_optimizer,
        discriminator_optimizer, l1, l2, dropout):  # fmt: skip
    """Generative adversarial network (DCGAN or MLP), optionally class-conditional."""
    import keras

    from trainer.models._gan_model import GAN
    from trainer.models.generative import require_halvings, require_images
    from trainer.models.head import kernel_regularizer

    del sample_every, generator_optimizer, discriminator_optimizer  # used by the hooks
    height, width, channels = require_images("gan", spec)
    if architecture == "dcgan":
        small = require_halvings("gan", spec, len(filters), "model.filters")
    layers = keras.layers
    penalty = {"kernel_regularizer": kernel_regularizer(l1, l2)}

    def one_hot_label():
        label = keras.Input(shape=(), dtype="int32", name="label")
        return label, layers.CategoryEncoding(spec.num_classes, output_mode="one_hot",
                                              name="label_one_hot")(label)  # fmt: skip

    z = keras.Input(shape=(latent_dim,), name="z")
    x, generator_inputs = z, z
    if conditional:
        label, one_hot = one_hot_label()
        x = layers.Concatenate(name="with_label")([z, one_hot])
        generator_inputs = [z, label]
    if architecture == "dcgan":
        x = layers.Dense(small[0] * small[1] * filters[0], use_bias=not batch_norm,
                         name="project")(x)  # fmt: skip
        if batch_norm:
            x = layers.BatchNormalization(name="project_batch_norm")(x)
        x = layers.Activation(activation, name="project_activation")(x)
        x = layers.Reshape((*small, filters[0]), name="unflatten")(x)
        for i, count in enumerate(filters):
            x = layers.Conv2DTranspose(count, kernel_size, strides=2, padding="same",
                                       use_bias=not batch_norm, name=f"deconv_{i}")(x)  # fmt: skip
            if batch_norm:
                x = layers.BatchNormalization(name=f"batch_norm_{i}")(x)
            x = layers.Activation(activation, name=f"activation_{i}")(x)
        # A stride-1 convolution makes the pixels: a stride-2 layer there computes odd and
        # even pixels from different kernel taps, which shows as a 2-pixel checkerboard.
        pixels = layers.Conv2D(channels, kernel_size, padding="same", activation="sigmoid",
                               name="pixels")(x)  # fmt: skip
    else:
        for i, count in enumerate(units):
            x = layers.Dense(count, use_bias=not batch_norm, name=f"dense_{i}")(x)
            if batch_norm:
                x = layers.BatchNormalization(name=f"batch_norm_{i}")(x)
            x = layers.Activation(activation, name=f"activation_{i}")(x)
        x = layers.Dense(height * width * channels, activation="sigmoid", name="pixels")(x)
        pixels = layers.Reshape(spec.input_shape, name="to_image")(x)
    generator = keras.Model(generator_inputs, pixels, name="generator")

    # The discriminator meets the label at its input, so every layer can check the image
    # against it: as a learned extra image channel (dcgan) or beside the pixels (mlp).
    image = keras.Input(shape=spec.input_shape, name="image")
    x, discriminator_inputs = image, image
    if conditional:
        label, one_hot = one_hot_label()
        discriminator_inputs = [image, label]
    if architecture == "dcgan":
        if conditional:
            plane = layers.Dense(height * width, name="label_plane")(one_hot)
            plane = layers.Reshape((height, width, 1), name="label_channel")(plane)
            x = layers.Concatenate(name="with_label")([image, plane])
        for i, count in enumerate(reversed(filters)):
            x = layers.Conv2D(count, kernel_size, strides=2, padding="same", name=f"conv_{i}",
                              **penalty)(x)  # fmt: skip
            x = layers.Activation(activation, name=f"activation_{i}")(x)
            if dropout > 0:
                x = layers.Dropout(dropout, name=f"dropout_{i}")(x)
        x = layers.Flatten(name="flatten")(x)
    else:
        x = layers.Flatten(name="flatten")(x)
        if conditional:
            x = layers.Concatenate(name="with_label")([x, one_hot])
        for i, count in enumerate(reversed(units)):
            x = layers.Dense(count, name=f"dense_{i}", **penalty)(x)
            x = layers.Activation(activation, name=f"activation_{i}")(x)
            if dropout > 0:
                x = layers.Dropout(dropout, name=f"dropout_{i}")(x)
    logits = layers.Dense(1, name="logit", **penalty)(x)
    discriminator = keras.Model(discriminator_inputs, logits, name="discriminator")
    return GAN(generator, discriminator, label_smoothing=label_smoothing,
               conditional=conditional, name="gan")  # fmt: skip
