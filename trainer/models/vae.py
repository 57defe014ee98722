"""Variational autoencoder: an encoder to a Gaussian latent code, a decoder back to pixels.

``architecture: dense`` flattens the image into Dense layers; ``conv`` halves it with
stride-2 convolutions (``filters``) before the Dense layers, and the decoder mirrors every
layer with transposed convolutions. Regularization: L1/L2 penalise every Dense and
convolution kernel of the encoder and decoder; dropout follows the encoder's hidden Dense
layers (never the decoder's, which would blur every reconstruction and sample).

The report gives the test ELBO (a one-sample estimate with fixed noise), its reconstruction
and KL terms and a Fréchet distance of samples from the prior
(see :mod:`trainer.models.generative`);
the run directory gets ``reconstructions.png`` (rows of test images, each above its
reconstructions), ``samples.png`` (decoded draws from the prior; one column per class when
conditional) and, when ``latent_dim`` is 2, ``latent_space.png`` (test encodings by class).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, PositiveInt

from trainer.core.registry import Params
from trainer.models import MODELS, Activation
from trainer.models.generative import config_checks

if TYPE_CHECKING:
    from trainer.config.schema import Config
    from trainer.datasets import Dataset

Width = Annotated[PositiveInt, Field(le=100_000)]
GRID_COLUMNS, RECONSTRUCTION_ROWS = 10, 4


class VAEParams(Params):
    type: Literal["vae"] = "vae"
    architecture: Literal["dense", "conv"] = Field(
        "conv", description="'dense': Dense layers on flat pixels; 'conv': convolutions first."
    )
    latent_dim: int = Field(16, ge=1, le=1024, description="Size of the latent code z.")
    beta: float = Field(
        1.0, ge=0.0, description="Weight of the KL term (1: the ELBO; >1: a beta-VAE)."
    )
    units: list[Width] = Field(
        [256],
        description="Encoder Dense layers (after the convolutions for 'conv'); the decoder "
        "mirrors them.",
    )
    filters: list[Width] = Field(
        [32, 64],
        min_length=1,
        description="'conv' only: filters of the encoder's stride-2 convolutions; each halves "
        "the image, so height and width must divide by 2**len(filters).",
    )
    kernel_size: int = Field(3, ge=1, le=15, description="'conv' only: kernel height and width.")
    activation: Activation = Field("relu", description="Hidden layers' Keras activation.")
    conditional: bool = Field(False, description="Give both networks the class label too.")


def compile(model, cfg: Config, make_optimizer, **options) -> None:  # noqa: A001
    model.compile(optimizer=make_optimizer(cfg.optimizer), **options)


def logged(cfg: Config) -> list[str]:
    return ["loss", "reconstruction_loss", "kl_loss"]


def evaluate(model, cfg: Config, data: Dataset, artifacts: Path | None = None) -> dict[str, Any]:
    """Test ELBO, reconstruction and KL terms, sample quality; pictures into ``artifacts``."""
    import numpy as np

    from trainer.datasets.pipeline import eval_batch_size
    from trainer.evaluation import pictures
    from trainer.models import generative

    batch, seed = eval_batch_size(cfg.training, model), cfg.seed
    x, y = data.x_test, data.y_test

    def encode(images, labels):
        inputs = [images, labels] if model.conditional else images
        return generative.predict(model.encoder, inputs, batch)

    def decode(z, labels):
        inputs = [z, labels] if model.conditional else z
        return generative.predict(model.decoder, inputs, batch)

    mean, log_var = (np.asarray(a, dtype=np.float64) for a in encode(x, y))
    z = mean + np.exp(0.5 * log_var) * generative.noise(seed, len(x), model.latent_dim, 1)
    reconstructed = np.asarray(decode(z.astype(np.float32), y), dtype=np.float64)
    probability = np.clip(reconstructed, 1e-7, 1 - 1e-7)
    pixels = -(x * np.log(probability) + (1 - x) * np.log(1 - probability))
    reconstruction_loss = float(pixels.reshape(len(x), -1).sum(axis=1).mean())
    kl = -0.5 * (1 + log_var - mean**2 - np.exp(log_var)).sum(axis=1)
    kl_loss = float(kl.mean())
    from_mean = decode(mean.astype(np.float32), y)

    n = min(generative.FRECHET_SAMPLES, len(x))
    labels = generative.sample_labels(n, data.spec.num_classes)
    samples = decode(generative.noise(seed, n, model.latent_dim, 2), labels)
    quality = generative.sample_quality(samples, data, seed)

    if artifacts is not None:
        shown = RECONSTRUCTION_ROWS * GRID_COLUMNS
        pairs = pictures.interleave(x[:shown], from_mean[:shown], GRID_COLUMNS)
        pictures.save_png(artifacts / "reconstructions.png", pictures.grid(pairs, GRID_COLUMNS))
        pictures.save_png(artifacts / "samples.png", sample_grid(model, data, seed))
        if model.latent_dim == 2:
            scatter = pictures.scatter(mean, y, data.spec.class_names)
            pictures.save_png(artifacts / "latent_space.png", scatter)
    return {
        "task": "generative",
        "family": "vae",
        "test": {
            "loss": reconstruction_loss + model.beta * kl_loss,
            "elbo": -(reconstruction_loss + kl_loss),
            "reconstruction_loss": reconstruction_loss,
            "kl_loss": kl_loss,
            "reconstruction_mse": float(((x - from_mean) ** 2).mean()),
            "frechet_distance": quality.pop("frechet_distance"),
        },
        "frechet": quality,
    }


def sample_grid(model, data: Dataset, seed: int):
    """Decoded draws from the prior, the same draws every time (one column per class
    when conditional)."""
    from trainer.evaluation import pictures
    from trainer.models import generative

    classes = data.spec.num_classes
    columns = classes if model.conditional else 8
    n = 8 * columns
    z = generative.noise(seed, n, model.latent_dim, 3)
    inputs = [z, generative.sample_labels(n, classes)] if model.conditional else z
    return pictures.grid(generative.predict(model.decoder, inputs, n), columns)


@MODELS.register(
    VAEParams,
    tasks=("binary", "multiclass"),
    regularization=("l1", "l2", "dropout"),
    inputs=("image",),
    compile=compile,
    evaluate=evaluate,
    logged=logged,
    checks=[config_checks("vae")],
    custom_objects_module="trainer.models._vae_model",
)
def vae(spec, *, architecture, latent_dim, beta, units, filters, kernel_size, activation,
        conditional, l1, l2, dropout):  # fmt: skip
    """Variational autoencoder (dense or convolutional), optionally class-conditional."""
    import keras

    from trainer.models._vae_model import VAE
    from trainer.models.generative import require_halvings, require_images
    from trainer.models.head import kernel_regularizer

    height, width, channels = require_images("vae", spec)
    if architecture == "conv":
        small = require_halvings("vae", spec, len(filters), "model.filters")
    layers = keras.layers
    penalty = {"kernel_regularizer": kernel_regularizer(l1, l2)}

    def label_input():
        label = keras.Input(shape=(), dtype="int32", name="label")
        one_hot = layers.CategoryEncoding(spec.num_classes, output_mode="one_hot",
                                          name="label_one_hot")(label)  # fmt: skip
        return label, one_hot

    image = keras.Input(shape=spec.input_shape, name="image")
    x = image
    if architecture == "conv":
        for i, count in enumerate(filters):
            x = layers.Conv2D(count, kernel_size, strides=2, padding="same",
                              activation=activation, name=f"conv_{i}", **penalty)(x)  # fmt: skip
    x = layers.Flatten(name="flatten")(x)
    encoder_inputs = image
    if conditional:
        label, one_hot = label_input()
        x = layers.Concatenate(name="with_label")([x, one_hot])
        encoder_inputs = [image, label]
    for i, count in enumerate(units):
        x = layers.Dense(count, activation=activation, name=f"dense_{i}", **penalty)(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name=f"dropout_{i}")(x)
    mean = layers.Dense(latent_dim, name="z_mean", **penalty)(x)
    log_var = layers.Dense(latent_dim, name="z_log_var", **penalty)(x)
    encoder = keras.Model(encoder_inputs, [mean, log_var], name="encoder")

    z = keras.Input(shape=(latent_dim,), name="z")
    x, decoder_inputs = z, z
    if conditional:
        label, one_hot = label_input()
        x = layers.Concatenate(name="with_label")([z, one_hot])
        decoder_inputs = [z, label]
    for i, count in enumerate(reversed(units)):
        x = layers.Dense(count, activation=activation, name=f"dense_{i}", **penalty)(x)
    if architecture == "conv":
        depth = filters[-1]
        x = layers.Dense(small[0] * small[1] * depth, activation=activation, name="project",
                         **penalty)(x)  # fmt: skip
        x = layers.Reshape((*small, depth), name="unflatten")(x)
        for i, count in enumerate(reversed(filters)):
            x = layers.Conv2DTranspose(count, kernel_size, strides=2, padding="same",
                                       activation=activation, name=f"deconv_{i}",
                                       **penalty)(x)  # fmt: skip
        pixels = layers.Conv2D(channels, kernel_size, padding="same", activation="sigmoid",
                               name="pixels", **penalty)(x)  # fmt: skip
    else:
        x = layers.Dense(height * width * channels, activation="sigmoid", name="pixels",
                         **penalty)(x)  # fmt: skip
        pixels = layers.Reshape(spec.input_shape, name="to_image")(x)
    decoder = keras.Model(decoder_inputs, pixels, name="decoder")
    return VAE(encoder, decoder, beta=beta, conditional=conditional, name="vae")
