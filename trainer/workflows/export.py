"""Export a run's model for serving, and prove the export computes what the Keras model does.

Formats, each through Keras's own ``Model.export``:

- ``saved_model``: a TensorFlow SavedModel directory (``format="tf_saved_model"``), its
  forward pass under the ``serve`` signature, for TF Serving or ``tf.saved_model.load``;
- ``onnx``: an ``.onnx`` file (Keras runs tf2onnx), for ONNX Runtime;
- ``tflite``: a LiteRT flatbuffer (``format="litert"``: Keras converts with
  ``tf.lite.TFLiteConverter``), for mobile and embedded devices.

Each export is written under a temporary name, loaded back in its own runtime (TensorFlow,
ONNX Runtime, the LiteRT interpreter), run on ``SAMPLES`` seeded standard-normal inputs of
the model's input shape, and compared with the Keras model's outputs; it is kept, under its
final name, only if no output differs by more than ``TOLERANCE``, and the largest difference
is reported. Exports run on TensorFlow, whatever backend trained the model.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from trainer.core import files
from trainer.core.errors import RunError, UsageError
from trainer.core.registry import did_you_mean
from trainer.models import MODELS
from trainer.training import backend, saved
from trainer.training.backend import quiet_stderr

KERAS_FORMATS = {"saved_model": "tf_saved_model", "onnx": "onnx", "tflite": "litert"}
PACKAGES = {"onnx": ("onnx", "tf2onnx", "onnxruntime")}  # what a format needs beyond TensorFlow
TOLERANCE = 1e-5
SAMPLES = 8


def check(run_dir: Path, fmt: str, output: Path) -> None:
    """Refuse impossible requests before TensorFlow starts."""
    if fmt not in KERAS_FORMATS:
        raise UsageError(f"unknown export format '{fmt}'; {did_you_mean(fmt, list(KERAS_FORMATS))}")
    saved.finished_run_config(run_dir)
    if output.exists():
        raise UsageError(
            f"--output '{output}' already exists", hint="choose a new path, or remove it first"
        )
    lacking = [p for p in PACKAGES.get(fmt, ()) if importlib.util.find_spec(p) is None]
    if lacking:
        raise UsageError(
            f"exporting to {fmt} needs {', '.join(lacking)}, which is not installed",
            hint="pip install 'trainer[export]' (onnx, tf2onnx, onnxruntime)",
        )
    files.check_writable(output.parent)


def export(run_dir: Path, fmt: str, output: Path) -> dict[str, Any]:
    """Export the run's model to ``output`` in ``fmt``; the summary holds the checked difference."""
    check(run_dir, fmt, output)
    cfg = saved.finished_run_config(run_dir)
    if MODELS.get(cfg.model.type).info.get("evaluate") is not None:
        raise UsageError(
            f"model '{cfg.model.type}' is a generative model with its own training step; "
            "export supports the supervised families"
        )
    # the exporters are TensorFlow's (SavedModel, tf2onnx, the TFLite converter)
    backend.start(cfg.training.model_copy(update={"backend": "tensorflow"}))
    model = saved.load_model(run_dir, cfg)
    shape = tuple(model.input_shape[1:])
    sample = np.random.default_rng(cfg.seed).standard_normal((SAMPLES, *shape))
    sample = sample.astype(np.float32)
    expected = np.asarray(model(sample, training=False))
    # the LiteRT exporter insists on a .tflite name
    suffix = ".tflite" if fmt == "tflite" else output.suffix
    temporary = output.with_name(f".{output.stem}.tmp{os.getpid()}{suffix}")
    _remove(temporary)
    try:
        # the converters and runtimes log from C++ (kept, and shown if something fails)
        with quiet_stderr():
            try:
                with warnings.catch_warnings():  # tf2onnx's NumPy deprecation notices
                    warnings.simplefilter("ignore", FutureWarning)
                    model.export(str(temporary), format=KERAS_FORMATS[fmt], verbose=False)
            except Exception as error:  # converters raise many types
                raise RunError(f"Keras could not export the model to {fmt}: {error}") from error
            found = RUNNERS[fmt](temporary, sample)
        difference = float(np.max(np.abs(found.reshape(expected.shape) - expected)))
        if not difference <= TOLERANCE:
            raise RunError(
                f"the {fmt} export disagrees with the Keras model: largest difference "
                f"{difference:.3g} on {SAMPLES} sample inputs (allowed: {TOLERANCE:g}); "
                "nothing was written",
                hint="report it with the model's config; another format may be exact",
            )
        os.replace(temporary, output)
    finally:
        _remove(temporary)
    return {
        "format": fmt,
        "output": str(output),
        "input_shape": list(shape),
        "samples": SAMPLES,
        "max_abs_diff": difference,
        "tolerance": TOLERANCE,
        "bytes": _size(output),
    }


def _run_saved_model(path: Path, sample: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # held: its functions need its variables alive
    return np.asarray(loaded.serve(sample))


def _run_onnx(path: Path, sample: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: sample})[0])


def _run_tflite(path: Path, sample: np.ndarray) -> np.ndarray:
    try:  # LiteRT's own interpreter; TensorFlow's copy is deprecated but still there
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tensorflow.lite import Interpreter

    interpreter = Interpreter(model_path=str(path))
    entry = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(entry["index"], sample.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(entry["index"], sample)
    interpreter.invoke()
    return np.asarray(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))


RUNNERS = {"saved_model": _run_saved_model, "onnx": _run_onnx, "tflite": _run_tflite}


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
