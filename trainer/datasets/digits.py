"""scikit-learn's bundled 8x8 digits: 1,797 images, always available offline."""

from __future__ import annotations

from typing import Literal

from trainer.datasets import DATASETS, DatasetParams, RawData


class DigitsParams(DatasetParams):
    type: Literal["digits"] = "digits"

    def task(self) -> str:
        return "multiclass"


@DATASETS.register(DigitsParams, available=lambda: True, inputs="image")
def digits(seed: int) -> RawData:
    """Handwritten digits 0-9 as 8x8 images with 17 grey levels (UCI, bundled with sklearn)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return RawData(
        bunch.images[..., None].astype("float32"),
        bunch.target,
        "multiclass",
        class_names=[str(c) for c in bunch.target_names],
        value_range=(0.0, 16.0),
        default_scaling="unit",
    )
