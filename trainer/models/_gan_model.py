"""The Keras class of the ``gan`` family: a generator and a discriminator trained in turns.

Registered as a Keras serializable (package ``trainer``), so ``model.keras`` reloads with
``keras.saving.load_model(path, safe_mode=True)`` once this module is imported; the family's
registry entry names it (``custom_objects_module``) so ``trainer eval`` imports it first.
Importing it imports Keras, so the family module imports it only inside the builder.

The training step is TensorFlow's (``tf.GradientTape``): the project runs on the TensorFlow
backend only.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def _cross_entropy(target: float, logits):
    return ops.mean(ops.binary_crossentropy(ops.full_like(logits, target), logits,
                                            from_logits=True))  # fmt: skip


@keras.saving.register_keras_serializable(package="trainer")
class GAN(keras.Model):
    """A generative adversarial network (Goodfellow et al., 2014), non-saturating loss.

    Each step first updates the discriminator on a real batch and a generated one (real
    targets are ``1 - label_smoothing``: one-sided smoothing keeps it from growing
    over-confident), then the generator on fresh noise, to make the discriminator call its
    images real. Each network has its own optimizer; ``compile`` takes both and builds their
    variables at once. Logged: ``d_loss`` (real + fake cross-entropy) and ``g_loss``. When
    ``conditional``, the class label is a second input of both networks (fit's targets are
    the labels). Calling the model generates: ``model(z)`` or ``model([z, labels])``.
    """

    def __init__(self, generator, discriminator, label_smoothing: float = 0.0,
                 conditional: bool = False, **kwargs) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.label_smoothing, self.conditional = float(label_smoothing), bool(conditional)
        self.seed_generator = keras.random.SeedGenerator()
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.built = True

    @property
    def latent_dim(self) -> int:
        return int(self.generator.inputs[0].shape[-1])

    @property
    def metrics(self) -> list:
        return [self.d_loss_tracker, self.g_loss_tracker]

    def compile(self, generator_optimizer="adam", discriminator_optimizer="adam",
                **kwargs) -> None:  # fmt: skip
        """Two optimizers; ``self.optimizer`` is the generator's (its learning rate is logged)."""
        super().compile(optimizer=generator_optimizer, **kwargs)
        self.generator_optimizer = self.optimizer
        self.discriminator_optimizer = keras.optimizers.get(discriminator_optimizer)
        self.generator_optimizer.build(self.generator.trainable_variables)
        self.discriminator_optimizer.build(self.discriminator.trainable_variables)

    def get_compile_config(self) -> dict:
        if not self.compiled:
            return {}
        serialize = keras.saving.serialize_keras_object
        return {
            "generator_optimizer": serialize(self.generator_optimizer),
            "discriminator_optimizer": serialize(self.discriminator_optimizer),
            "steps_per_execution": self.steps_per_execution,
        }

    def compile_from_config(self, config: dict) -> None:
        config = dict(config)
        for key in ("generator_optimizer", "discriminator_optimizer"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        self.compile(**config)

    def generate(self, z, labels=None, training: bool = False):
        return self.generator([z, labels] if self.conditional else z, training=training)

    def discriminate(self, images, labels=None, training: bool = False):
        return self.discriminator([images, labels] if self.conditional else images,
                                  training=training)  # fmt: skip

    def call(self, inputs, training: bool = False):
        return self.generator(inputs, training=training)

    def _noise(self, like):
        return keras.random.normal((ops.shape(like)[0], self.latent_dim), seed=self.seed_generator)

    def losses_of(self, real, labels, training: bool):
        """(discriminator loss, generator loss) on a real batch and as many generated images."""
        fake = self.generate(self._noise(real), labels, training=training)
        real_logits = self.discriminate(real, labels, training=training)
        fake_logits = self.discriminate(fake, labels, training=training)
        d_loss = _cross_entropy(1.0 - self.label_smoothing, real_logits) + _cross_entropy(
            0.0, fake_logits
        )
        return d_loss, _cross_entropy(1.0, fake_logits)

    def train_step(self, data):
        real, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        discriminator, generator = self.discriminator, self.generator
        with tf.GradientTape() as tape:
            d_loss, _ = self.losses_of(real, labels, training=True)
            penalty = sum(discriminator.losses) if discriminator.losses else 0.0
            d_objective = d_loss + penalty
        gradients = tape.gradient(d_objective, discriminator.trainable_variables)
        self.discriminator_optimizer.apply(gradients, discriminator.trainable_variables)

        with tf.GradientTape() as tape:
            fake = self.generate(self._noise(real), labels, training=True)
            g_loss = _cross_entropy(1.0, self.discriminate(fake, labels, training=True))
            g_objective = g_loss + (sum(generator.losses) if generator.losses else 0.0)
        gradients = tape.gradient(g_objective, generator.trainable_variables)
        self.generator_optimizer.apply(gradients, generator.trainable_variables)
        return self._record(d_loss, g_loss)

    def test_step(self, data):
        real, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._record(*self.losses_of(real, labels, training=False))

    def _record(self, d_loss, g_loss) -> dict:
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {metric.name: metric.result() for metric in self.metrics}

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "label_smoothing": self.label_smoothing,
            "conditional": self.conditional,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects=None) -> GAN:
        config = dict(config)
        for key in ("generator", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(
                config[key], custom_objects=custom_objects
            )
        return cls(**config)
