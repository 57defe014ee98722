"""The trainer's data order: a fresh, reproducible permutation every epoch."""

import numpy as np

from trainer.datasets import pipeline


def test_permutation_is_reproducible_and_changes_every_epoch():
    first = pipeline.permutation(7, 0, 100)
    assert np.array_equal(first, pipeline.permutation(7, 0, 100))
    assert not np.array_equal(first, pipeline.permutation(7, 1, 100))
    assert not np.array_equal(first, pipeline.permutation(8, 0, 100))
    assert sorted(first) == list(range(100))


def test_training_batches_visit_every_sample_once_per_epoch():
    x = np.arange(10, dtype="float32").reshape(10, 1)
    y = np.arange(10, dtype="int32")
    source = pipeline.TrainingBatches(x, y, batch_size=4, seed=3)
    batches = list(source.epoch(0)) + list(source.epoch(1))
    assert [len(b[1]) for b in batches] == [4, 4, 2, 4, 4, 2]
    epoch0 = np.concatenate([b[1].numpy() for b in batches[:3]])
    epoch1 = np.concatenate([b[1].numpy() for b in batches[3:]])
    assert sorted(epoch0) == list(range(10)) and sorted(epoch1) == list(range(10))
    assert not np.array_equal(epoch0, epoch1)
    np.testing.assert_array_equal(epoch0, pipeline.permutation(3, 0, 10))
    for features, labels in batches:  # features and labels stay paired
        np.testing.assert_array_equal(features.numpy().ravel(), labels.numpy())


def test_steps_per_execution():
    assert pipeline.steps_per_execution("auto", 1688) == 64  # the last call runs what remains
    assert pipeline.steps_per_execution(32, 10) == 10
    assert pipeline.steps_per_execution(32, 1688, divisor=True) == 8  # 1688 = 8 * 211
    assert pipeline.steps_per_execution(32, 1875, divisor=True) == 25
    assert pipeline.steps_per_execution(1, 97, divisor=True) == 1


def test_an_epoch_can_start_mid_way():
    x = np.arange(10, dtype="float32").reshape(10, 1)
    y = np.arange(10, dtype="int32")
    source = pipeline.TrainingBatches(x, y, batch_size=4, seed=3)
    full = [b[1].numpy().tolist() for b in source.epoch(2)]
    resumed = [b[1].numpy().tolist() for b in source.epoch(2, start_step=1)]
    assert resumed == full[1:]
