"""What the generative families (``vae``, ``gan``) share: their data rules and their judge.

Data rules: they learn images with pixels in [0, 1] (the decoder and generator end in a
sigmoid), so rank-1 or rank-2 samples are a config error at build time and scaling other
than ``unit`` is one at validation; ``loss`` and ``metrics`` belong to classifiers and are
refused when set to anything but their defaults.

The judge is a Fréchet distance (the FID recipe, with a small classifier in place of
Inception): a Dense classifier is trained on the dataset's own training split, and the mean
and covariance of its penultimate-layer features on generated images are compared with those
on real test images. Lower is better; 0 means the two feature distributions match in mean
and covariance. The classifier is seeded (its initial weights and its data order), so
``trainer eval`` retrains the same one and reproduces the number; within one process it is
trained once per dataset and reused. Everything is evaluated with fixed noise seeds, so the
same weights always give the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from trainer.core.errors import ConfigError

if TYPE_CHECKING:
    from trainer.config.schema import Config
    from trainer.datasets import Dataset, DataSpec

IMAGE_DATASETS = "digits, mnist or fashion_mnist"
FRECHET_SAMPLES = 5000  # generated and real test images compared (fewer if the test split is)
CLASSIFIER_UNITS = (256, 128)  # the features are the 128 activations before the softmax
CLASSIFIER_EPOCHS = 2
_classifiers: dict[tuple, tuple[Any, float]] = {}


# -- data rules --------------------------------------------------------------------------


def require_images(family: str, spec: DataSpec) -> tuple[int, int, int]:
    """(height, width, channels) of the data, or a ConfigError saying images are needed."""
    if len(spec.input_shape) != 3:
        raise ConfigError(
            f"model '{family}'",
            [
                f"model.type: '{family}' generates images of shape (height, width, channels), "
                f"but the dataset gives samples of shape {spec.input_shape}; use an image "
                f"dataset ({IMAGE_DATASETS})"
            ],
        )
    return spec.input_shape


def require_halvings(family: str, spec: DataSpec, halvings: int, key: str) -> tuple[int, int]:
    """The feature-map size after ``halvings`` stride-2 steps; it must divide exactly."""
    height, width, _ = spec.input_shape
    factor = 2**halvings
    if height % factor or width % factor:
        fits = max(k for k in range(halvings + 1) if height % 2**k == 0 and width % 2**k == 0)
        raise ConfigError(
            f"model '{family}'",
            [
                f"{key}: {halvings} stride-2 layers need height and width divisible by "
                f"{factor}, but the images are {height}x{width}; use at most {fits} entries "
                f"in {key}"
            ],
        )
    return height // factor, width // factor


def config_checks(family: str) -> Callable[[Config], Iterator[tuple[tuple, str]]]:
    """The validation rules of a generative family, for ``MODELS.register(checks=...)``."""

    def check(cfg: Config) -> Iterator[tuple[tuple, str]]:
        from trainer.settings.vocabulary import CLASSIFICATION_METRICS, DEFAULT_LOSS

        if cfg.dataset.scaling not in ("default", "unit"):
            yield (
                ("dataset", "scaling"),
                f"model '{family}' needs pixels in [0, 1], but scaling is "
                f"'{cfg.dataset.scaling}'; use scaling: unit (or leave it out)",
            )
        if cfg.loss.type != DEFAULT_LOSS[cfg.task]:
            yield ("loss",), f"model '{family}' defines its own loss; remove `loss`"
        if getattr(cfg.training, "class_weight", "none") != "none":
            yield (
                ("training", "class_weight"),
                f"model '{family}' learns the images, not the labels, so class weights do not "
                "apply; remove it",
            )
        if list(cfg.metrics) != list(CLASSIFICATION_METRICS):
            yield (
                ("metrics",),
                f"model '{family}' reports its own test numbers, not classification metrics; "
                "remove `metrics`",
            )

    return check


# -- fixed noise ---------------------------------------------------------------------------


def noise(seed: int, n: int, latent_dim: int, stream: int = 0) -> np.ndarray:
    """Standard normal latent codes, the same for the same (seed, stream): fixed samples."""
    rng = np.random.default_rng((seed, 7919, stream))
    return rng.standard_normal((n, latent_dim)).astype(np.float32)


def sample_labels(n: int, num_classes: int) -> np.ndarray:
    """Class labels 0, 1, ..., K-1, 0, 1, ...: every class equally often."""
    return (np.arange(n) % num_classes).astype(np.int32)


def predict(network, inputs, batch_size: int):
    """The network's outputs on ``inputs`` (an array or a list of arrays), as NumPy arrays.

    The network is called batch by batch rather than through ``Model.predict``: the arrays
    here are small and each has its own size, and ``predict`` would trace a new graph for
    nearly every call.
    """
    arrays = inputs if isinstance(inputs, list) else [inputs]
    chunks = []
    for start in range(0, len(arrays[0]), batch_size):
        batch = [a[start : start + batch_size] for a in arrays]
        outputs = network(batch if isinstance(inputs, list) else batch[0], training=False)
        chunks.append(
            [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
        )
    joined = [np.concatenate(parts) for parts in zip(*chunks, strict=True)]
    return joined if len(joined) > 1 else joined[0]


# -- the Fréchet distance ------------------------------------------------------------------


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between two feature sets.

    The matrix square root is taken of the symmetric S_a^(1/2) S_b S_a^(1/2), which has
    the same trace of square root as S_a S_b and only real, non-negative eigenvalues.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    middle = root_a @ cov_b @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    distance = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    return max(0.0, float(distance))


def feature_classifier(data: Dataset, seed: int):
    """The (feature model, test accuracy) of the judge for this dataset, trained once."""
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        digest.update(np.ascontiguousarray(array).tobytes())
    key = (seed, digest.hexdigest())
    if key not in _classifiers:
        _classifiers[key] = _train_classifier(data, seed)
    return _classifiers[key]


def _train_classifier(data: Dataset, seed: int):
    import keras

    classes = data.spec.num_classes
    inputs = keras.Input(shape=data.spec.input_shape, name="image")
    x = keras.layers.Flatten()(inputs)
    for i, units in enumerate(CLASSIFIER_UNITS):
        x = keras.layers.Dense(units, activation="relu", name=f"features_{i}",
                               kernel_initializer=keras.initializers.GlorotUniform(seed + i)
                               )(x)  # fmt: skip
    outputs = keras.layers.Dense(
        classes, activation="softmax",
        kernel_initializer=keras.initializers.GlorotUniform(seed + len(CLASSIFIER_UNITS)),
    )(x)  # fmt: skip
    classifier = keras.Model(inputs, outputs, name="frechet_classifier")
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3),
                       loss="sparse_categorical_crossentropy")  # fmt: skip
    for epoch in range(CLASSIFIER_EPOCHS):  # the order is ours, so the result is seeded
        order = np.random.default_rng((seed, 104729, epoch)).permutation(len(data.x_train))
        classifier.fit(data.x_train[order], data.y_train[order], batch_size=128, epochs=1,
                       shuffle=False, verbose=0)  # fmt: skip
    proba = predict(classifier, data.x_test, 1024)
    accuracy = float((proba.argmax(axis=1) == data.y_test).mean())
    features = keras.Model(inputs, x, name="frechet_features")
    return features, accuracy


def sample_quality(generated: np.ndarray, data: Dataset, seed: int) -> dict[str, Any]:
    """Fréchet distances of generated images, and of real training images, to the test split.

    ``frechet_distance`` scores the model; ``real_frechet_distance`` (training vs test
    images, the same number of each) is the floor a perfect generator would reach.
    """
    features, accuracy = feature_classifier(data, seed)
    n = min(len(generated), len(data.x_test), len(data.x_train))
    real = predict(features, data.x_test[:n], 1024)
    fake = predict(features, generated[:n], 1024)
    train = predict(features, data.x_train[:n], 1024)
    return {
        "frechet_distance": frechet_distance(fake, real),
        "real_frechet_distance": frechet_distance(train, real),
        "samples": int(n),
        "classifier_units": list(CLASSIFIER_UNITS),
        "classifier_test_accuracy": accuracy,
    }
