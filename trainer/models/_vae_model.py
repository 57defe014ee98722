"""The Keras classes of the ``vae`` family: the sampling layer and the VAE model.

They are registered as Keras serializables (package ``trainer``), so ``model.keras`` reloads
with ``keras.saving.load_model(path, safe_mode=True)`` once this module is imported; the
family's registry entry names it (``custom_objects_module``) so ``trainer eval`` imports it
first. Importing it imports Keras, so the family module imports it only inside the builder.

The training step is TensorFlow's (``tf.GradientTape``): the project runs on the TensorFlow
backend only.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="trainer")
class Sampling(keras.layers.Layer):
    """z = mean + exp(log_var / 2) * eps with eps ~ N(0, I): the reparameterisation trick.

    The random generator's state is a variable of the layer, saved with the model and
    seeded through ``keras.utils.set_random_seed``.
    """

    def __init__(self, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True

    def call(self, inputs):
        mean, log_var = inputs
        epsilon = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * epsilon

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="trainer")
class VAE(keras.Model):
    """A variational autoencoder: ``encoder`` gives (mean, log_var) of q(z|x), ``decoder``
    maps z to pixel probabilities.

    The loss is reconstruction + ``beta`` * KL, where reconstruction is the binary
    cross-entropy summed over pixels and KL is KL(q(z|x) || N(0, I)), both averaged over
    the batch; ``beta`` = 1 makes the loss the negative ELBO. When ``conditional``, the
    class label is a second input of both networks (fit's targets are the labels).
    Calling the model reconstructs: decoded encoder means, or decoded samples in training.
    """

    def __init__(self, encoder, decoder, beta: float = 1.0, conditional: bool = False,
                 **kwargs) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.beta, self.conditional = float(beta), bool(conditional)
        self.sampling = Sampling(name="sampling")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")
        self.built = True

    @property
    def latent_dim(self) -> int:
        return int(self.encoder.outputs[0].shape[-1])

    @property
    def metrics(self) -> list:
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def encode(self, images, labels=None, training: bool = False):
        return self.encoder([images, labels] if self.conditional else images, training=training)

    def decode(self, z, labels=None, training: bool = False):
        return self.decoder([z, labels] if self.conditional else z, training=training)

    def call(self, inputs, training: bool = False):
        images, labels = inputs if self.conditional else (inputs, None)
        mean, log_var = self.encode(images, labels, training=training)
        z = self.sampling([mean, log_var]) if training else mean
        return self.decode(z, labels, training=training)

    def terms(self, images, labels, training: bool):
        """The batch's (reconstruction, KL) terms, with z sampled from q(z|x)."""
        mean, log_var = self.encode(images, labels, training=training)
        z = self.sampling([mean, log_var])
        reconstruction = self.decode(z, labels, training=training)
        pixels = ops.binary_crossentropy(images, reconstruction)
        reconstruction_loss = ops.mean(ops.sum(ops.reshape(pixels, (ops.shape(pixels)[0], -1)),
                                               axis=1))  # fmt: skip
        kl = -0.5 * ops.sum(1.0 + log_var - ops.square(mean) - ops.exp(log_var), axis=1)
        return reconstruction_loss, ops.mean(kl)

    def train_step(self, data):
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            reconstruction_loss, kl_loss = self.terms(images, labels, training=True)
            loss = reconstruction_loss + self.beta * kl_loss
            if self.losses:  # L1/L2 kernel penalties
                loss = loss + sum(self.losses)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._record(loss, reconstruction_loss, kl_loss)

    def test_step(self, data):
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        reconstruction_loss, kl_loss = self.terms(images, labels, training=False)
        return self._record(reconstruction_loss + self.beta * kl_loss, reconstruction_loss,
                            kl_loss)  # fmt: skip

    def _record(self, loss, reconstruction_loss, kl_loss) -> dict:
        self.loss_tracker.update_state(loss)
        self.reconstruction_tracker.update_state(reconstruction_loss)
        self.kl_tracker.update_state(kl_loss)
        return {metric.name: metric.result() for metric in self.metrics}

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "beta": self.beta,
            "conditional": self.conditional,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects=None) -> VAE:
        config = dict(config)
        for key in ("encoder", "decoder"):
            config[key] = keras.saving.deserialize_keras_object(
                config[key], custom_objects=custom_objects
            )
        return cls(**config)
