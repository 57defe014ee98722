"""Fused steps: with XLA on TensorFlow, the steps of one execution run as one compiled program.

Keras's ``steps_per_execution`` runs N steps per call into the graph, but each step still
takes its batch from the ``tf.data`` iterator and launches its own XLA program. For a small
model (the batch-32 MLP of issue #5) those per-step costs are most of the epoch. Here the
pipeline hands the model N batches at once, stacked as one ``[N, batch, ...]`` tensor, and the
model's train step loops over them inside one XLA program: one optimizer update per batch,
the same batches in the same order as unfused training, only without the per-step trips.

Executions end at multiples of N within the epoch (and before the short last batch, which
runs alone), so an interrupted run that resumes at a checkpointed step compiles the same
programs and continues bit for bit. Used by :mod:`trainer.engine` when XLA is on for a model
trained by the supervised step on one TensorFlow device.
"""

from __future__ import annotations

import numpy as np

from trainer.pipeline import TrainingBatches


class FusedBatches(TrainingBatches):
    """Epoch ``e`` from ``start_step`` on as a ``tf.data`` of executions, not of batches.

    Each element is ``(x, y)``, or ``(x, y, sample_weight)`` with class weights, whose first
    axis counts the execution's steps. :meth:`ends` says after which step each one finishes.
    """

    def __init__(self, x, y, batch_size: int, seed: int, group: int,
                 class_weight: dict[int, float] | None = None) -> None:  # fmt: skip
        import tensorflow as tf

        super().__init__(x, y, batch_size, seed)
        self.group = max(1, group)
        self.full = self.n // batch_size  # the steps with a whole batch
        self._w = None
        if class_weight is not None:  # Keras's own expansion, as fit(class_weight=...) does it
            from keras.src.trainers.data_adapters import data_adapter_utils

            self._w = tf.constant(data_adapter_utils.class_weight_to_sample_weights(
                y, class_weight))  # fmt: skip

    def ends(self, start_step: int = 0) -> list[int]:
        """The epoch's step count after each execution that starts at ``start_step``."""
        group, ends, step = self.group, [], start_step
        while step < self.full:
            step = min((step // group + 1) * group, self.full)
            ends.append(step)
        if self.full < self.steps:  # the short last batch: its own shape, its own execution
            ends.append(self.steps)
        return ends

    def executions(self, start_step: int = 0) -> int:
        return len(self.ends(start_step))

    def steps_done(self, start_step: int, keras_step: int) -> int:
        """The epoch's steps done once execution ``keras_step`` (from ``start_step``) ran."""
        return self.ends(start_step)[keras_step]

    def epoch(self, epoch: int, start_step: int = 0):
        import tensorflow as tf

        ends = self.ends(start_step)
        bounds = np.stack([[start_step, *ends[:-1]], ends], axis=1)
        order = tf.constant(self.order(epoch).astype(np.int64))
        n, size = tf.constant(self.n, tf.int64), tf.constant(self.batch_size, tf.int64)
        features, targets, weights = self._x, self._y, self._w

        def gather(bound):
            low, high = bound[0] * size, tf.minimum(bound[1] * size, n)
            rows = tf.reshape(order[low:high], [-1, tf.minimum(size, n - low)])
            batch = (tf.gather(features, rows), tf.gather(targets, rows))
            return batch if weights is None else (*batch, tf.gather(weights, rows))

        return (
            tf.data.Dataset.from_tensor_slices(bounds.astype(np.int64))
            .map(gather, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(2)  # an execution holds N batches: a deep buffer would cost memory
        )


def fuse(model) -> None:
    """Make ``model`` train on executions: its train step loops over the stacked batches.

    The model object stays what it is (its layers, variables, saved form); only the step
    ``fit`` compiles changes. Compile it with ``steps_per_execution=1``: each Keras step is
    one execution here.
    """
    import tensorflow as tf

    one_step = model.train_step  # Keras's own step, for one batch

    def train_step(data):
        count = tf.shape(data[0])[0]

        def body(i):
            one_step(tuple(part[i] for part in data))
            return (i + 1,)

        tf.while_loop(lambda i: i < count, body, (tf.constant(0),), parallel_iterations=1)
        return model.get_metrics_result()

    model.train_step = train_step
