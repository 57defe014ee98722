"""Training progress on stderr: a live display on a terminal, one plain line per epoch elsewhere.

The engine reports through :class:`trainer.training.engine.Progress`; these classes are the
terminal's side of it. The live display has two rows, the whole run and the current epoch:

    run         ━━━╺━━━━━━━━━━━━━━━━━━━━━━━━  286/2460 396 samples/s 0:00:24 0:02:53
    epoch  7/60 ━━━━━━━━━━━━━━━━━━━━━━━━━━━╺ 40/41     loss 0.1431   0:00:03 0:00:00

Keras calls back once per execution (``training.steps_per_execution`` steps), so the bars move
only then; the time left counts down in between. Speeds and the time left are this
invocation's own (a resumed run starts where it stopped), measured from the end of its first
execution, which holds the compile, once a second one has ended.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import ProgressColumn, Task
from rich.table import Column
from rich.text import Text

from trainer.cli import console as report

REFRESH_SECONDS = 0.1  # the live display redraws at most this often (and at each epoch's end)
BLANK = {"note": "", "left": None, "at": None}  # a row's fields before any step


class PlainProgress:
    """One line per epoch: readable in CI logs and when piped."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = report.err if console is None else console

    def stage(self, text: str) -> None:
        self.console.print(f"{text} ...", markup=False, style="dim")

    def start(self, epochs: int, steps_per_epoch: int, *, batch_size: int | None = None,
              samples_per_epoch: int | None = None, epochs_done: int = 0,
              steps_done: int = 0) -> None:  # fmt: skip
        self.console.print(f"training: {report.plural(epochs, 'epoch')} of "
                           f"{report.plural(steps_per_epoch, 'step')}", markup=False)  # fmt: skip

    def step(self, step: int, logs: dict[str, float] | None = None) -> None:
        pass

    def epoch(self, epoch: int, epochs: int, logs: dict[str, float], seconds: float) -> None:
        width = len(str(epochs))
        values = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "learning_rate")
        self.console.print(f"epoch {epoch:>{width}}/{epochs}  {values}  ({seconds:.1f}s)",
                           markup=False, highlight=False)  # fmt: skip

    def finish(self) -> None:
        pass


class Pace:
    """Seconds per step and samples per second over this invocation, for the time left.

    Positions count steps from the start of the run. Until a second execution has ended the
    rates are taken from :meth:`begin`; after it, from the end of the first, whose time is
    mostly the compile.
    """

    def __init__(self, batch_size: int | None, samples_per_epoch: int | None,
                 steps_per_epoch: int) -> None:  # fmt: skip
        # no samples/s unless both are known (lr-find gives neither)
        known = bool(batch_size and samples_per_epoch)
        self.batch_size = batch_size if known else None
        self.samples_per_epoch = samples_per_epoch if known else 0
        self.steps_per_epoch = steps_per_epoch
        self.origin: tuple[float, int] | None = None  # (time, position) at start
        self.first: tuple[float, int] | None = None  # at the first execution's end
        self.last: tuple[float, int] | None = None

    def samples(self, position: int) -> int:
        """Samples fed up to ``position`` (the last batch of an epoch may be short)."""
        epochs, step = divmod(position, self.steps_per_epoch)
        return epochs * self.samples_per_epoch + min(step * self.batch_size,
                                                     self.samples_per_epoch)  # fmt: skip

    def begin(self, now: float, position: int) -> None:
        self.origin, self.first, self.last = (now, position), None, None

    def update(self, now: float, position: int) -> None:
        if self.origin is None or position <= self.origin[1]:
            return
        if self.first is None:
            self.first = (now, position)
        self.last = (now, position)

    def _base(self) -> tuple[float, int] | None:
        if self.last is None:
            return None
        return self.first if self.last[1] > self.first[1] else self.origin

    def seconds_per_step(self) -> float | None:
        base = self._base()
        return None if base is None else (self.last[0] - base[0]) / (self.last[1] - base[1])

    def samples_per_second(self) -> float | None:
        base = self._base()
        if base is None or self.last[0] <= base[0] or not self.batch_size:
            return None
        return (self.samples(self.last[1]) - self.samples(base[1])) / (self.last[0] - base[0])


class TimeLeftColumn(ProgressColumn):
    """The task's estimated seconds left, counting down between the callbacks that set it."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self.clock = clock

    def render(self, task: Task) -> Text:
        left, at = task.fields.get("left"), task.fields.get("at")
        if left is None or at is None:
            return Text("-:--:--", style="progress.remaining")
        seconds = max(0, int(left - (self.clock() - at)))
        minutes, seconds = divmod(seconds, 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"{hours:d}:{minutes:02d}:{seconds:02d}", style="progress.remaining")


def rate_text(samples_per_second: float | None) -> str:
    if samples_per_second is None or not math.isfinite(samples_per_second):
        return ""
    if samples_per_second < 10:
        return f"{samples_per_second:.1f} samples/s"
    if samples_per_second < 100_000:
        return f"{samples_per_second:,.0f} samples/s"
    return f"{samples_per_second / 1000:,.0f}k samples/s"


def loss_text(logs: dict[str, float] | None) -> str:
    """The running loss (both of a GAN's), from the logs Keras passes after a batch."""
    losses = {k: v for k, v in (logs or {}).items() if "loss" in k and not k.startswith("val_")}
    if "loss" in losses:
        losses = {"loss": losses["loss"]}
    return " ".join(f"{k} {float(v):.4f}" for k, v in losses.items())


class RichProgress(PlainProgress):
    """A live display: the whole run's bar with its time left, the epoch's with its loss.

    Each finished epoch still prints its summary line above the display.
    """

    def __init__(self, console: Console | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        super().__init__(console)
        self.clock = clock
        self.display = None  # the rich.progress.Progress, while training
        self._drawn = -math.inf

    def start(self, epochs: int, steps_per_epoch: int, *, batch_size: int | None = None,
              samples_per_epoch: int | None = None, epochs_done: int = 0,
              steps_done: int = 0) -> None:  # fmt: skip
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        super().start(epochs, steps_per_epoch)
        self.epochs, self.steps = epochs, steps_per_epoch
        self.epochs_done, self.position = epochs_done, epochs_done * steps_per_epoch + steps_done
        self.pace = Pace(batch_size, samples_per_epoch, steps_per_epoch)
        self.pace.begin(self.clock(), self.position)
        text = {"table_column": Column(no_wrap=True, overflow="ellipsis")}
        whole = {"table_column": Column(no_wrap=True)}  # rich shortens only the text columns
        self.display = Progress(
            TextColumn("{task.description}", **text),
            BarColumn(bar_width=None, table_column=Column(ratio=1)),  # takes the width left
            MofNCompleteColumn(**whole),
            TextColumn("{task.fields[note]}", **text),  # the run's samples/s, the epoch's loss
            TimeElapsedColumn(**whole),
            TimeLeftColumn(self.clock),
            console=self.console,
            transient=True,
            expand=True,
            get_time=self.clock,
        )
        self.run_task = self.display.add_task("run", total=epochs * steps_per_epoch,
                                              completed=self.position, **BLANK)  # fmt: skip
        self.epoch_task = self.display.add_task(self._label(), total=steps_per_epoch,
                                                completed=steps_done, **BLANK)  # fmt: skip
        self.display.start()

    def _label(self) -> str:
        width = len(str(self.epochs))
        return f"epoch {min(self.epochs_done + 1, self.epochs):>{width}}/{self.epochs}"

    def step(self, step: int, logs: dict[str, float] | None = None) -> None:
        if self.display is None:
            return
        now = self.clock()
        self.position = self.epochs_done * self.steps + step
        self.pace.update(now, self.position)
        if now - self._drawn < REFRESH_SECONDS and step < self.steps:
            return
        self._drawn = now
        per_step = self.pace.seconds_per_step()
        left = {"at": now} if per_step is not None else {}
        run_left = per_step * (self.epochs * self.steps - self.position) if left else None
        epoch_left = per_step * (self.steps - step) if left else None
        self.display.update(self.run_task, completed=self.position, left=run_left,
                            note=rate_text(self.pace.samples_per_second()), **left)  # fmt: skip
        self.display.update(self.epoch_task, completed=step, note=loss_text(logs),
                            left=epoch_left, **left)  # fmt: skip
        self.display.refresh()

    def epoch(self, epoch: int, epochs: int, logs: dict[str, float], seconds: float) -> None:
        if self.display is not None:
            self.epochs_done = epoch
            self.position = epoch * self.steps
            self.display.update(self.run_task, completed=self.position)
            if epoch < self.epochs:  # the next epoch's row; reset replaces all the fields
                per_step, now = self.pace.seconds_per_step(), self.clock()
                left = {} if per_step is None else {"left": per_step * self.steps, "at": now}
                self.display.reset(self.epoch_task, total=self.steps, description=self._label(),
                                   **{**BLANK, **left})  # fmt: skip
        super().epoch(epoch, epochs, logs, seconds)

    def finish(self) -> None:
        if self.display is not None:
            self.display.stop()
            self.display = None


class QuietProgress(PlainProgress):
    """Only warnings: for the many short runs of a search, told of one line per trial."""

    def stage(self, text: str) -> None:
        if text.startswith("warning:"):
            report.warn(text.removeprefix("warning:").strip())

    def start(self, epochs: int, steps_per_epoch: int, *, batch_size: int | None = None,
              samples_per_epoch: int | None = None, epochs_done: int = 0,
              steps_done: int = 0) -> None:  # fmt: skip
        pass

    def epoch(self, epoch: int, epochs: int, logs: dict[str, float], seconds: float) -> None:
        pass


def progress() -> PlainProgress:
    """A live display on an interactive terminal; plain lines in CI (``CI`` set), pipes, logs."""
    err = report.err
    live = err.is_terminal and not err.is_dumb_terminal and not os.environ.get("CI")
    return RichProgress(err) if live else PlainProgress(err)
