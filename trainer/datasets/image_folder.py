"""A folder of images with one sub-folder per class, laid out as Keras's directory loader wants.

As in ``keras.utils.image_dataset_from_directory``: the classes are the sub-folders' names in
sorted order, a label is its folder's index, images are found at any depth inside a class
folder by extension (.bmp, .gif, .jpeg, .jpg, .png), in sorted order, and are resized to
``image_size`` (height, width) with bilinear interpolation, without keeping the aspect ratio.
Unlike Keras, hidden folders (such as ``.ipynb_checkpoints``) are not classes, and pixels are
read with Pillow as whole numbers 0-255, so loading needs no TensorFlow.

Listing the folder opens each file's header only; the pixels are read when they are needed
(:mod:`trainer.datasets.image_files`): all of them up front when the prepared splits fit in
memory, else batch by batch while training (``in_memory``, decided by
:mod:`trainer.datasets.storage`).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, PositiveInt, model_validator

from trainer.core.errors import DataError
from trainer.datasets import DATASETS, RawData, Task
from trainer.datasets.user_data import FileParams, Labels, TaskSetting, resolve_task

EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # Keras's ALLOWLIST_FORMATS


class ImageFolderParams(FileParams):
    type: Literal["image_folder"] = "image_folder"
    path: Path = Field(
        description="A folder with one sub-folder of images per class; relative paths start "
        "from the current directory."
    )
    image_size: tuple[PositiveInt, PositiveInt] = Field(
        (256, 256), description="[height, width] every image is resized to (Keras's default)."
    )
    color_mode: Literal["grayscale", "rgb", "rgba"] = Field(
        "rgb", description="Channels: grayscale (1), rgb (3) or rgba (4)."
    )
    in_memory: Literal["auto"] | bool = Field(
        "auto",
        description="true: decode every image before training (fastest); false: stream them "
        "from their files batch by batch (memory set by the batch, not the folder); 'auto': in "
        "memory when the scaled splits take under half the memory available.",
    )
    cache: Literal["none", "memory"] | Path = Field(
        "none",
        description="When streaming: keep decoded images in memory (1 byte a pixel), or in a "
        "folder (a memory-mapped file reused by later runs of the same images); 'none' decodes "
        "them every epoch.",
    )

    COMMON: ClassVar[set[str]] = FileParams.COMMON | {"in_memory"}  # read by datasets.prepare

    @model_validator(mode="after")
    def _classes_only(self):
        if self.task_type == "regression":
            raise ValueError(
                "an image folder's labels are its class sub-folders, so task can be auto, "
                "binary or multiclass, not regression"
            )
        return self

    def infer_task(self) -> Task:
        classes = class_folders(self.path)
        return resolve_task("auto", Labels(True, len(classes), True), str(self.path))


def _pillow_available() -> bool:
    return importlib.util.find_spec("PIL") is not None


def class_folders(path: Path) -> list[str]:
    """The class sub-folders of ``path``, sorted; at least two of them."""
    if not path.exists():
        raise DataError(
            f"{path}: folder not found",
            hint=f"relative paths start from the current directory ({Path.cwd()})",
        )
    if not path.is_dir():
        raise DataError(f"{path}: not a folder; expected a folder with one sub-folder per class")
    classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        found = f"only '{classes[0]}'" if classes else "none"
        raise DataError(
            f"{path}: needs one sub-folder of images per class, at least two; found {found}",
            hint=f"lay it out as {path}/CLASS_A/1.png, {path}/CLASS_B/2.png, ...",
        )
    return classes


def image_files(folder: Path) -> list[Path]:
    """Images at any depth under ``folder``, sorted, as Keras finds them."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in files if f.lower().endswith(EXTENSIONS)]
    return sorted(found)


@DATASETS.register(
    ImageFolderParams, available=_pillow_available, task="inferred from folders", inputs="image"
)
def image_folder(
    seed: int,
    path: Path,
    image_size: tuple[int, int],
    color_mode: str,
    task_type: TaskSetting,
    cache: str | Path = "none",
) -> RawData:
    """Your own images, one sub-folder per class (Keras's directory layout)."""
    import numpy as np

    from trainer.datasets.image_files import ImageFiles, ImageSource, check_headers

    classes = class_folders(path)
    task = resolve_task(task_type, Labels(True, len(classes), True), str(path))
    files, labels = [], []
    for label, name in enumerate(classes):
        found = image_files(path / name)
        if not found:
            raise DataError(
                f"{path / name}: class folder holds no images ({', '.join(EXTENSIONS)})"
            )
        files += found
        labels += [label] * len(found)
    check_headers(files)
    return RawData(
        ImageFiles(ImageSource(files, image_size, color_mode, cache)), np.asarray(labels, np.int64),
        task, class_names=classes, value_range=(0.0, 255.0), default_scaling="unit",
    )  # fmt: skip


def read_images(files: list[Path], image_size: tuple[int, int], color_mode: str):
    """The images as lazy uint8 pixels (files, height, width, channels), for prediction."""
    from trainer.datasets.image_files import ImageFiles, ImageSource

    return ImageFiles(ImageSource(files, image_size, color_mode))
