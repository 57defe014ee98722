"""Image augmentation: random flips, rotations, shifts, zooms and contrast on training batches.

``dataset.augmentation`` names the transformations; Keras's random image layers
(RandomFlip, RandomRotation, RandomTranslation, RandomZoom, RandomContrast) carry them out.
They act on training batches only, and are not part of the saved model: :func:`for_training`
puts them in front of the model in a second Keras model that ``fit`` trains, sharing every
weight, while ``model.keras``, validation, ``trainer eval`` and prediction use the model as
configured. Each layer gets its own seed derived from the run's, and its random state is a
model variable, so checkpoints hold it and a resumed run draws the same transformations as
an uninterrupted one. :func:`write_preview` draws a PNG grid of augmented training images.

Validation (which datasets and models take augmentation) needs no TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trainer.settings.sections import Augmentation

if TYPE_CHECKING:
    import numpy as np

    from trainer.config.schema import Config

PREVIEW = "augmentation.png"
PREVIEW_IMAGES, PREVIEW_ROWS = 8, 3  # originals in the top row, then three augmented rows
SEED_STRIDE = 7919  # a prime: each layer's seed differs from every other layer's and run's


def value_range(x: np.ndarray) -> tuple[float, float]:
    """The training images' range of values, which RandomContrast clips to."""
    import numpy as np

    if hasattr(x, "value_range"):  # streamed images: the range their scaling maps 0-255 to
        return x.value_range
    low, high = float(np.min(x)), float(np.max(x))
    return (low, high) if high > low else (low, low + 1.0)


def build_layers(augmentation: Augmentation, seed: int, values: tuple[float, float]) -> list:
    """Keras's random image layers for the non-zero settings, in a fixed order and seeded."""
    import keras

    fill = {"fill_mode": augmentation.fill_mode}
    wanted = [
        (augmentation.flip != "none", keras.layers.RandomFlip, (augmentation.flip,), {}),
        (augmentation.rotation, keras.layers.RandomRotation, (augmentation.rotation,), fill),
        (augmentation.translation, keras.layers.RandomTranslation,
         (augmentation.translation, augmentation.translation), fill),
        (augmentation.zoom, keras.layers.RandomZoom, (augmentation.zoom,), fill),
        (augmentation.contrast, keras.layers.RandomContrast, (augmentation.contrast,),
         {"value_range": values}),
    ]  # fmt: skip
    layers = []
    for i, (on, layer, args, options) in enumerate(wanted):
        if on:
            name = "random_" + layer.__name__.removeprefix("Random").lower()
            layer_seed = (seed * SEED_STRIDE + i + 1) % 2**31
            layers.append(layer(*args, **options, seed=layer_seed, name=name))
    return layers


def for_training(model, cfg: Config, x_train: np.ndarray):
    """The model ``fit`` trains: ``model`` itself, or augmentation layers in front of it.

    The second model shares ``model``'s layers, so training it trains ``model``; Keras runs
    the random layers only when training, so validation inside ``fit`` sees the images as
    they are.
    """
    augmentation = getattr(cfg.dataset, "augmentation", None)
    if augmentation is None or not augmentation.active():
        return model
    import keras

    from trainer.core.errors import ConfigError
    from trainer.models.inputs import SHAPES, input_kind

    shape = tuple(model.input_shape[1:])
    if input_kind(shape) != "image":
        raise ConfigError("dataset", [
            f"dataset.augmentation: applies to images {SHAPES['image']}, but the dataset's "
            f"samples have shape {shape}; remove it, or give the dataset images"])  # fmt: skip
    inputs = keras.Input(shape=shape, name="images")
    x = inputs
    for layer in build_layers(augmentation, cfg.seed, value_range(x_train)):
        x = layer(x)
    return keras.Model(inputs, model(x), name=f"augmented_{model.name}")


def augment(images: np.ndarray, augmentation: Augmentation, seed: int,
            values: tuple[float, float] | None = None) -> np.ndarray:  # fmt: skip
    """``images`` as one training batch would see them (NumPy in, NumPy out)."""
    import keras
    import numpy as np

    x = keras.ops.convert_to_tensor(np.asarray(images, dtype="float32"))
    for layer in build_layers(augmentation, seed, values or value_range(images)):
        x = layer(x, training=True)
    return np.asarray(keras.ops.convert_to_numpy(x))


def preview(x_train: np.ndarray, augmentation: Augmentation, seed: int) -> np.ndarray:
    """A picture: the first training images in the top row, augmented copies below."""
    import numpy as np

    from trainer.evaluation.pictures import grid

    originals = np.asarray(x_train[:PREVIEW_IMAGES], dtype=np.float32)
    values = value_range(x_train)
    rows = [originals]
    for row in range(PREVIEW_ROWS):  # other seeds than training's: the preview draws its own
        rows.append(augment(originals, augmentation, seed + 1 + row, values))
    low, high = values
    return grid((np.concatenate(rows) - low) / (high - low), columns=len(originals))


def write_preview(run_dir: Path, cfg: Config, x_train: np.ndarray) -> Path | None:
    """Write ``augmentation.png`` into the run directory (None without augmentation)."""
    augmentation = getattr(cfg.dataset, "augmentation", None)
    if augmentation is None or not augmentation.active() or len(x_train.shape) != 4:
        return None
    from trainer.evaluation.pictures import save_png

    return save_png(run_dir / PREVIEW, preview(x_train, augmentation, cfg.seed))
