"""Choosing and starting the Keras backend and device, quietly, before Keras is imported.

TensorFlow is the default; ``training.backend: jax`` (or ``KERAS_BACKEND=jax``) runs on JAX,
which needs no TensorFlow at all. TensorFlow's CUDA-enabled wheel prints driver probes
("Could not find cuda drivers ...") from C++ before its log settings apply, so file
descriptor 2 is held while it starts and what was captured is replayed only if start-up
fails, or when TRAINER_DEBUG=1.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator

from trainer.core.errors import UsageError


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    if os.environ.get("TRAINER_DEBUG") == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def activate(setting: str, device: str) -> str:
    """Point Keras at the configured backend (before its import) and return the backend name."""
    wanted = os.environ.get("KERAS_BACKEND", "tensorflow") if setting == "auto" else setting
    if "keras" in sys.modules:
        import keras

        active = keras.backend.backend()
        if active != wanted:
            raise UsageError(
                f"training.backend is '{wanted}' but Keras already runs on '{active}' here",
                hint="run one backend per process",
            )
        return active
    package = {"tensorflow": "tensorflow", "jax": "jax"}.get(wanted)
    if package is None or importlib.util.find_spec(package) is None:
        raise UsageError(
            f"backend '{wanted}' is not installed",
            hint="pip install tensorflow (or jax), or set training.backend to one that is",
        )
    os.environ["KERAS_BACKEND"] = wanted
    if wanted == "jax" and device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return wanted


def gpus(backend: str) -> list[str]:
    """Start the backend (quietly) and name the GPUs it can see."""
    with quiet_stderr():
        if backend == "jax":
            import jax

            if importlib.util.find_spec("tensorflow") is not None:
                import tensorflow  # noqa: F401  Keras's data adapters load it when present

            return [str(d) for d in jax.devices() if d.platform == "gpu"]
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices("GPU")]


def select_device(setting: str, device: str) -> str:
    """Start the backend on the configured device; 'gpu' with none visible is an error."""
    backend = activate(setting, device)
    visible = gpus(backend)
    if device == "gpu" and not visible:
        raise UsageError(
            f"training.device is 'gpu' but {backend} sees no GPU",
            hint="set training.device: auto (or cpu), or check the CUDA install",
        )
    if device == "cpu" and visible and backend == "tensorflow":
        import tensorflow as tf

        with contextlib.suppress(RuntimeError):  # GPUs already initialised in this process
            tf.config.set_visible_devices([], "GPU")
        return "cpu"
    return f"gpu ({', '.join(visible)})" if visible and device != "cpu" else "cpu"


def enable_determinism(backend: str) -> None:
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def start(training) -> str:
    """Select the backend and device of a config's ``training`` section (before Keras starts)."""
    return select_device(training.backend, training.device)
