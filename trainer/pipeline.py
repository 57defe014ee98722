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


def permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the ``n`` training samples in ``epoch`` (0-based) for this ``seed``."""
    return np.random.default_rng((seed, epoch)).permutation(n)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


def steps_per_execution(requested: int, steps: int) -> int:
    """The largest divisor of ``steps`` (per epoch) not above ``requested``.

    Keras runs whole chunks of ``steps_per_execution`` steps; a chunk that crossed an epoch
    boundary would take batches from the next epoch and shift every epoch after it.
    """
    return max(d for d in range(1, min(requested, steps) + 1) if steps % d == 0)


def training_batches(x, y, batch_size: int, seed: int, epochs: int, shuffle: bool = True):
    """A ``tf.data.Dataset`` of every training batch of every epoch, in the trainer's order."""
    import tensorflow as tf

    n = len(x)
    features, targets = tf.constant(x), tf.constant(y)

    def order(epoch):
        if not shuffle:
            return np.arange(n, dtype=np.int64)
        return permutation(seed, int(epoch), n).astype(np.int64)

    def epoch_indices(epoch):
        indices = tf.numpy_function(order, [epoch], tf.int64, stateful=False)
        indices.set_shape([n])
        return tf.data.Dataset.from_tensor_slices(indices).batch(batch_size)

    def gather(indices):
        return tf.gather(features, indices), tf.gather(targets, indices)

    return (
        tf.data.Dataset.range(epochs)
        .flat_map(epoch_indices)
        .map(gather, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
