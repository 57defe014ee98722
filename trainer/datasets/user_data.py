"""What the loaders of a user's own files (csv, npz, image_folder) share: task and resampling.

The task is inferred from the labels unless the config states it (``task:``):

- numbers with a fractional part, or more than ``MAX_CLASSES`` distinct whole numbers:
  regression;
- otherwise two distinct values: binary; more: multiclass. Text labels are always classes.

The loss, the output layer and the metrics follow from the task, so validating a config with
``task: auto`` reads the labels (only them) to infer it; stating the task skips that read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from trainer.core.errors import DataError
from trainer.datasets import DatasetParams, Task

MAX_CLASSES = 20  # whole-number labels with more distinct values are a regression target
MAX_DISTINCT = 1000  # labels (or categories) beyond this many distinct values are not classes

TaskSetting = Literal["auto", "regression", "binary", "multiclass"]
Resample = Literal["none", "oversample", "undersample"]


class FileParams(DatasetParams):
    """Options of every dataset read from the user's files."""

    # the YAML key is `task`, but DatasetParams.task() is the method every dataset answers
    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    task_type: TaskSetting = Field(
        "auto",
        alias="task",
        description="regression, binary or multiclass; 'auto' infers it from the labels "
        "(fractional or many distinct numbers: regression; two values: binary; else multiclass).",
    )
    resample: Resample = Field(
        "none",
        description="Balance the classes of the training split (only): 'oversample' repeats "
        "examples of the smaller classes, 'undersample' drops examples of the larger ones.",
    )

    COMMON: ClassVar[set[str]] = DatasetParams.COMMON | {"resample"}
    _task: Task | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _resolve_task(self):
        if self.task_type != "auto":
            self._task = self.task_type
            return self
        # A DataError is not a ValueError: pydantic lets it through, and the config loader
        # reports it as a data problem (exit 4) at the dataset key.
        self._task = self.infer_task()
        return self

    def task(self) -> Task:
        return self._task

    def infer_task(self) -> Task:
        """Read the labels and infer the task (only called for ``task: auto``)."""
        raise NotImplementedError

    def _only_one(self, named: str, split: str) -> None:
        if getattr(self, named, None) is not None and self._split_given(split):
            raise ValueError(f"give {named} or {split}, not both")

    def _split_given(self, split: str) -> bool:
        """Set to other than its default: a run's saved config.yaml spells out every default."""
        given = split in self.model_fields_set
        return given and getattr(self, split) != type(self).model_fields[split].default


@dataclass(frozen=True)
class Labels:
    """What task inference needs to know about a set of labels."""

    text: bool  # some label is not a number
    distinct: int | None  # how many distinct labels; None when more than MAX_DISTINCT
    integral: bool  # every numeric label is a whole number


def resolve_task(setting: TaskSetting, labels: Labels, where: str) -> Task:
    """The task the config states, checked against the labels, or the one they imply."""
    many = labels.distinct is None or labels.distinct > MAX_CLASSES
    if setting == "regression" or (
        setting == "auto" and not labels.text and (not labels.integral or many)
    ):
        if labels.text:
            raise DataError(
                f"{where} holds text, but the regression task needs numbers",
                hint="set task: multiclass (or binary) to treat the values as classes",
            )
        return "regression"
    if labels.distinct is None:
        raise DataError(
            f"{where} has more than {MAX_DISTINCT} distinct values: too many to be classes",
            hint="for a numeric target set task: regression",
        )
    if labels.distinct < 2:
        raise DataError(
            f"{where} holds a single value, so there is nothing to learn",
            hint="check the target, and that the file holds every class",
        )
    if setting == "binary" and labels.distinct > 2:
        raise DataError(
            f"{where} holds {labels.distinct} classes, but task is binary",
            hint="set task: multiclass, or task: auto",
        )
    if setting == "auto":
        return "binary" if labels.distinct == 2 else "multiclass"
    return setting


def number_name(value: float) -> str:
    """A numeric class value as a class name: 1.0 -> '1', 0.5 -> '0.5'."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
