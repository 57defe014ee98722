"""The diagnosis rules on synthetic histories: each shape gets the verdict a person would give."""

import math

import pytest

from trainer.config.loading import load_config
from trainer.results.diagnosis import VERDICTS, diagnose

DIGITS = {
    "name": "d",
    "dataset": {"type": "digits", "validation_split": 0.2},
    "model": {"type": "fnn", "units": [16]},
    "optimizer": {"type": "adam", "learning_rate": 0.01},
    "training": {"epochs": 10},
}


def config(tmp_path, **changes):
    import yaml

    data = {**DIGITS, **changes}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def rows(**columns):
    """history.csv rows (strings, as read back) from columns of numbers."""
    n = len(next(iter(columns.values())))
    return [{"epoch": str(i), **{k: repr(float(v[i])) for k, v in columns.items()}}
            for i in range(n)]  # fmt: skip


def decaying(start, rate, n, floor=0.0):
    return [floor + (start - floor) * rate**i for i in range(n)]


OVERFITTING = rows(
    loss=decaying(1.0, 0.7, 12),
    val_loss=[1.0, 0.7, 0.5, 0.4, 0.36, 0.38, 0.42, 0.47, 0.53, 0.6, 0.66, 0.72],
    accuracy=[0.6, 0.75, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.99, 1.0, 1.0],
)
HEALTHY = rows(
    loss=decaying(1.0, 0.8, 8, floor=0.1),
    val_loss=decaying(1.05, 0.8, 8, floor=0.15),
    accuracy=[0.7, 0.8, 0.86, 0.9, 0.92, 0.94, 0.95, 0.96],
)
DIVERGING = rows(loss=[0.9, 0.6, 0.8, 2.5, 40.0, 900.0], val_loss=[0.9, 0.7, 1.0, 3.0, 50.0, 1e3])
PLATEAU = rows(
    loss=[1.0, 0.5, 0.32, 0.301, 0.300, 0.2995, 0.2993, 0.2992, 0.2991, 0.2991, 0.299, 0.299],
    val_loss=[1.0, 0.55, 0.36, 0.35, 0.35, 0.349, 0.35, 0.349, 0.35, 0.35, 0.349, 0.35],
)
# digits with 10 classes: guessing the majority class scores about 0.1
UNDERFITTING = rows(
    loss=[2.31, 2.29, 2.27, 2.26, 2.25, 2.25],
    val_loss=[2.31, 2.3, 2.28, 2.27, 2.27, 2.26],
    accuracy=[0.1, 0.11, 0.12, 0.13, 0.13, 0.14],
)
BASELINE = {"baseline": {"name": "majority class", "test": {"loss": 2.30, "accuracy": 0.1}}}


@pytest.mark.parametrize(
    ("history", "metrics", "verdict"),
    [
        (OVERFITTING, None, "overfitting"),
        (HEALTHY, BASELINE, "healthy"),
        (DIVERGING, None, "diverged"),
        (PLATEAU, None, "plateau"),
        (UNDERFITTING, BASELINE, "underfitting"),
    ],
    ids=["overfitting", "healthy", "diverging", "plateau", "underfitting"],
)
def test_each_shape_gets_its_verdict(history, metrics, verdict):
    result = diagnose(history, metrics)
    assert result["verdict"] == verdict, result["summary"]
    assert result["verdict"] in VERDICTS
    assert result["epochs"] == len(history)
    assert result["summary"]
    if verdict != "healthy":
        assert result["suggestions"], "every problem comes with a next step"


def test_overfitting_names_the_epoch_it_started_and_suggests_regularization():
    result = diagnose(OVERFITTING)
    finding = next(f for f in result["findings"] if f["kind"] == "overfitting")
    assert finding["epoch"] == 6  # best validation loss at epoch 5, rising from epoch 6
    assert "from epoch 6" in result["summary"]
    assert "0.38 (epoch 5, its best) to 0.69 (3-epoch means)" in result["summary"]
    text = " ".join(result["suggestions"])
    assert "regularization.dropout" in text and "early_stopping" in text


def test_overfitting_needs_training_loss_still_falling():
    """Both losses rising is not over-fitting; it is the optimizer going wrong."""
    history = rows(loss=[1.0, 0.6, 0.5, 0.55, 0.6, 0.65], val_loss=[1.0, 0.6, 0.5, 0.56, 0.6, 0.7])
    assert diagnose(history)["verdict"] != "overfitting"


def test_one_noisy_validation_epoch_is_not_overfitting():
    val_loss = [1.0, 0.8, 0.65, 0.55, 0.5, 0.46, 0.49, 0.45]
    history = rows(loss=decaying(1.0, 0.8, 8), val_loss=val_loss)
    assert diagnose(history)["verdict"] != "overfitting"


def test_divergence_by_a_non_finite_loss_names_the_epoch():
    history = rows(loss=[1.0, 0.8, math.inf])
    result = diagnose(history)
    assert result["verdict"] == "diverged"
    assert result["findings"][0]["epoch"] == 3
    assert "lower learning rate" in " ".join(result["suggestions"])


def test_divergence_starts_after_the_best_epoch_and_suggests_a_lower_rate(tmp_path):
    result = diagnose(DIVERGING, cfg=config(tmp_path))
    assert result["findings"][0]["epoch"] == 3  # best at epoch 2
    assert "a lower learning rate: optimizer.learning_rate: 0.001" in result["suggestions"]
    assert "gradient clipping: optimizer.clipnorm: 1.0" in result["suggestions"]
    assert [f["kind"] for f in result["findings"]] == ["diverged"]


def test_plateau_names_where_progress_stopped_and_suggests_a_schedule():
    result = diagnose(PLATEAU)
    finding = next(f for f in result["findings"] if f["kind"] == "plateau")
    assert finding["epoch"] == 4
    assert "schedule" in " ".join(result["suggestions"])


def test_underfitting_against_the_naive_baseline():
    result = diagnose(UNDERFITTING, BASELINE)
    assert "naive baseline" in result["summary"] and "majority class" in result["summary"]
    assert "a larger model" in " ".join(result["suggestions"])


def test_underfitting_against_the_family_reference(tmp_path):
    """Learning well above the baseline can still be far below what the family reaches."""
    history = rows(loss=decaying(1.5, 0.8, 5), accuracy=[0.5, 0.6, 0.7, 0.75, 0.8])
    cfg = config(tmp_path, training={"epochs": 5})
    result = diagnose(history, BASELINE, cfg=cfg)
    assert result["verdict"] == "underfitting", result["summary"]
    assert "0.978" in result["summary"] and "fnn" in result["summary"]
    assert "training.epochs: 10" in " ".join(result["suggestions"])  # the loss still fell
    stated = diagnose(history, BASELINE, reference={"accuracy": 0.8})
    assert stated["verdict"] != "underfitting"


def test_the_reference_is_compared_with_validation_when_there_is_one(tmp_path):
    """Dropout and augmentation lower training accuracy; validation is measured like the test."""
    cfg = config(tmp_path, training={"epochs": 5})
    regularized = rows(
        loss=decaying(1.5, 0.8, 5),
        val_loss=decaying(1.4, 0.8, 5),
        accuracy=[0.6, 0.7, 0.8, 0.84, 0.85],
        val_accuracy=[0.8, 0.9, 0.95, 0.97, 0.965],
    )
    assert diagnose(regularized, cfg=cfg)["verdict"] != "underfitting"
    short = rows(
        loss=decaying(1.5, 0.8, 5),
        val_loss=decaying(1.4, 0.8, 5),
        accuracy=[0.6, 0.7, 0.8, 0.84, 0.99],
        val_accuracy=[0.5, 0.6, 0.7, 0.8, 0.8],
    )
    result = diagnose(short, cfg=cfg)
    assert result["verdict"] == "underfitting"
    assert "best validation accuracy (0.8)" in result["summary"]


def test_regression_underfitting_uses_the_error_not_accuracy():
    history = rows(loss=[1.0, 0.97, 0.96, 0.96, 0.95], mse=[1.0, 0.97, 0.96, 0.96, 0.95])
    metrics = {"baseline": {"name": "training mean", "test": {"loss": 1.0, "mse": 1.0}}}
    assert diagnose(history, metrics)["verdict"] == "underfitting"
    good = rows(loss=[1.0, 0.3, 0.1, 0.05, 0.04], mse=[1.0, 0.3, 0.1, 0.05, 0.04])
    assert diagnose(good, metrics)["verdict"] != "underfitting"


def test_still_improving_is_healthy_with_more_epochs_suggested(tmp_path):
    history = rows(loss=decaying(1.0, 0.7, 5), val_loss=decaying(1.1, 0.7, 5))
    result = diagnose(history, cfg=config(tmp_path, training={"epochs": 5}))
    assert result["verdict"] == "healthy"
    assert "still falling" in result["summary"]
    assert "more epochs: training.epochs: 10" in result["suggestions"]


def test_early_stopping_that_kept_the_best_weights_is_mentioned(tmp_path):
    cfg = config(tmp_path, early_stopping={"monitor": "val_loss", "patience": 3})
    result = diagnose(OVERFITTING, cfg=cfg)
    assert "early stopping kept epoch 5's weights" in result["summary"]
    assert not any(s.startswith("early stopping:") for s in result["suggestions"])


def test_histories_without_a_trend_or_a_loss_are_not_applicable():
    assert diagnose(rows(loss=[1.0]))["verdict"] == "not_applicable"
    gan = diagnose(rows(d_loss=[0.7, 0.6, 0.65], g_loss=[0.8, 0.9, 0.85]))
    assert gan["verdict"] == "not_applicable"
    assert "Frechet" in gan["summary"]


def test_diagnosis_does_not_import_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys; from trainer.results.diagnosis import diagnose; "
        "diagnose([{'loss': '1.0'}, {'loss': '0.5'}]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# configs/digits.yaml as measured here: 73 epochs, a 130-image validation split (noisy), early
# stopping after 10 epochs without a new best. Not over-fitting: one lucky epoch is not a trend.
DIGITS_LOSS = (
    "1.973 1.012 0.501 0.373 0.289 0.256 0.211 0.187 0.166 0.158 0.142 0.133 0.128 0.121 0.103 "
    "0.099 0.1 0.099 0.089 0.084 0.083 0.073 0.082 0.079 0.06 0.071 0.066 0.062 0.06 0.062 "
    "0.058 0.06 0.059 0.058 0.056 0.055 0.059 0.052 0.05 0.05 0.047 0.05 0.05 0.048 0.045 0.046 "
    "0.05 0.047 0.046 0.048 0.045 0.044 0.044 0.043 0.044 0.044 0.044 0.04 0.039 0.041 0.043 "
    "0.041 0.044 0.04 0.037 0.041 0.04 0.04 0.04 0.039 0.037 0.038 0.037 "
)
DIGITS_VAL_LOSS = (
    "1.412 0.581 0.345 0.293 0.258 0.234 0.201 0.193 0.185 0.182 0.176 0.168 0.16 0.161 0.159 "
    "0.143 0.148 0.146 0.146 0.141 0.144 0.133 0.135 0.134 0.154 0.165 0.123 0.152 0.131 0.132 "
    "0.126 0.173 0.119 0.118 0.123 0.127 0.129 0.122 0.12 0.123 0.115 0.125 0.131 0.133 0.127 "
    "0.125 0.108 0.109 0.118 0.119 0.114 0.118 0.1 0.101 0.103 0.123 0.117 0.112 0.116 0.112 "
    "0.098 0.116 0.09 0.121 0.099 0.122 0.123 0.101 0.135 0.107 0.1 0.124 0.101 "
)
DIGITS_RUN = rows(loss=DIGITS_LOSS.split(), val_loss=DIGITS_VAL_LOSS.split())


def test_a_noisy_validation_loss_after_convergence_is_not_overfitting():
    assert diagnose(DIGITS_RUN)["verdict"] == "healthy"


# A 256-256 MLP on 210 digits, no regularization, 40 epochs: the training loss falls to
# 0.0003 while the validation loss stalls near 0.10 from about epoch 15.
MEMORIZING_LOSS = (
    "1.79 0.547 0.212 0.0885 0.0819 0.0289 0.0176 0.00865 0.00533 0.0038 0.00296 0.00259 "
    "0.00224 0.00197 0.00181 0.00161 0.00149 0.00134 0.00126 0.00115 0.00106 0.000966 0.000909 "
    "0.000844 0.0008 0.00074 0.000697 0.000658 0.000616 0.000589 0.000575 0.000519 0.000484 "
    "0.000462 0.000441 0.000418 0.000397 0.000378 0.000361 0.000345 "
)
MEMORIZING_VAL_LOSS = (
    "0.998 0.448 0.29 0.154 0.263 0.147 0.125 0.132 0.108 0.11 0.111 0.11 0.11 0.104 0.103 "
    "0.105 0.106 0.106 0.108 0.1 0.099 0.103 0.105 0.105 0.106 0.103 0.102 0.105 0.103 0.101 "
    "0.099 0.101 0.104 0.104 0.103 0.103 0.104 0.104 0.103 0.103 "
)


def test_a_stalled_validation_loss_far_above_a_falling_training_loss_is_overfitting():
    history = rows(loss=MEMORIZING_LOSS.split(), val_loss=MEMORIZING_VAL_LOSS.split())
    result = diagnose(history)
    assert result["verdict"] == "overfitting", result["summary"]
    assert "memorizing" in result["summary"] and "300 times below it" in result["summary"]
    assert "regularization.dropout: 0.2" in result["suggestions"][0]


def test_without_validation_it_says_over_fitting_cannot_be_seen():
    result = diagnose(rows(loss=[1.0, 0.6, 0.5, 0.45, 0.44]))
    assert result["verdict"] == "healthy"
    assert "validation and training" not in result["summary"]
    assert "over-fitting cannot be seen" in result["summary"]
    assert "a validation split: dataset.validation_split: 0.1" in result["suggestions"]
    assert "cannot be seen" not in diagnose(HEALTHY, BASELINE)["summary"]
