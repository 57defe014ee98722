"""Write configs/data/digits_cnn.keras, the architecture configs/digits_keras_file.yaml trains.

It stands for a model a team already has in its own Keras code: built and saved there with
``model.save``, then trained by the trainer from a config. Run from the repository root:

    python configs/data/make_architecture.py

The model is untrained (saved before any fit); its initial weights follow the seed below.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def architecture():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1), name="digit"),  # scikit-learn's 8x8 digits
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10, activation="softmax"),  # the task's head: one unit a class
        ],
        name="digits_cnn",
    )


if __name__ == "__main__":
    path = HERE / "digits_cnn.keras"
    architecture().save(path)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
