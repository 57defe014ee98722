"""The kinds of input a model family accepts, and the error for data it cannot take.

A sample's shape names its kind: ``(features,)`` is a ``vector`` (tabular data),
``(steps, features)`` a ``sequence`` and ``(height, width, channels)`` an ``image``. A
family declares the kinds it accepts with ``MODELS.register(..., inputs=(...))``; the
default is every kind (a Dense stack flattens whatever it gets). The data's shape is known
only once the dataset is loaded, so these checks run in the builder, before any layer is
made, and raise :class:`~trainer.core.errors.ConfigError` (exit code 2), never a TensorFlow error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainer.core.errors import ConfigError

if TYPE_CHECKING:
    from trainer.core.registry import Entry
    from trainer.datasets import DataSpec

INPUT_KINDS = ("vector", "sequence", "image")
SHAPES = {
    "vector": "(features,)",
    "sequence": "(steps, features)",
    "image": "(height, width, channels)",
}


def input_kind(shape: tuple[int, ...]) -> str:
    """``vector``, ``sequence`` or ``image``, from the rank of one sample's shape."""
    if not 1 <= len(shape) <= len(INPUT_KINDS):
        raise ConfigError("dataset", [f"samples of shape {shape} are not a vector, "
                                      "sequence or image; no model family takes them"])  # fmt: skip
    return INPUT_KINDS[len(shape) - 1]


def accepted_kinds(entry: Entry) -> tuple[str, ...]:
    """The input kinds a registered family accepts."""
    return tuple(entry.info.get("inputs", INPUT_KINDS))


def model_error(family: str, spec: DataSpec, problems: list[str]) -> ConfigError:
    """A config error about the ``model`` section that shows only with this data."""
    return ConfigError(f"model '{family}' for data of shape {spec.input_shape}", problems)


def require_kind(family: str, spec: DataSpec, kinds: tuple[str, ...], advice: str) -> str:
    """The data's input kind, or a ConfigError saying what ``family`` needs instead."""
    kind = input_kind(spec.input_shape)
    if kind not in kinds:
        needs = " or ".join(f"{k}s {SHAPES[k]}" for k in kinds)
        raise model_error(
            family,
            spec,
            [
                f"model.type: '{family}' needs {needs}, but the dataset gives {kind}s "
                f"of shape {spec.input_shape}; {advice}"
            ],
        )
    return kind
