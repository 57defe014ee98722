"""Starting the Keras backend quietly: TensorFlow's C++ start-up chatter stays out of logs.

TensorFlow's CUDA-enabled wheel prints driver probes ("Could not find cuda drivers ...")
from C++ before its log settings apply. We hold file descriptor 2 while it starts and
replay what was captured only if start-up fails, or when TRAINER_DEBUG=1.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


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


def gpus() -> list:
    """Start TensorFlow (quietly) and list the GPUs it can see."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_stderr():
        import tensorflow as tf

        return tf.config.list_physical_devices("GPU")
