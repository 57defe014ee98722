"""What a finished run's history says: over-fitting, under-fitting, divergence or a plateau.

Pure Python on the per-epoch history (``history.csv`` rows) and, when given, the test metrics
with their naive baseline and the resolved config, so it runs without TensorFlow, is tested
on synthetic histories, and can be recomputed for any old run. Each rule is a small named
function that returns a :class:`Finding` or None; the verdict is the most serious finding,
and every finding says what to try next in the config's own keys: a suggestion that names a
setting (:meth:`History.suggest`) is made only when the run's config with that setting is
still valid, so no hint names a key that does not exist or does not apply to the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from trainer.evaluation.metrics import HIGHER_IS_BETTER
from trainer.settings.vocabulary import DEFAULT_LOSS

# Most serious first: the verdict is the first kind found in this order.
VERDICTS = ("diverged", "overfitting", "underfitting", "plateau", "healthy")

DIVERGE_FACTOR = 2.0  # a final training loss this many times its best, and rising, diverged
OVERFIT_RISE = 0.05  # validation loss 5% above its best is past the epoch-to-epoch noise
OVERFIT_MIN_EPOCHS = 2  # one bad epoch after the best is noise; two rising ones are a trend
TRAIN_STILL_FALLING = 0.01  # training loss 1% lower than at the validation best
MEMORIZE_FALL = 0.25  # training loss a quarter lower since validation stopped improving...
GAP_RATIO = 5.0  # ...and validation loss 5 times the training loss: memorizing, not learning
PLATEAU_TOLERANCE = 0.01  # less than 1% better over the window counts as no progress
IMPROVING_RATE = 0.01  # still falling by more than 1% an epoch at the end
BASELINE_CLOSURE = 0.2  # closing less than a fifth of the gap to perfect is "barely learned"
REFERENCE_MARGIN = 0.03  # accuracy 3 points under the family's test figure
REFERENCE_RATIO = 1.5  # an error 1.5 times the family's test error

# What each model family reaches on a dataset, so "far from it" has a number. Test figures:
# training on the same data should reach at least these. Sources: the README's measured table.
REFERENCES: dict[tuple[str, str], dict[str, float]] = {
    ("digits", "fnn"): {"accuracy": 0.978},  # configs/digits.yaml
    ("fashion_mnist", "fnn"): {"accuracy": 0.879},  # configs/fashion_mnist.yaml
    ("fashion_mnist", "cnn"): {"accuracy": 0.9196},  # configs/fashion_mnist_cnn.yaml
    ("fashion_mnist", "rnn"): {"accuracy": 0.895},  # configs/fashion_mnist_rnn.yaml
}


@dataclass
class Finding:
    kind: str
    message: str
    suggestions: list[str] = field(default_factory=list)
    epoch: int | None = None  # 1-based epoch where it started


@dataclass
class History:
    """The history's columns as floats, with what the rules need to know about the run."""

    columns: dict[str, list[float]]
    metrics: Mapping[str, Any] | None = None
    cfg: Any = None  # a trainer.config.schema.Config, when known
    reference: Mapping[str, float] | None = None

    def __len__(self) -> int:
        return len(self.columns.get("loss", []))

    def get(self, name: str) -> list[float] | None:
        values = self.columns.get(name)
        return values if values and all(math.isfinite(v) for v in values) else None

    def setting(self, path: str, default: Any = None) -> Any:
        value = self.cfg
        for part in path.split("."):
            value = getattr(value, part, None)
            if value is None:
                return default
        return value

    def suggest(self, why: str, *candidates: dict[str, Any], then: str = "") -> str | None:
        """``WHY: key: value, ...`` for the first candidate (dotted key -> value) that the run's
        config accepts and does not already hold; None when none does. Without a config (a
        history alone) the first candidate is taken as it is."""
        from trainer.config.loading import accepts

        for changes in map(_tidy, candidates):
            if self.cfg is not None and (
                all(_plain(self.setting(k)) == v for k, v in changes.items())
                or not accepts(self.cfg, changes)
            ):
                continue
            settings = ", ".join(f"{key}: {_flow(value)}" for key, value in changes.items())
            return f"{why}: {settings}{then}"
        return None


def diagnose(
    rows: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Any] | None = None,
    cfg: Any = None,
    reference: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The verdict on a run, as the ``diagnosis.json`` object.

    ``rows`` are ``history.csv`` rows (``loss``, ``val_loss``, metrics; strings or numbers).
    ``metrics`` is the ``metrics.json`` object, whose naive baseline lets the under-fitting
    rule say "barely better than guessing"; ``reference`` maps metric names to what the model
    family reaches on this data (default: :data:`REFERENCES` for the config's dataset and
    model).
    """
    history = History(_columns(rows), metrics, cfg, reference or _reference(cfg))
    if "loss" not in history.columns:
        return _result("not_applicable", len(rows), [], (
            "no training loss in the history (adversarial training logs d_loss and g_loss): "
            "judge this run by its samples and its Frechet distance"))  # fmt: skip
    if len(history) < 2:
        return _result("not_applicable", len(history), [],
                       "one epoch is too few to see a trend; train for more epochs")  # fmt: skip
    findings = [f for rule in RULES if (f := rule(history)) is not None]
    kinds = [f.kind for f in findings]
    verdict = next((v for v in VERDICTS if v in kinds), "healthy")
    if verdict == "diverged":  # a rising loss also "stopped improving": one story
        findings = [f for f in findings if f.kind == "diverged"]
    if verdict == "underfitting" and "plateau" in kinds:
        findings = [f for f in findings if f.kind != "plateau"]  # one story: it learned little
    lead = next((f for f in findings if f.kind == verdict), None)
    summary = lead.message if lead else _healthy(history)
    if verdict == "healthy" and findings:
        summary += "; " + "; ".join(f.message for f in findings)
    return _result(verdict, len(history), findings, summary)


def _healthy(history: History) -> str:
    if "val_loss" in history.columns:
        return ("training and validation loss fell together, with no sign of "
                "over-fitting or under-fitting")  # fmt: skip
    return "the training loss fell, with no sign of under-fitting"


def _result(verdict: str, epochs: int, findings: list[Finding], summary: str) -> dict[str, Any]:
    suggestions = list(dict.fromkeys(s for f in findings for s in f.suggestions))
    return {
        "verdict": verdict,
        "summary": summary,
        "epochs": epochs,
        "findings": [asdict(f) for f in findings],
        "suggestions": suggestions,
    }


def _columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    names = [k for k in (rows[0] if rows else {}) if k != "epoch"]
    return {name: [_float(row.get(name)) for row in rows] for name in names}


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _reference(cfg: Any) -> dict[str, float] | None:
    if cfg is None:
        return None
    return REFERENCES.get((cfg.dataset.type, cfg.model.type))


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _tidy(value: Any) -> Any:
    """Suggested numbers with 3 significant digits (0.3, not 0.30000000000000004)."""
    if isinstance(value, dict):
        return {k: _tidy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tidy(v) for v in value]
    return float(f"{value:.3g}") if isinstance(value, float) else value


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if dump else value


def _flow(value: Any) -> str:
    """A value as it is written in a config (YAML flow style: ``{patience: 3}``, ``[32, 16]``)."""
    import yaml

    return yaml.safe_dump([value], default_flow_style=True, sort_keys=False).strip()[1:-1]


def _steps(*suggestions: str | None) -> list[str]:
    return [s for s in suggestions if s]


def _smooth(values: list[float], window: int) -> list[float]:
    """Centred moving mean (shorter at the ends)."""
    half = window // 2
    return [sum(part) / len(part) for i in range(len(values))
            if (part := values[max(0, i - half) : i + half + 1])]  # fmt: skip


def _argmin(values: list[float]) -> int:
    return min(range(len(values)), key=values.__getitem__)


# -- the rules ----------------------------------------------------------------------------
def check_diverged(h: History) -> Finding | None:
    """Training loss non-finite, or ending above its start, or at twice its best and rising."""
    loss = h.columns["loss"]
    bad = next((i for i, v in enumerate(loss) if not math.isfinite(v)), None)
    if bad is not None:
        message = f"diverged: the training loss became {loss[bad]} in epoch {bad + 1}"
        return Finding("diverged", message, _calmer_steps(h), bad + 1)
    best = _argmin(loss)
    rising = len(loss) >= 3 and loss[-1] > loss[-2] > loss[-3]
    ended_higher = best < len(loss) - 1 and loss[-1] > loss[0] and loss[-1] > loss[best] * 1.1
    if ended_higher or (rising and loss[-1] > DIVERGE_FACTOR * loss[best] > 0):
        message = (f"diverged: the training loss rose from {_fmt(loss[best])} (epoch {best + 1}) "
                   f"to {_fmt(loss[-1])} (epoch {len(loss)})")  # fmt: skip
        return Finding("diverged", message, _calmer_steps(h), best + 2)
    return None


def check_overfitting(h: History) -> Finding | None:
    """Validation loss rising after its best, or stalled far above a still-falling training loss.

    The validation loss is smoothed first (a centred mean over a few epochs), so one lucky
    or unlucky epoch on a small validation split neither makes nor hides the trend.
    """
    loss, raw = h.get("loss"), h.get("val_loss")
    if loss is None or raw is None or len(raw) < OVERFIT_MIN_EPOCHS + 2:
        return None
    window = 1 if len(raw) < 8 else 3 if len(raw) < 30 else 5
    val = _smooth(raw, window)
    found = _rising(loss, val, window) or _memorizing(loss, val)
    if found is None:
        return None
    best, message = found
    dropout, l2 = h.setting("regularization.dropout", 0.0), h.setting("regularization.l2", 0.0)
    stopping = h.setting("early_stopping")
    if stopping is not None and stopping.restore_best_weights and stopping.monitor == "val_loss":
        message += f"; early stopping kept epoch {_argmin(raw) + 1}'s weights"
    early = {"monitor": "val_loss", "patience": 3, "restore_best_weights": True}
    augmentation = {"rotation": 0.05, "translation": 0.1, "zoom": 0.1}
    steps = _steps(
        h.suggest("more regularization", {"regularization.dropout": min(0.5, dropout + 0.2)}),
        h.suggest("more regularization", {"regularization.l2": l2 * 10 if l2 else 1e-4}),
        None if stopping is not None else h.suggest(
            "early stopping", {"early_stopping": early},
            then=f" (it would keep epoch {best + 1}'s weights)"),
        h.suggest("more training data, or augmentation",
                  {"dataset.augmentation": augmentation}) or "more training data",
    )  # fmt: skip
    return Finding("overfitting", message, steps, best + 2)


def _rising(loss: list[float], val: list[float], window: int) -> tuple[int, str] | None:
    """Validation loss clearly above its best for epochs while training loss still falls."""
    best = _argmin(val)
    after = val[best + 1 :]
    if len(after) < OVERFIT_MIN_EPOCHS:
        return None
    rise = (val[-1] - val[best]) / abs(val[best] or 1.0)
    trend = sum(after) / len(after) > val[best] * (1 + OVERFIT_RISE / 2)
    falling = loss[-1] < loss[best] * (1 - TRAIN_STILL_FALLING)
    if rise <= OVERFIT_RISE or not trend or not falling:
        return None
    averaged = f" ({window}-epoch means)" if window > 1 else ""
    return best, (f"over-fitting from epoch {best + 2}: validation loss rose from "
                  f"{_fmt(val[best])} (epoch {best + 1}, its best) to {_fmt(val[-1])}{averaged} "
                  f"while training loss fell from {_fmt(loss[best])} to "
                  f"{_fmt(loss[-1])}")  # fmt: skip


def _memorizing(loss: list[float], val: list[float]) -> tuple[int, str] | None:
    """Validation loss stalled for the last quarter while training loss fell far below it."""
    stalled = _plateau_start(val)
    if stalled is None:
        return None
    fell = loss[-1] < loss[stalled] * (1 - MEMORIZE_FALL)
    if not fell or val[-1] < GAP_RATIO * loss[-1]:
        return None
    return stalled, (f"over-fitting from epoch {stalled + 2}: validation loss stopped "
                     f"improving at epoch {stalled + 1} (about {_fmt(val[-1])}) while training "
                     f"loss kept falling, from {_fmt(loss[stalled])} to {_fmt(loss[-1])}, "
                     f"{val[-1] / loss[-1]:.0f} times below it: the model is memorizing the "
                     "training set")  # fmt: skip


def check_underfitting(h: History) -> Finding | None:
    """The training metric barely beats the naive baseline, or the run falls far short of the
    reference."""
    shortfall = _below_reference(h) or _near_baseline(h)
    if shortfall is None:
        return None
    # "more epochs" comes from check_still_improving when the loss still fell
    weights = {f"regularization.{k}": h.setting(f"regularization.{k}", 0.0) / 2
               for k in ("l1", "l2", "dropout")}  # fmt: skip
    weights = {k: v for k, v in weights.items() if v}
    rate = h.setting("optimizer.learning_rate")
    stalled = _plateau_start(h.columns["loss"]) is not None
    steps = _steps(
        h.suggest("less regularization", weights) if weights else None,
        _larger_model(h),
        h.suggest("a higher learning rate", {"optimizer.learning_rate": rate * 3},
                  then=", or `trainer lr-find CONFIG` to pick one") if stalled and rate else None,
    )  # fmt: skip
    if stalled and not rate:
        steps.append("a higher learning rate: `trainer lr-find CONFIG` picks one")
    return Finding("underfitting", f"under-fitting: {shortfall}", steps)


def _larger_model(h: History) -> str | None:
    """Twice the width of the model's layers, in whichever key the family has."""
    if h.cfg is None:
        return "a larger model (wider layers)"
    for key in ("units", "filters", "dense_units"):
        widths = getattr(h.cfg.model, key, None)
        if widths:
            return h.suggest("a larger model", {f"model.{key}": [2 * w for w in widths]})
    return None


def check_plateau(h: History) -> Finding | None:
    """Training loss has not improved by more than 1% for the last quarter of the run."""
    loss = h.get("loss")
    start = None if loss is None else _plateau_start(loss)
    if start is None:
        return None
    idle = len(loss) - 1 - start
    message = (f"plateau: the training loss stopped improving at epoch {start + 1} "
               f"({_fmt(loss[start])}); the last {idle} epochs changed it by less than "
               f"{PLATEAU_TOLERANCE:.0%}")  # fmt: skip
    rate = h.setting("optimizer.learning_rate")
    lower = (
        h.suggest("a lower learning rate", {"optimizer.learning_rate": rate / 10}) if rate else None
    )
    saved = f" (it would have saved about {idle - 3} epochs)"
    steps = _steps(
        "more epochs will not help at this learning rate",
        h.suggest("a learning-rate schedule",
                  {"optimizer.schedule": {"type": "cosine", "decay_epochs": len(loss)}}),
        lower,
        h.suggest("early stopping", {"early_stopping": {"patience": 3}},
                  {"early_stopping": {"monitor": "loss", "patience": 3}}, then=saved)
        if h.setting("early_stopping") is None and idle > 4 else None,
    )  # fmt: skip
    return Finding("plateau", message, steps, start + 1)


def check_still_improving(h: History) -> Finding | None:
    """The monitored loss was still falling fast at the last epoch: more epochs would help."""
    found = _still_improving(h)
    if found is None:
        return None
    name, values = found
    epochs = h.setting("training.epochs", len(values))
    message = (f"{name} still falling at the last epoch ({_fmt(values[-2])} -> "
               f"{_fmt(values[-1])})")  # fmt: skip
    more = h.suggest("more epochs", {"training.epochs": max(2 * epochs, len(values) + 5)})
    return Finding("still_improving", message, _steps(more))


def check_validated(h: History) -> Finding | None:
    """Without a validation split, over-fitting cannot be seen: say so."""
    if "val_loss" in h.columns:
        return None
    split = h.suggest("a validation split", {"dataset.validation_split": 0.1})
    return Finding("no_validation", "without a validation split over-fitting cannot be seen",
                   _steps(split))  # fmt: skip


RULES: list[Callable[[History], Finding | None]] = [
    check_diverged,
    check_overfitting,
    check_underfitting,
    check_plateau,
    check_still_improving,
    check_validated,
]


# -- helpers of the rules -----------------------------------------------------------------
def _calmer_steps(h: History) -> list[str]:
    rate = h.setting("optimizer.learning_rate")
    return _steps(
        h.suggest("a lower learning rate", {"optimizer.learning_rate": rate / 10})
        if rate else "a lower learning rate (10 times lower)",
        h.suggest("gradient clipping", {"optimizer.clipnorm": 1.0}),
        h.suggest("scaled inputs", {"dataset.scaling": "standard"}),
    )  # fmt: skip


def _plateau_start(loss: list[float]) -> int | None:
    """The first epoch after which the loss never improved by more than the tolerance."""
    window = max(3, len(loss) // 4)
    if len(loss) <= window or not all(math.isfinite(v) for v in loss):
        return None
    start = len(loss) - 1
    while start > 0 and loss[start - 1] - min(loss[start:]) < PLATEAU_TOLERANCE * abs(
        loss[start - 1]
    ):
        start -= 1
    return start if len(loss) - 1 - start >= window else None


def _still_improving(h: History) -> tuple[str, list[float]] | None:
    for name in ("val_loss", "loss"):
        values = h.get(name)
        if values is None or len(values) < 3:
            continue
        rates = [(values[i - 1] - values[i]) / abs(values[i - 1] or 1.0) for i in (-2, -1)]
        if values[-1] == min(values) and all(r > IMPROVING_RATE for r in rates):
            return name, values
        return None
    return None


def _near_baseline(h: History) -> str | None:
    baseline = (h.metrics or {}).get("baseline")
    if not baseline:
        return None
    for name, reached in _training_values(h):
        naive = baseline["test"].get(name)
        if naive is None:
            continue
        if name in HIGHER_IS_BETTER:
            closure = (reached - naive) / (1 - naive) if naive < 1 else 1.0
        else:
            closure = (naive - reached) / naive if naive > 0 else 1.0
        if closure < BASELINE_CLOSURE:
            return (f"the final training {name} ({_fmt(reached)}) is barely better than the "
                    f"naive baseline's ({baseline['name']}: {_fmt(naive)}); the model learned "
                    "little of the signal")  # fmt: skip
        return None
    return None


def _below_reference(h: History) -> str | None:
    """The run's best validation figure (else its final training one) far below the reference.

    Validation is measured as the reference is (no dropout, no augmentation), so a heavily
    regularized model is not called under-fitted for its lower training accuracy.
    """
    for name, target in (h.reference or {}).items():
        higher = name in HIGHER_IS_BETTER
        if (values := h.get(f"val_{name}")) is not None:
            reached, which = (max if higher else min)(values), "best validation"
        elif (values := h.get(name)) is not None:
            reached, which = values[-1], "final training"
        else:
            continue
        far = reached < target - REFERENCE_MARGIN if higher else reached > target * REFERENCE_RATIO
        if not far:
            return None
        family = h.setting("model.type", "this model")
        data = h.setting("dataset.type", "this data")
        return (f"the {which} {name} ({_fmt(reached)}) is far from the {_fmt(target)} a "
                f"{family} reaches on {data} (test figure)")  # fmt: skip
    return None


def _training_values(h: History) -> list[tuple[str, float]]:
    """Final training values worth comparing with the baseline: metrics first, then loss.

    The loss is comparable only when it is the task's default (cross-entropy or MSE), which
    is what the baseline's ``loss`` measures.
    """
    found = []
    for name in ("accuracy", "r2", "auc", "mse", "rmse", "mae"):
        values = h.get(name)
        if values is not None:
            found.append((name, values[-1]))
    default_loss = h.cfg is None or h.cfg.loss.type == DEFAULT_LOSS.get(h.cfg.task)
    if default_loss and h.get("loss") is not None:
        found.append(("loss", h.columns["loss"][-1]))
    return found
