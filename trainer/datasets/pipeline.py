"""The training data order and the input pipeline that feeds it to the model.

The trainer owns the order of the training samples: epoch ``e`` visits them in
``permutation(seed, e, n)``. This makes shuffling real (a new order every epoch; Keras's
own ``shuffle=True`` repeated one permutation under a fixed global seed, which over-weighted
the samples stuck in the short last batch), reproducible, and addressable by (epoch, step)
so a later resume can continue mid-epoch. Batches are gathered from arrays held once in
memory and prefetched, so the model never waits on Python.
"""

from __future__ import annotations

import numpy as np

from trainer.datasets.memory import ALIGNMENT


def permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the ``n`` training samples in ``epoch`` (0-based) for this ``seed``."""
    return np.random.default_rng((seed, epoch)).permutation(n)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


AUTO_STEPS_PER_EXECUTION = 64


def steps_per_execution(requested: int | str, steps: int, divisor: bool = False,
                        every: int = 0, anywhere: bool = False) -> int:  # fmt: skip
    """How many steps run per call into the compiled graph ('auto': up to 64).

    Each epoch is fed as its own dataset, so on TensorFlow the last call of an epoch simply
    runs the steps that remain. Backends fed by Python generators warn when a call finds the
    epoch exhausted, so there (``divisor``) the value is lowered to a divisor of ``steps``.

    ``every`` is ``checkpoint.every_steps``: no call may run past a checkpoint step, a global
    step (epoch * steps + step in the epoch) that is a multiple of ``every``, or a SIGKILL
    would lose the steps since the one before. Where a call can be cut short at each one
    (``anywhere``: the fused steps of :mod:`trainer.training.fused` do), the value is at most
    ``every``. Elsewhere the calls of an epoch run the same number of steps from its start, and
    the checkpoint steps move within the epoch by ``steps`` mod ``every`` from one epoch to the
    next, so they fall at every multiple of g = gcd(steps, every) in it: the value is lowered
    to a divisor of g, unless ``every`` is a multiple of ``steps`` (checkpoints at epoch ends).
    """
    import math

    if requested == "auto":
        requested = AUTO_STEPS_PER_EXECUTION
    requested = min(requested, steps)
    if every and anywhere:
        return min(requested, every)
    if every and every % steps:
        steps, divisor = math.gcd(steps, every), True  # a divisor of g divides steps too
    if not divisor:
        return requested
    return max(d for d in range(1, requested + 1) if steps % d == 0)


EVAL_BATCH_CAP = 1024
EVAL_ACTIVATION_BUDGET = 32 * 2**20  # bytes of layer outputs per evaluation batch


def eval_batch_size(training, model, multiple: int = 1) -> int:
    """``training.eval_batch_size`` for ``model`` (validation, evaluation and prediction).

    'auto' takes the largest power of two up to 1024 whose activations (every layer's output
    for one batch, in float32) fit in 32 MiB, and never less than the training batch, which
    already needed more. Large batches make evaluation fast, but at 1024 the Keras-example
    CNN's activations took about 180 MiB more than the hand-written script's at 128 (issue
    #5's memory target); the MLP's fit 1024 in 4 MiB. ``multiple``: replicas that split it.
    """
    if training.eval_batch_size != "auto":
        return training.eval_batch_size
    per_sample = 4 * max(1, activations_per_sample(model))
    size = EVAL_BATCH_CAP
    while size > 1 and size * per_sample > EVAL_ACTIVATION_BUDGET:
        size //= 2
    if isinstance(training.batch_size, int):
        size = max(size, training.batch_size)
    return max(multiple, size - size % multiple)


def activations_per_sample(model) -> int:
    """How many numbers the layers of ``model`` output for one sample (shared layers once)."""
    import math

    from keras import tree

    total = 0
    for layer in model._flatten_layers(include_self=False):
        try:
            outputs = tree.flatten(layer.output)
        except (AttributeError, ValueError):  # never called symbolically, or called twice
            continue
        for output in outputs:
            shape = tuple(output.shape)[1:]
            if all(isinstance(d, int) for d in shape):
                total += math.prod(shape)
    return total


SHAREABLE = tuple(np.dtype(t) for t in ("float32", "float64", "int32", "int64"))


def shared_tensor(x: np.ndarray):
    """``x`` as a TensorFlow tensor, sharing its memory when it is aligned (then read-only).

    ``tf.constant`` copies, so holding a split both as NumPy and as a tensor costs it twice,
    and even swapping the NumPy copy for a view of the tensor leaves a moment with both (the
    MLP's peak memory: 169 MiB of training images). DLPack hands the tensor ``x``'s memory
    instead; TensorFlow needs it 64-byte aligned (:func:`aligned_empty`), or it copies.
    """
    import tensorflow as tf

    shareable = x.dtype in SHAREABLE and x.size and x.flags.c_contiguous and x.flags.writeable
    if shareable and x.ctypes.data % ALIGNMENT == 0:
        tensor = tf.experimental.dlpack.from_dlpack(x.__dlpack__())
        x.flags.writeable = False  # the tensor reads this memory: nobody may change it
        return tensor
    return tf.constant(x)


def sample_weights(y, class_weight: dict[int, float] | None) -> np.ndarray | None:
    """Per-sample weights from per-class ones, expanded as Keras's ``fit(class_weight=...)``
    does (None when unweighted). The batches carry them, so every backend and input pipeline
    weights the same way (Keras refuses ``class_weight`` for the generators that feed JAX)."""
    if class_weight is None:
        return None
    from keras.src.trainers.data_adapters import data_adapter_utils

    return data_adapter_utils.class_weight_to_sample_weights(y, class_weight)


def training_batches(x, y, batch_size: int, seed: int, shuffle: bool = True,
                     class_weight: dict[int, float] | None = None):  # fmt: skip
    """The training batches for the active Keras backend (tf.data on TensorFlow, else NumPy)."""
    import keras

    source = TrainingBatches if keras.backend.backend() == "tensorflow" else NumpyBatches
    return source(x, y, batch_size, seed, shuffle, class_weight=class_weight)


class NumpyBatches:
    """Training batches as NumPy arrays, for backends without TensorFlow (JAX, PyTorch).

    ``epoch(e, start_step)`` is a generator of epoch ``e``'s batches from ``start_step`` on:
    ``(x, y)``, or ``(x, y, sample_weight)`` when ``class_weight`` is given.
    """

    def __init__(self, x, y, batch_size: int, seed: int, shuffle: bool = True,
                 class_weight: dict[int, float] | None = None) -> None:  # fmt: skip
        self.n, self.batch_size, self.seed, self.shuffle = len(x), batch_size, seed, shuffle
        self.steps = steps_per_epoch(self.n, batch_size)
        self._x, self._y = x, y
        self._w = sample_weights(y, class_weight)
        self.features = x

    def executions(self, start_step: int = 0) -> int:
        """Keras's steps per epoch when it starts at ``start_step`` (one per batch here)."""
        return self.steps - start_step

    def steps_done(self, start_step: int, keras_step: int) -> int:
        """The epoch's steps done once Keras reports ``keras_step`` (from ``start_step``)."""
        return min(start_step + keras_step + 1, self.steps)

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n, dtype=np.int64)
        return permutation(self.seed, epoch, self.n).astype(np.int64)

    def weights(self, order: np.ndarray) -> np.ndarray | None:
        """The sample weights of the samples in ``order`` (None when unweighted)."""
        return None if self._w is None else self._w[order]

    def epoch(self, epoch: int, start_step: int = 0):
        indices = self.order(epoch)
        return self._batches(indices, self.weights(indices), start_step)

    def _batches(self, indices, weights, start_step: int):
        for step in range(start_step, self.steps):
            rows = slice(step * self.batch_size, (step + 1) * self.batch_size)
            batch = indices[rows]
            if weights is None:
                yield self._x[batch], self._y[batch]
            else:
                yield self._x[batch], self._y[batch], weights[rows]


class TrainingBatches(NumpyBatches):
    """Training batches in the trainer's order, from arrays copied to TensorFlow once.

    ``epoch(e, start_step)`` is a ``tf.data.Dataset`` of epoch ``e``'s batches from
    ``start_step`` on, so a resumed run continues exactly where the interrupted one stopped.
    """

    def __init__(self, x, y, batch_size: int, seed: int, shuffle: bool = True,
                 class_weight: dict[int, float] | None = None) -> None:  # fmt: skip
        import tensorflow as tf

        from trainer.datasets.lazy import is_lazy

        super().__init__(x, y, batch_size, seed, shuffle, class_weight)
        self._y = tf.constant(y)
        if is_lazy(x):  # streamed: each batch is read as the pipeline reaches it
            self._x = self.features = x
            return
        self._x = shared_tensor(x)
        # A read-only NumPy view of the tensor's memory (no copy): holders of ``x`` swap theirs
        # for it, so the training split is held once, not twice.
        self.features = np.asarray(self._x)

    def _batches(self, indices, weights, start_step: int):
        import tensorflow as tf

        from trainer.datasets.lazy import is_lazy

        first = start_step * self.batch_size
        features, targets = self._x, self._y

        streamed = is_lazy(features)
        if streamed:
            gather = streamed_gather(features, targets)
        else:

            def gather(batch, *weight):
                return tf.gather(features, batch), tf.gather(targets, batch), *weight

        slices = indices[first:] if weights is None else (indices[first:], weights[first:])
        return (
            tf.data.Dataset.from_tensor_slices(slices)
            .batch(self.batch_size)
            .map(gather, num_parallel_calls=STREAMED_PREFETCH if streamed else tf.data.AUTOTUNE)
            .prefetch(STREAMED_PREFETCH if streamed else tf.data.AUTOTUNE)
        )


STREAMED_PREFETCH = 2  # batches decoded ahead of the model: memory is (this + in flight) batches


def streamed_gather(samples, targets=None):
    """A tf.data map function reading a batch of a lazy array through Python (images decoded
    by Pillow in threads, a table's rows from its memory-mapped file), then scaling them in the
    graph: images cross from Python as uint8, 4 times less than float32, and the scaling's
    float32 subtraction and division give the bits NumPy's give in memory."""
    import tensorflow as tf

    shape = samples.shape[1:]
    offset, scale = samples.scale if samples.scale is not None else (None, None)
    stored = tf.as_dtype(samples.raw_dtype)

    def gather(batch, *weight):
        x = tf.numpy_function(samples.raw, [batch], stored, stateful=False)
        x.set_shape((None, *shape))
        if samples.scale is not None:
            x = tf.cast(x, tf.float32)
            if offset is not None:
                x = (x - tf.constant(offset, tf.float32)) / tf.constant(scale, tf.float32)
        if targets is None:
            return (x,)
        return x, tf.gather(targets, batch), *weight

    return gather


def streamed_batches(samples, targets, batch_size: int):
    """``samples`` (and ``targets``) in order, in batches, read as tf.data reaches them."""
    import tensorflow as tf

    return (
        tf.data.Dataset.range(len(samples))
        .batch(batch_size)
        .map(
            streamed_gather(samples, None if targets is None else tf.constant(targets)),
            num_parallel_calls=STREAMED_PREFETCH,
        )  # fmt: skip
        .prefetch(STREAMED_PREFETCH)
    )
