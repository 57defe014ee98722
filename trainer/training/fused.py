"""Fused steps: with XLA on TensorFlow, the steps of one execution run as one compiled program.

Keras's ``steps_per_execution`` runs N steps per call into the graph, but each step still
takes its batch from the ``tf.data`` iterator and launches its own XLA program. For a small
model (the batch-32 MLP of issue #5) those per-step costs are most of the epoch. Here the
pipeline hands the model the sample indices of N batches at once, an ``[N, batch]`` tensor,
and the model's train step loops over them inside one XLA program, gathering each batch from
the training split held once: one optimizer update per batch, the same batches in the same
order as unfused training, only without the per-step trips and with no batch copied out
(gathering whole executions in ``tf.data`` cost ~100 MiB of peak memory on the MLP).

Executions end at multiples of N within the epoch, at each checkpoint step of
``checkpoint.every_steps`` (from which the multiples of N start again) and before the short
last batch, which runs alone. The layout depends only on the epoch and the step an execution
starts at, so an interrupted run that resumes at a checkpointed step compiles the same
programs and continues bit for bit. Used by :mod:`trainer.training.engine` when XLA is on for
a model trained by the supervised step on one TensorFlow device.
"""

from __future__ import annotations

import numpy as np

from trainer.datasets.pipeline import TrainingBatches


class FusedBatches(TrainingBatches):
    """Epoch ``e`` from ``start_step`` on as a ``tf.data`` of executions, not of batches.

    Each element holds an execution's sample indices, ``[steps, batch]``; :meth:`gather`
    turns one row into a batch inside the step, and :meth:`ends` says after which step each
    execution finishes. ``every`` (``checkpoint.every_steps``, 0: none): no execution runs past
    a global step (``epoch * steps + step``) that is a multiple of it, so each checkpoint is
    written where it is due. Those steps move within the epoch from one epoch to the next, so
    :meth:`ends`, :meth:`executions` and :meth:`steps_done` take the epoch.
    """

    by_epoch = True  # the layout of executions depends on the epoch (see trainer.training.loop)

    def __init__(self, x, y, batch_size: int, seed: int, group: int,
                 class_weight: dict[int, float] | None = None, every: int = 0) -> None:  # fmt: skip
        import tensorflow as tf

        super().__init__(x, y, batch_size, seed, class_weight=class_weight)
        self.group, self.every = max(1, group), every
        self.full = self.n // batch_size  # the steps with a whole batch
        self._ends: dict[tuple[int, int], list[int]] = {}
        self._weight = None if self._w is None else tf.constant(self._w)

    def ends(self, start_step: int = 0, epoch: int = 0) -> list[int]:
        """The epoch's step count after each execution that starts at ``start_step``.

        Asked after every execution (:meth:`steps_done`), so each start's list is made once.
        """
        offset = epoch * self.steps % self.every if self.every else 0
        if (offset, start_step) not in self._ends:
            self._ends[offset, start_step] = self._layout(start_step, offset)
        return self._ends[offset, start_step]

    def _layout(self, start_step: int, offset: int) -> list[int]:
        """Ends at multiples of the group counted from the epoch's start or from the last
        checkpoint step, at the checkpoint steps (``offset``: the global step of the epoch's
        start, modulo ``every``), and where the whole batches end."""
        group, every, ends, step = self.group, self.every, [], start_step
        first = -offset % every if every else 0  # the epoch's first checkpoint step (0: none)
        while step < self.full:
            anchor, due = 0, self.full
            if every:  # the last checkpoint step at or before `step`, and the next one after it
                anchor = 0 if step < first else step - (step - first) % every
                due = first if step < first else anchor + every
            step = min(anchor + ((step - anchor) // group + 1) * group, due, self.full)
            ends.append(step)
        if self.full < self.steps:  # the short last batch: its own shape, its own execution
            ends.append(self.steps)
        return ends

    def executions(self, start_step: int = 0, epoch: int = 0) -> int:
        return len(self.ends(start_step, epoch))

    def steps_done(self, start_step: int, keras_step: int, epoch: int = 0) -> int:
        """The epoch's steps done once execution ``keras_step`` (from ``start_step``) ran."""
        return self.ends(start_step, epoch)[keras_step]

    def epoch(self, epoch: int, start_step: int = 0):
        import tensorflow as tf

        ends = self.ends(start_step, epoch)
        bounds = np.stack([[start_step, *ends[:-1]], ends], axis=1).astype(np.int64)
        order = tf.constant(self.order(epoch).astype(np.int64))
        n, size = tf.constant(self.n, tf.int64), tf.constant(self.batch_size, tf.int64)

        def rows(bound):
            low, high = bound[0] * size, tf.minimum(bound[1] * size, n)
            return tf.reshape(order[low:high], [-1, tf.minimum(size, n - low)])

        return tf.data.Dataset.from_tensor_slices(bounds).map(rows).prefetch(2)

    def gather(self, rows):
        """One batch's ``(x, y)`` or ``(x, y, sample_weight)`` (inside the compiled step)."""
        import tensorflow as tf

        parts = (self._x, self._y) if self._weight is None else (self._x, self._y, self._weight)
        return tuple(tf.gather(part, rows) for part in parts)


def fuse(model, batches: FusedBatches) -> None:
    """Make ``model`` train on executions of ``batches``: its step loops over their rows.

    The model object stays what it is (its layers, variables, saved form); only the step
    ``fit`` compiles changes. Compile it with ``steps_per_execution=1``: each Keras step is
    one execution here. The batches are gathered inside the compiled program from the
    training split held once, so no execution's data is ever copied out in between.
    """
    import tensorflow as tf

    one_step = model.train_step  # Keras's own step, for one batch

    def train_step(rows):
        def body(i):
            one_step(batches.gather(rows[i]))
            return (i + 1,)

        count = tf.shape(rows)[0]
        tf.while_loop(lambda i: i < count, body, (tf.constant(0),), parallel_iterations=1)
        return model.get_metrics_result()

    model.train_step = train_step
