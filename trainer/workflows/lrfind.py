"""The learning-rate range test: grow the rate exponentially over a short run, watch the loss.

One optimizer step per rate, from ``min_rate`` to ``max_rate`` in ``steps`` geometric steps
(Smith, "Cyclical Learning Rates", 2017; fastai's ``lr_find``), on the config's own model,
data, batch size and optimizer, with any schedule and warm-up switched off. Each step's loss is that
batch's loss alone (the metric accumulators are reset before every step, since Keras would
otherwise log the running mean of the epoch). While the test runs, the loss is smoothed with
a bias-corrected exponential moving average, and the test stops once that exceeds
``DIVERGENCE`` times its minimum (or the loss becomes NaN): the rate has become too high.

Two suggestions come out, both on a centred moving average of ``WINDOW`` steps (which, unlike
the running average, does not lag behind the rate): the rate where the loss falls fastest
(the steepest negative slope against log10(rate), before the minimum), and a tenth of the rate
at the minimum. The first is the usual choice; the second is a safe upper bound.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainer import datasets, optimizers
from trainer.config.loading import to_yaml
from trainer.config.schema import Config
from trainer.core import files
from trainer.core.errors import UsageError
from trainer.datasets import pipeline
from trainer.models import MODELS, hook
from trainer.training import backend, engine

SMOOTHING = 0.95  # weight of the past in the running average that detects the explosion
WINDOW = 9  # steps in the centred average the suggestions read (under a decade at 100 steps)
DIVERGENCE = 4.0  # stop once the smoothed loss exceeds this many times its minimum


@dataclass
class RangeTest:
    """What the range test found; ``rates[i]`` was used for the step whose loss is ``losses[i]``."""

    rates: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float | None  # steepest descent of the smoothed loss
    minimum_tenth: float | None  # a tenth of the rate at the smoothed loss's minimum
    stopped: str  # why the test ended
    min_rate: float
    max_rate: float
    output: Path | None = None

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("rates", "losses", "smoothed"):
            data.pop(key)
        data["steps_run"] = len(self.rates)
        data["output"] = None if self.output is None else str(self.output)
        return data


def check_settings(cfg: Config, steps: int, min_rate: float, max_rate: float) -> None:
    """Refuse impossible settings before TensorFlow starts."""
    if MODELS.get(cfg.model.type).info.get("compile") is not None:
        raise UsageError(
            f"lr-find runs supervised models; model '{cfg.model.type}' trains with its own "
            "losses and optimizers",
            hint="pick the learning rate of a vae or gan by a few short `trainer fit` runs",
        )
    if not 0 < min_rate < max_rate:
        raise UsageError(
            f"the rate range must satisfy 0 < --min-lr < --max-lr (got {min_rate} and {max_rate})"
        )
    if steps < 10:
        raise UsageError(f"--steps must be at least 10 to show a curve (got {steps})")


def rates(min_rate: float, max_rate: float, steps: int) -> list[float]:
    """``steps`` rates growing geometrically from ``min_rate`` to ``max_rate`` inclusive."""
    ratio = max_rate / min_rate
    return [min_rate * ratio ** (i / (steps - 1)) for i in range(steps)]


def range_test(
    cfg: Config,
    output: Path,
    progress: engine.Progress,
    steps: int = 100,
    min_rate: float = 1e-7,
    max_rate: float = 10.0,
) -> RangeTest:
    """Run the range test on ``cfg``'s model and data; write the CSV, plot and summary."""
    check_settings(cfg, steps, min_rate, max_rate)
    files.check_writable(output)
    progress.stage(f"loading dataset '{cfg.dataset.type}'")
    data = datasets.load(cfg.dataset, cfg.seed)
    progress.stage("starting the Keras backend")
    device = backend.start(cfg.training)
    engine.seed_everything(cfg.seed, cfg.deterministic)
    model = engine.build_model(cfg, data.spec)
    n_train = len(data.x_train)
    batch_size = n_train if cfg.training.batch_size == "full" else cfg.training.batch_size
    params = cfg.optimizer.model_copy(
        update={"learning_rate": min_rate, "schedule": None, "warmup_epochs": 0.0}
    )
    hook("compile", cfg.model.type)(
        model,
        cfg,
        lambda _: optimizers.build(params, 1, 1),
        steps_per_execution=1,
        jit_compile=engine.resolve_jit(cfg.training.jit_compile, model, device),
    )
    weights = engine.class_weights_of(cfg, data)
    batches = pipeline.NumpyBatches(
        data.x_train, data.y_train, batch_size, cfg.seed, class_weight=weights
    )  # (x, y, sample_weight) batches when weighted

    schedule = rates(min_rate, max_rate, steps)
    tried, losses = [], []
    average, best, stopped = 0.0, math.inf, f"reached the maximum rate {max_rate:g}"
    progress.stage(
        f"range test: {steps} steps of batch {batch_size}, learning rate "
        f"{min_rate:g} -> {max_rate:g}"
    )
    progress.start(1, steps)
    try:
        epoch, feed = 0, batches.epoch(0)
        for i, rate in enumerate(schedule):
            batch = next(feed, None)
            if batch is None:  # more steps than one epoch has: continue with the next epoch
                epoch += 1
                feed = batches.epoch(epoch)
                batch = next(feed)
            model.optimizer.learning_rate.assign(rate)
            model.reset_metrics()  # the logged loss is then this batch's alone
            logs = model.train_on_batch(*batch, return_dict=True)
            loss = float(logs["loss"])
            progress.step(i + 1)
            if not math.isfinite(loss):
                stopped = f"the loss became {loss} at rate {rate:.3g}"
                break
            average = SMOOTHING * average + (1 - SMOOTHING) * loss
            value = average / (1 - SMOOTHING ** (i + 1))
            tried.append(rate)
            losses.append(loss)
            best = min(best, value)
            if value > DIVERGENCE * best:
                stopped = f"the loss exploded at rate {rate:.3g} ({DIVERGENCE:g}x its minimum)"
                break
    finally:
        progress.finish()
    smoothed = centred(losses)
    suggestion, tenth = suggest(tried, smoothed)
    result = RangeTest(
        tried, losses, smoothed, suggestion, tenth, stopped, min_rate, max_rate, output
    )
    write(result, cfg, output)
    return result


def centred(losses: list[float]) -> list[float]:
    """The centred moving average of ``WINDOW`` steps (narrower for short curves)."""
    import numpy as np

    width = min(WINDOW, len(losses) - (1 - len(losses) % 2))
    if width < 3:
        return list(losses)
    padded = np.pad(np.asarray(losses, dtype=np.float64), width // 2, mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid").tolist()


def suggest(tried: list[float], smoothed: list[float]) -> tuple[float | None, float | None]:
    """(steepest descent, minimum / 10) of the smoothed loss; None where undefined."""
    import numpy as np

    if len(smoothed) < 3:
        return None, None
    values = np.asarray(smoothed)
    lowest = int(values.argmin())
    tenth = float(tried[lowest]) / 10
    # the first steps are dominated by the moving average's start: skip a tenth of them
    start = min(len(values) // 10, max(lowest - 2, 0))
    segment = values[start : lowest + 1]
    if len(segment) < 3:
        return None, tenth
    slopes = np.gradient(segment, np.log10(np.asarray(tried[start : lowest + 1])))
    steepest = int(slopes.argmin())
    if slopes[steepest] >= 0:  # the loss never fell: no descent to point at
        return None, tenth
    return float(tried[start + steepest]), tenth


def write(result: RangeTest, cfg: Config, output: Path) -> None:
    """``lr_find.csv``, ``lr_find.png``, ``lr_find.json`` and the resolved ``config.yaml``."""
    output.mkdir(parents=True, exist_ok=True)
    files.write_text(output / "config.yaml", to_yaml(cfg))
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["step", "learning_rate", "loss", "smoothed_loss"])
    for i, row in enumerate(zip(result.rates, result.losses, result.smoothed, strict=True)):
        writer.writerow([i + 1, *(repr(float(v)) for v in row)])
    files.write_text(output / "lr_find.csv", table.getvalue())
    plot(result, output / "lr_find.png")
    files.write_json(output / "lr_find.json", result.summary())


def plot(result: RangeTest, path: Path) -> None:
    """Loss against learning rate (log scale), the suggestions marked."""
    from trainer.evaluation.plotting import figure, save

    fig, axes = figure()
    axes.plot(result.rates, result.losses, color="0.75", linewidth=1, label="loss per step")
    axes.plot(result.rates, result.smoothed, color="C0", linewidth=2, label="smoothed loss")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    if result.smoothed:  # keep the exploded tail from squashing the interesting part
        low, high = min(result.smoothed), result.smoothed[0]
        axes.set_ylim(low - 0.1 * (high - low + 1e-12), max(high, low) * 1.5 + 1e-12)
    if result.suggestion is not None:
        axes.axvline(
            result.suggestion,
            color="C2",
            linestyle="--",
            label=f"steepest descent: {result.suggestion:.2g}",
        )
    if result.minimum_tenth is not None:
        axes.axvline(
            result.minimum_tenth,
            color="C1",
            linestyle=":",
            label=f"minimum / 10: {result.minimum_tenth:.2g}",
        )
    axes.set_title("learning-rate range test")
    axes.legend()
    save(fig, path)
