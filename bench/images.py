"""Streamed image folders: `trainer fit` on a folder of JPEGs against Keras's directory loader.

Generates (once, then reuses) a folder of ``--images`` JPEGs: 10 class sub-folders, 160x160
RGB, quality 90, each image a noisy background with a coloured square whose colour and place
depend on the class, so a small CNN learns it within an epoch. Every image is a function of
the seed and its index alone: the images sit in one pool folder, and the folder for N images
is hard links to the pool's first N, so a larger count reuses what smaller ones generated.

For each count, runs in separate processes, one after the other: ``trainer fit`` on a
generated config (``dataset.type: image_folder``, ``dataset.in_memory: false`` for the
streamed rows, ``true`` for the in-memory ones; ``--mode default`` leaves the key out), and a
plain Keras script on the same folder (``keras.utils.image_dataset_from_directory`` with
``validation_split=0.1``, ``.prefetch(tf.data.AUTOTUNE)``, a ``Rescaling(1/255)`` layer and
the same CNN, optimizer and loss). Figures: the child's peak RSS (ru_maxrss from wait4), wall
time, the epoch's seconds (both sides' include the validation pass), training images fed per
second, and the ratio to Keras's images/s in the same run. The in-memory mode is skipped for
counts whose float32 copy would exceed 60% of MemAvailable. ``--write`` puts the table in
bench/RESULTS.md (this script's own section, after the other scripts' marker).

    python bench/images.py                                  # 50,000 images, both modes
    python bench/images.py --images 10000,25000,50000
    python bench/images.py --images 600 --mode default      # today's trainer (no key)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import run, write_section  # noqa: E402 - after the path is set

SIZE, CLASSES, QUALITY, SQUARE = 160, 10, 90, 40
IN_MEMORY_KEY = "in_memory"  # dataset.<key>: true | false (| auto, the default)
MODES = {  # --mode name: (row label, value of dataset.in_memory; None leaves the key out)
    "streamed": ("trainer, streamed", False),
    "in_memory": ("trainer, in memory", True),
    "default": (f"trainer, `{IN_MEMORY_KEY}` not set", None),
}
MODEL = {"filters": [16, 32], "kernel_size": 3, "strides": 2, "padding": "same",
         "pooling": "max", "pool_size": 2, "dense_units": [64]}  # fmt: skip
MEMORY_SHARE = 0.6  # in memory only when the float32 copy fits in this share of MemAvailable
TITLE = "## Streamed image folders: the trainer against Keras's loader (`bench/images.py`)"
KERAS_ROW = "Keras `image_dataset_from_directory`"

# The reference: a plain Keras script, run as its own process. argv[1] is a JSON object.
REFERENCE = r"""
import json, sys, time
settings = json.loads(sys.argv[1])
import keras
import tensorflow as tf

keras.utils.set_random_seed(settings["seed"])
size = (settings["size"], settings["size"])
train, validation = keras.utils.image_dataset_from_directory(
    settings["folder"], image_size=size, batch_size=settings["batch_size"],
    validation_split=0.1, subset="both", seed=settings["seed"])
sizes = {"train": len(train.file_paths), "validation": len(validation.file_paths)}
classes = len(train.class_names)
train = train.prefetch(tf.data.AUTOTUNE)
validation = validation.prefetch(tf.data.AUTOTUNE)
m = settings["model"]
inputs = keras.Input(shape=(*size, 3))
x = keras.layers.Rescaling(1.0 / 255)(inputs)
for width in m["filters"]:
    x = keras.layers.Conv2D(width, m["kernel_size"], strides=m["strides"],
                            padding=m["padding"], activation="relu")(x)
    x = keras.layers.MaxPooling2D(m["pool_size"])(x)
x = keras.layers.Flatten()(x)
for units in m["dense_units"]:
    x = keras.layers.Dense(units, activation="relu")(x)
outputs = keras.layers.Dense(classes, activation="softmax")(x)
model = keras.Model(inputs, outputs)
model.compile(optimizer=keras.optimizers.Adam(0.001), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])

class Timer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []
    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)

timer = Timer()
history = model.fit(train, validation_data=validation, epochs=settings["epochs"],
                    callbacks=[timer], verbose=0)
print(json.dumps({"epoch_seconds": timer.seconds, "data_sizes": sizes,
                  "val_accuracy": float(history.history["val_accuracy"][-1])}))
"""


def palette(label: int) -> tuple[int, int, int]:
    """The class's colour: ten hues apart, bright."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(label / CLASSES, 0.9, 0.95)
    return int(255 * r), int(255 * g), int(255 * b)


def image_path(pool: Path, index: int) -> Path:
    return pool / f"class_{index % CLASSES}" / f"{index:06d}.jpg"


def make_image(job: tuple[str, int, int]) -> None:
    """Image ``index`` of the pool: a noisy background, the class's square at its place."""
    import numpy as np
    from PIL import Image

    pool, index, seed = job
    path = image_path(Path(pool), index)
    if path.exists():
        return
    rng = np.random.default_rng([seed, index])
    label = index % CLASSES
    base = rng.integers(40, 200, 3)  # a plain random colour, then a gradient and noise
    ramp = np.linspace(-30, 30, SIZE)[:, None, None] * rng.choice([-1, 1], 3)
    pixels = base + ramp + rng.normal(0, 20, (SIZE, SIZE, 3))
    row, col = divmod(label, 5)  # ten places on a 2 x 5 grid, jittered
    top = 20 + row * 70 + int(rng.integers(-12, 13))
    left = 4 + col * 30 + int(rng.integers(-4, 5))
    top, left = min(max(top, 0), SIZE - SQUARE), min(max(left, 0), SIZE - SQUARE)
    square = np.asarray(palette(label)) + rng.normal(0, 20, (SQUARE, SQUARE, 3))
    pixels[top : top + SQUARE, left : left + SQUARE] = square
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    partial = path.with_name(path.stem + ".part")
    image.save(partial, "JPEG", quality=QUALITY)
    os.replace(partial, path)  # a killed run leaves no half-written .jpg behind


def image_folder(root: Path, count: int, seed: int, workers: int) -> Path:
    """The folder of ``count`` images (hard links into the pool), generated if missing."""
    folder = root / f"{count}-images-{SIZE}px-seed{seed}"
    done = folder.with_name(folder.name + ".done")
    if done.is_file():
        return folder
    pool = root / f"pool-{SIZE}px-seed{seed}"
    for label in range(CLASSES):
        (pool / f"class_{label}").mkdir(parents=True, exist_ok=True)
        (folder / f"class_{label}").mkdir(parents=True, exist_ok=True)
    missing = [i for i in range(count) if not image_path(pool, i).exists()]
    if missing:
        from multiprocessing import Pool

        started = time.perf_counter()
        with Pool(workers) as processes:
            jobs = ((str(pool), i, seed) for i in missing)
            for _ in processes.imap_unordered(make_image, jobs, chunksize=64):
                pass
        print(f"generated {len(missing)} images in {pool} with {workers} processes in "
              f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    for i in range(count):
        link = image_path(folder, i)
        if not link.exists():
            os.link(image_path(pool, i), link)
    done.write_text(f"{count}\n")
    return folder


def folder_mib(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.glob("class_*/*.jpg")) / 2**20


def steady(epoch_seconds: list[float]) -> float:
    """One epoch's seconds: the only epoch, or the median of those after the first."""
    return statistics.median(epoch_seconds[1:] or epoch_seconds)


def trainer_config(folder: Path, in_memory: bool | None, args) -> dict:
    dataset = {"type": "image_folder", "path": str(folder), "image_size": [SIZE, SIZE],
               "validation_split": 0.1, "test_split": 0.1}  # fmt: skip
    if in_memory is not None:
        dataset[IN_MEMORY_KEY] = in_memory
    return {
        "name": "bench-images",
        "seed": args.seed,
        "dataset": dataset,
        "model": {"type": "cnn", **MODEL},
        "optimizer": {"type": "adam", "learning_rate": 0.001},
        "training": {"epochs": args.epochs, "batch_size": args.batch_size},
        "tracking": {"tensorboard": False},
        "metrics": ["accuracy"],
    }


def trainer_once(folder: Path, in_memory: bool | None, args, env: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "config.yaml")  # JSON is YAML
        config.write_text(json.dumps(trainer_config(folder, in_memory, args), indent=2))
        command = [sys.executable, "-m", "trainer", "fit", str(config),
                   "--run-dir", f"{tmp}/run", "--json"]  # fmt: skip
        done, wall, peak = run(command, env)
        if done.returncode != 0:
            return failed(done, wall, peak)
        environment = json.loads(Path(tmp, "run", "environment.json").read_text())
    training = environment["training"]
    storage = environment.get("data")  # the trainer's own account of in memory or streamed
    return {"epoch_seconds": training["epoch_seconds"], "wall": wall, "peak_kib": peak,
            "train": training["data_sizes"]["train"],
            "val_accuracy": float(training["final"]["val_accuracy"]),
            "storage": storage.get("reason") if isinstance(storage, dict) else None}  # fmt: skip


def keras_once(folder: Path, args, env: dict) -> dict:
    settings = {"folder": str(folder), "size": SIZE, "batch_size": args.batch_size,
                "epochs": args.epochs, "seed": args.seed, "model": MODEL}  # fmt: skip
    done, wall, peak = run([sys.executable, "-c", REFERENCE, json.dumps(settings)], env)
    if done.returncode != 0:
        return failed(done, wall, peak)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "epoch_seconds": result["epoch_seconds"],
        "wall": wall,
        "peak_kib": peak,
        "train": result["data_sizes"]["train"],
        "val_accuracy": result["val_accuracy"],
    }


def failed(done: subprocess.CompletedProcess, wall: float, peak: int) -> dict:
    print(f"  FAILED ({done.returncode}): {' '.join(done.args[:5])} ...\n"
          f"{(done.stderr or done.stdout)[-3000:]}", flush=True)  # fmt: skip
    return {"failed": done.returncode, "wall": wall, "peak_kib": peak}


def mem_available() -> int:
    """Bytes the kernel says new allocations can have without swapping."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def machine_line() -> str:
    import importlib.metadata as md

    from run import machine  # bench/run.py's description of the machine

    return f"{machine()}, Pillow {md.version('pillow')}"


def describe(result: dict) -> str:
    seconds = steady(result["epoch_seconds"])
    return (f"epoch {seconds:.1f} s, {result['train'] / seconds:,.0f} images/s, wall "
            f"{result['wall']:.0f} s, peak {result['peak_kib'] / 2**20:.2f} GiB, "
            f"val accuracy {result['val_accuracy']:.3f}")  # fmt: skip


def table(rows: list[tuple[int, str, dict]]) -> str:
    lines = [
        "| images | mode | peak RSS | wall | epoch | training images/s | vs Keras | val accuracy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    reference = {count: r for count, mode, r in rows if mode == KERAS_ROW and "train" in r}
    for count, mode, r in rows:
        if "skipped" in r:
            lines.append(f"| {count:,} | {mode} | skipped: {r['skipped']} | | | | | |")
            continue
        if "failed" in r:
            lines.append(f"| {count:,} | {mode} | failed (exit {r['failed']}) | | | | | |")
            continue
        seconds = steady(r["epoch_seconds"])
        rate = r["train"] / seconds
        keras = reference.get(count)
        ratio = "" if keras is None else (
            f"**{rate / (keras['train'] / steady(keras['epoch_seconds'])):.2f}x**"
        )  # fmt: skip
        accuracy = f"{r['val_accuracy']:.3f}"
        lines.append(
            f"| {count:,} | {mode} | {r['peak_kib'] / 2**20:.2f} GiB | {r['wall']:.0f} s | "
            f"{seconds:.1f} s | {rate:,.0f} | {ratio} | {accuracy} |"
        )
    return "\n".join(lines)


def counts(text: str) -> list[int]:
    values = [int(v.replace("_", "")) for v in text.split(",") if v.strip()]
    if not values or min(values) < 2 * CLASSES:
        raise argparse.ArgumentTypeError(f"give counts of at least {2 * CLASSES} images")
    return sorted(set(values))


def modes(text: str) -> list[str]:
    chosen = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in MODES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"modes are {', '.join(MODES)}; got {text!r}")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images",
        type=counts,
        default=[50_000],
        help="image count, or counts separated by commas (default 50000)",
    )
    parser.add_argument("--mode", type=modes, default=["streamed", "in_memory"],
                        help=f"trainer modes, separated by commas: {', '.join(MODES)} "
                        f"(default streamed,in_memory; default leaves dataset.{IN_MEMORY_KEY} "
                        "out)")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir(), "bench-images"),
                        help="where the generated images are kept and reused "
                        "(default /tmp/bench-images)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes generating images (default: every core)")  # fmt: skip
    parser.add_argument("--write", action="store_true", help="write bench/RESULTS.md")
    args = parser.parse_args()

    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    folders = {n: image_folder(args.folder, n, args.seed, args.workers) for n in args.images}
    load_before = os.getloadavg()
    rows: list[tuple[int, str, dict]] = []
    for count, folder in folders.items():
        print(f"{count:,} images ({folder_mib(folder):.0f} MiB) in {folder}", flush=True)
        for mode in args.mode:
            label, in_memory = MODES[mode]
            float32 = count * SIZE * SIZE * 3 * 4
            available = mem_available()
            if in_memory is True and float32 > MEMORY_SHARE * available:
                why = (f"its float32 copy ({float32 / 2**30:.1f} GiB) exceeds {MEMORY_SHARE:.0%} "
                       f"of MemAvailable ({available / 2**30:.1f} GiB)")  # fmt: skip
                print(f"  {label}: skipped, {why}", flush=True)
                rows.append((count, label, {"skipped": why}))
                continue
            result = trainer_once(folder, in_memory, args, env)
            rows.append((count, label, result))
            if "failed" not in result:
                print(f"  {label}: {describe(result)}", flush=True)
                if result["storage"]:
                    print(f"    the trainer's data: {result['storage']}", flush=True)
        result = keras_once(folder, args, env)
        rows.append((count, KERAS_ROW, result))
        if "failed" not in result:
            print(f"  {KERAS_ROW}: {describe(result)}", flush=True)
    load_after = os.getloadavg()

    command = " ".join(["python bench/images.py", *(a for a in sys.argv[1:] if a != "--write")])
    epochs = ("one epoch" if args.epochs == 1
              else f"{args.epochs} epochs, the median of those after the first")  # fmt: skip
    key = f"`dataset.{IN_MEMORY_KEY}`"
    ran = "; ".join({"streamed": f"streamed: {key} `false`",
                     "in_memory": f"in memory: {key} `true`",
                     "default": f"{key} not set, the trainer's default"}[m]
                    for m in args.mode)  # fmt: skip
    report = (
        f"{TITLE}\n\nMeasured on {date.today()} with `{command}`: generated folders of "
        f"{SIZE}x{SIZE} RGB JPEGs (quality {QUALITY}, {CLASSES} class sub-folders, a noisy "
        "background with a square whose colour and place depend on the class), each read "
        "from the page cache (written just before). Each row is one process, run one after "
        f"the other: `trainer fit` ({ran}), validation_split 0.1 and test_split 0.1, against "
        "a plain Keras script "
        "(`image_dataset_from_directory` with validation_split 0.1, `.prefetch(AUTOTUNE)`, "
        "`Rescaling(1/255)`). Both train the same CNN (Conv2D 16 and 32, 3x3, stride 2, 'same' "
        f"padding, ReLU, 2x2 max pooling, Dense 64, softmax), Adam 0.001, sparse categorical "
        f"cross-entropy, batch {args.batch_size}, {epochs}. The epoch's seconds include the "
        "validation pass on both sides, and the first epoch the building of the graph; "
        "images/s is training images per epoch second; "
        "\"vs Keras\" divides it by Keras's images/s on the same folder in the same run. The "
        "wall time is the whole process (the in-memory rows read every image before the "
        "first epoch; the trainer also evaluates, checkpoints and draws its plots). Peak RSS "
        "is the child's maximum resident set (ru_maxrss from wait4). In-memory rows are "
        f"skipped where the float32 copy would exceed {MEMORY_SHARE:.0%} of MemAvailable.\n\n"
        f"Machine: {machine_line()}; load average (1, 5, 15 min) "
        f"{', '.join(f'{v:.2f}' for v in load_before)} before and "
        f"{', '.join(f'{v:.2f}' for v in load_after)} after.\n\n"
        + table(rows) + "\n"
    )  # fmt: skip
    print("\n" + report)
    broken = [f"{count} {mode}" for count, mode, r in rows if "failed" in r]
    if broken:
        sys.exit(f"not written to bench/RESULTS.md: {', '.join(broken)} failed")
    if args.write:
        write_section(TITLE, report)


if __name__ == "__main__":
    main()
