"""The finiteness check on weights, optimizer variables, checkpoints (training.finite)."""

import numpy as np
import pytest

from trainer.core.errors import EXIT_DIVERGED, DivergedError
from trainer.training import finite


def test_problems_count_nan_and_inf_and_skip_finite_and_integer_arrays():
    values = np.array([1.0, np.nan, np.inf, -np.inf, np.nan], dtype=np.float32)
    found = finite.problems([("a", np.ones(3)), ("b", values), ("step", np.array(7))])
    assert found == ["b (2 NaN, 2 Inf of 5 values)"]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.complex64])
def test_every_floating_dtype_is_checked(dtype):
    value = np.zeros(4, dtype=dtype)
    value[1] = np.inf
    assert finite.problems([("w", value)]) == ["w (1 Inf of 4 values)"]


def test_checkpoint_problems_name_the_weight_and_put_optimizer_scalars_first():
    arrays = {
        "model/00000/dense_0/kernel": np.full((2, 2), np.nan),
        "metrics/00000/loss/total": np.array(np.nan),  # an accumulator, not training state
        "optimizer0/00000/adam/iteration": np.array(5, dtype=np.int64),
        "optimizer0/00001/adam/learning_rate": np.array(np.inf, dtype=np.float32),
        "best/00003": np.array([0.0, np.nan]),
    }
    assert finite.checkpoint_problems(arrays) == [
        "optimizer variable adam/learning_rate (1 Inf of 1 values)",
        "weight dense_0/kernel (4 NaN of 4 values)",
        "early stopping's best weight #3 (1 NaN of 2 values)",
    ]


def test_summary_shows_the_first_few_and_counts_the_rest():
    found = [f"w{i}" for i in range(5)]
    assert finite.summary(found) == "w0; w1; w2; and 2 more"
    assert finite.summary(found[:2]) == "w0; w1"


def test_a_model_with_a_nan_weight_is_refused_before_it_is_saved_or_used():
    import keras

    from trainer.training.saved import refuse_non_finite

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="head")])
    refuse_non_finite(model, "fine")  # finite: nothing happens
    kernel = model.get_layer("head").kernel
    kernel.assign(np.where(np.eye(3, 2) == 1, np.nan, kernel.numpy()))
    with pytest.raises(DivergedError) as caught:
        refuse_non_finite(model, "the trained model has non-finite weights")
    assert caught.value.exit_code == EXIT_DIVERGED
    assert "head/kernel (2 NaN of 6 values)" in caught.value.message
    assert "learning rate" in caught.value.hint


def test_an_unknown_fault_kind_is_refused():
    from trainer.training.faults import Fault

    with pytest.raises(ValueError, match="unknown kind 'nan'"):
        Fault("nan", 3)
