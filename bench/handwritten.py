"""What a user would write by hand: the benchmark's Keras scripts, one per case.

Plain ``model.fit`` on NumPy arrays with Keras's defaults, the same model, data, batch size,
optimizer and epochs as the matching bench/configs/*.yaml. Prints one JSON line.
"""

import argparse
import gzip
import json
import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

FASHION = "/usr/share/datasets/fashion-mnist"


def read_idx(name):
    with gzip.open(os.path.join(FASHION, name), "rb") as handle:
        data = handle.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def model_for(case, keras):
    layers = keras.layers
    if case == "mlp":
        body = [layers.Flatten(), layers.Dense(128, activation="relu"),
                layers.Dense(64, activation="relu")]  # fmt: skip
    elif case == "cnn":
        body = [layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
                layers.Dropout(0.25), layers.Conv2D(64, 3, activation="relu"),
                layers.MaxPooling2D(2), layers.Dropout(0.25), layers.Flatten()]  # fmt: skip
    else:
        body = [layers.Reshape((28, 28)), layers.LSTM(128)]
    return keras.Sequential(
        [keras.Input((28, 28, 1)), *body, layers.Dense(10, activation="softmax")]
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["mlp", "cnn", "lstm"])
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    import keras

    keras.utils.set_random_seed(args.seed)
    x = (read_idx("train-images-idx3-ubyte.gz")[..., None] / 255.0).astype("float32")
    y = read_idx("train-labels-idx1-ubyte.gz").astype("int32")
    x_test = (read_idx("t10k-images-idx3-ubyte.gz")[..., None] / 255.0).astype("float32")
    y_test = read_idx("t10k-labels-idx1-ubyte.gz").astype("int32")
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    model = model_for(args.case, keras)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.started)

    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, validation_split=0.1,
              callbacks=[Timer()], verbose=0)  # fmt: skip
    _, accuracy = model.evaluate(x_test, y_test, batch_size=args.batch_size, verbose=0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"epoch_seconds": times, "accuracy": accuracy, "peak_kib": peak}))


if __name__ == "__main__":
    main()
