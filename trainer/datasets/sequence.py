"""Synthetic sequences made from the seed: noisy sine waves to forecast or to classify.

Every sample is ``sin(2 pi f t + phase) + noise`` for ``t = 0 .. length - 1``, with a random
frequency ``f`` (cycles per step) and phase, shaped ``(length, 1)``: one feature per step.

- ``sine_forecast`` (regression): predict the next observation, at ``t = length``. The naive
  forecast to beat is the last observed value.
- ``sine_classification``: ``frequency_range`` is cut into ``classes`` equal bands and the
  label is the band the wave's frequency falls in. The naive answer is the majority class.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from trainer.datasets import DATASETS, DatasetParams, RawData


class SyntheticSequenceParams(DatasetParams):
    type: Literal["synthetic_sequence"] = "synthetic_sequence"
    kind: Literal["sine_forecast", "sine_classification"] = Field(
        "sine_forecast",
        description="'sine_forecast': predict the next value (regression); "
        "'sine_classification': name the frequency band (classification).",
    )
    samples: int = Field(2000, ge=4, le=10_000_000, description="Number of sequences.")
    length: int = Field(32, ge=2, le=100_000, description="Time steps per sequence.")
    noise: float = Field(0.1, ge=0.0, description="Standard deviation of Gaussian noise.")
    classes: int = Field(3, ge=2, le=100, description="Frequency bands (sine_classification only).")
    frequency_range: tuple[float, float] = Field(
        (0.02, 0.2), description="Lowest and highest frequency, in cycles per step."
    )

    @model_validator(mode="after")
    def _consistent(self):
        low, high = self.frequency_range
        if not 0 < low < high <= 0.5:
            raise ValueError(
                f"frequency_range must be [low, high] with 0 < low < high <= 0.5 cycles per "
                f"step (0.5 is the fastest wave one sample per step can show); got {[low, high]}"
            )
        return self

    def task(self) -> str:
        if self.kind == "sine_forecast":
            return "regression"
        return "binary" if self.classes == 2 else "multiclass"


def last_value(x):
    """The naive forecast: tomorrow is like today."""
    return x[:, -1, 0]


@DATASETS.register(SyntheticSequenceParams, available=lambda: True, inputs="sequence")
def synthetic_sequence(
    seed: int, kind: str, samples: int, length: int, noise: float, classes: int,
    frequency_range: tuple[float, float],
) -> RawData:  # fmt: skip
    """Noisy sine waves of random frequency and phase: forecast the next value or the band."""
    import numpy as np

    rng = np.random.default_rng(seed)
    low, high = frequency_range
    edges = np.linspace(low, high, classes + 1)
    if kind == "sine_classification":
        labels = rng.integers(0, classes, size=samples)
        frequency = rng.uniform(edges[labels], edges[labels + 1])
    else:
        frequency = rng.uniform(low, high, size=samples)
    phase = rng.uniform(0.0, 2 * np.pi, size=samples)
    steps = np.arange(length + 1)
    waves = np.sin(2 * np.pi * frequency[:, None] * steps + phase[:, None])
    waves = (waves + rng.normal(0.0, noise, size=waves.shape)).astype(np.float32)
    x = waves[:, :length, None]
    if kind == "sine_forecast":
        return RawData(x, waves[:, length], "regression",
                       naive_forecast=last_value, naive_name="last value")  # fmt: skip
    names = [f"{edges[i]:.3g}-{edges[i + 1]:.3g} cycles/step" for i in range(classes)]
    task = "binary" if classes == 2 else "multiclass"
    return RawData(x, labels, task, class_names=names)
