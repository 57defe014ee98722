"""Fused steps (training.fused): N batches per XLA program, the same updates as unfused."""

import numpy as np
import pytest

from trainer.datasets import pipeline
from trainer.training.fused import FusedBatches, fuse

# (samples, batch size, steps per execution, the step an epoch starts at)
LAYOUTS = [(10, 4, 2, 0), (100, 8, 4, 0), (100, 8, 4, 5), (96, 8, 4, 3), (7, 7, 3, 0),
           (33, 4, 64, 0), (33, 4, 3, 8), (33, 4, 3, 7)]  # fmt: skip


def labelled(n):
    return np.arange(n, dtype="float32").reshape(n, 1), np.arange(n, dtype="int32")


@pytest.mark.parametrize(("n", "batch", "group", "start"), LAYOUTS)
def test_executions_hold_the_epochs_batches_in_order(n, batch, group, start):
    x, y = labelled(n)
    fused = FusedBatches(x, y, batch, seed=5, group=group)
    plain = [
        labels.numpy() for _, labels in pipeline.TrainingBatches(x, y, batch, 5).epoch(1, start)
    ]
    executions = [rows.numpy() for rows in fused.epoch(1, start)]
    assert len(executions) == fused.executions(start)
    steps = [fused.gather(rows[i]) for rows in executions for i in range(len(rows))]
    assert len(steps) == len(plain)
    for (features, labels), expected in zip(steps, plain, strict=True):
        np.testing.assert_array_equal(labels, expected)  # same samples, same batch, same order
        np.testing.assert_array_equal(features.numpy().ravel(), labels)  # features stay paired
    sizes = [len(rows) for rows in executions]
    assert max(sizes) <= group
    assert list(start + np.cumsum(sizes)) == fused.ends(start)
    assert [fused.steps_done(start, i) for i in range(len(sizes))] == fused.ends(start)


@pytest.mark.parametrize(("n", "batch", "group", "start"), LAYOUTS)
def test_a_resumed_epoch_runs_the_same_executions_as_an_uninterrupted_one(n, batch, group, start):
    fused = FusedBatches(*labelled(n), batch, seed=5, group=group)
    whole = fused.ends(0)
    for stop in whole[:-1]:  # a checkpoint can only be written where an execution ended
        assert fused.ends(stop) == [end for end in whole if end > stop]
    # Executions end at multiples of N, or where the whole batches end: the programs compiled
    # before a resume at any step are the ones compiled after it.
    assert all(end % group == 0 or end >= fused.full for end in fused.ends(start))
    assert fused.ends(start)[-1] == fused.steps


def train(x, y, fused: bool, class_weight=None):
    import keras

    keras.utils.set_random_seed(11)
    layers = keras.layers
    model = keras.Sequential([keras.Input((4,)), layers.Dense(16, activation="relu"),
                              layers.Dropout(0.2), layers.Dense(3, "softmax")])  # fmt: skip
    if fused:
        batches = FusedBatches(x, y, 8, seed=2, group=3, class_weight=class_weight)
        fuse(model, batches)
    else:
        batches = pipeline.TrainingBatches(x, y, 8, seed=2)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], steps_per_execution=1 if fused else 3,
                  jit_compile=True)  # fmt: skip
    losses = []
    for epoch in range(3):
        history = model.fit(batches.epoch(epoch), steps_per_epoch=batches.executions(),
                            class_weight=None if fused else class_weight, shuffle=False,
                            verbose=0)  # fmt: skip
        losses.append(history.history["loss"][-1])
    return model.get_weights(), losses


@pytest.mark.parametrize("class_weight", [None, {0: 0.5, 1: 2.0, 2: 1.0}])
def test_fused_training_makes_the_same_updates_as_one_step_at_a_time(class_weight):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(61, 4)).astype("float32")  # 8 steps of 8, the last of 5 samples
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 1).astype("int32")
    fused_weights, fused_losses = train(x, y, True, class_weight)
    weights, losses = train(x, y, False, class_weight)
    np.testing.assert_allclose(fused_losses, losses, rtol=1e-5)
    for fused_w, w in zip(fused_weights, weights, strict=True):
        np.testing.assert_allclose(fused_w, w, rtol=1e-5, atol=1e-6)
    if class_weight is not None:  # the weights change the result: they were applied
        unweighted, _ = train(x, y, True)
        assert not np.allclose(unweighted[0], fused_weights[0], atol=1e-4)
