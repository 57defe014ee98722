"""Fault injection for the fault tests: ``TRAINER_FAULT=kind@global_step``.

Each kind reproduces a failure a user can meet, in a way that does not depend on the CPU
(tests/test_faults.py runs them in real processes):

- ``sigint``, ``sigterm``, ``sigkill``: the signal arrives after that step;
- ``kill-in-checkpoint``: SIGKILL halfway through writing that step's checkpoint;
- ``nan-kernel``: NaN written into the first trainable variable (a Dense kernel) after that
  step; behind a ReLU the loss may stay finite, so only the weight check can catch it;
- ``nan-input``: one NaN feature in the first sample of that step's batch (a step of the
  first epoch), as a bad row the loader let through would be;
- ``lr-explode``: the learning rate becomes infinite after that step (a schedule that
  overflows), so the next update makes the weights Inf or NaN.
"""

from __future__ import annotations

import os
import signal

import numpy as np

KINDS = ("sigint", "sigterm", "sigkill", "kill-in-checkpoint", "nan-kernel", "nan-input",
         "lr-explode")  # fmt: skip


class Fault:
    def __init__(self, kind: str, at: int) -> None:
        if kind not in KINDS:
            raise ValueError(f"TRAINER_FAULT: unknown kind {kind!r}; one of {', '.join(KINDS)}")
        self.kind, self.at = kind, at

    def _due(self, before: int, global_step: int) -> bool:
        return before < self.at <= global_step  # the chunk of steps that ran contains `at`

    def poison_data(self, x: np.ndarray, order, steps: int, batch_size: int) -> np.ndarray:
        """``nan-input``: a copy of ``x`` with a NaN in the first sample of step ``at``'s batch.

        ``order(epoch)`` is the training order of the epoch's samples.
        """
        if self.kind != "nan-input":
            return x
        if not 1 <= self.at <= steps:  # later epochs meet the same sample earlier
            raise ValueError(f"TRAINER_FAULT=nan-input@{self.at}: use a step from 1 to {steps}")
        x = np.array(x)
        x[order(0)[(self.at - 1) * batch_size]].flat[0] = np.nan
        return x

    def after_step(self, before: int, global_step: int, model) -> None:
        if not self._due(before, global_step):
            return
        if self.kind in ("sigint", "sigterm", "sigkill"):
            os.kill(os.getpid(), getattr(signal, self.kind.upper()))
        elif self.kind == "nan-kernel":
            variable = model.trainable_variables[0]
            variable.assign(np.full(variable.shape, np.nan, dtype=variable.dtype))
        elif self.kind == "lr-explode":
            model.optimizer.learning_rate.assign(np.inf)

    def in_checkpoint(self, global_step: int) -> None:
        if self.kind == "kill-in-checkpoint" and self._due(global_step - 1, global_step):
            os.kill(os.getpid(), signal.SIGKILL)


def from_env() -> Fault | None:
    kind, sep, at = os.environ.get("TRAINER_FAULT", "").partition("@")
    return Fault(kind, int(at)) if sep else None
