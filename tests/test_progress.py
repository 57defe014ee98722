"""Training progress: the live display (the whole run, the epoch, loss, samples/s, time left),
one plain line per epoch in CI, nothing in quiet mode; and what the real loop reports to it.

The display classes are driven by a fake clock and a fake sequence of calls, so nothing here
depends on how fast the machine is.
"""

import io
import math
import re

import pytest
import yaml
from rich.console import Console

from trainer.cli import progress as shown

EPOCHS, STEPS, BATCH, SAMPLES = 3, 4, 8, 30  # the last batch of an epoch holds 6 samples


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def live(width: int = 80) -> tuple[shown.RichProgress, io.StringIO, Clock]:
    screen, clock = io.StringIO(), Clock()
    console = Console(file=screen, force_terminal=True, width=width, color_system=None)
    return shown.RichProgress(console, clock=clock), screen, clock


def tasks(bar: shown.RichProgress) -> tuple:
    run, epoch = bar.display.tasks
    return run, epoch


def rendered(bar: shown.RichProgress, width: int = 80) -> list[str]:
    """The display's rows as an 80-column terminal shows them, without colour."""
    screen = io.StringIO()
    Console(file=screen, width=width, color_system=None).print(bar.display.get_renderable())
    return screen.getvalue().splitlines()


def drive(bar, clock: Clock, epochs: int = EPOCHS, seconds: float = 1.0, start=(0, 0)) -> list:
    """A run as the loop reports it: start, a step per execution, a line per finished epoch."""
    seen = []
    bar.start(epochs, STEPS, batch_size=BATCH, samples_per_epoch=SAMPLES,
              epochs_done=start[0], steps_done=start[1])  # fmt: skip
    for epoch in range(start[0], epochs):
        for step in range(start[1] + 1 if epoch == start[0] else 1, STEPS + 1):
            clock.now += seconds
            bar.step(step, {"loss": 1.0 / (epoch + step)})
            if isinstance(bar, shown.RichProgress):
                seen.append((tasks(bar)[0].completed, tasks(bar)[1].completed))
        bar.epoch(epoch + 1, epochs, {"loss": 0.5 / (epoch + 1), "val_loss": 0.6}, seconds)
    bar.finish()
    return seen


# -- the live display ---------------------------------------------------------------------
def test_the_whole_run_has_one_bar_over_every_step_of_every_epoch():
    bar, _, clock = live()
    bar.start(EPOCHS, STEPS, batch_size=BATCH, samples_per_epoch=SAMPLES)
    run, epoch = tasks(bar)
    assert (run.description, run.total, run.completed) == ("run", EPOCHS * STEPS, 0)
    assert (epoch.description, epoch.total, epoch.completed) == ("epoch 1/3", STEPS, 0)
    bar.finish()

    bar, _, clock = live()
    seen = drive(bar, clock)
    # the run's bar keeps counting across epochs; the epoch's starts again at each
    assert [run for run, _ in seen] == list(range(1, EPOCHS * STEPS + 1))
    assert [step for _, step in seen] == [1, 2, 3, 4] * EPOCHS


def test_the_epoch_bar_is_relabelled_for_each_epoch_from_one():
    bar, _, clock = live()
    bar.start(EPOCHS, STEPS, batch_size=BATCH, samples_per_epoch=SAMPLES)
    labels = [tasks(bar)[1].description]
    for epoch in range(1, EPOCHS):
        clock.now += 1
        bar.step(STEPS, {"loss": 0.5})
        bar.epoch(epoch, EPOCHS, {"loss": 0.5}, 1.0)
        labels.append(tasks(bar)[1].description)
        assert tasks(bar)[1].completed == 0 and tasks(bar)[0].completed == epoch * STEPS
    bar.finish()
    assert labels == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]


def test_the_display_shows_the_running_loss_samples_per_second_and_time_left():
    bar, screen, clock = live()
    bar.start(EPOCHS, STEPS, batch_size=BATCH, samples_per_epoch=SAMPLES)
    clock.now += 10.0  # the first execution: mostly the compile, left out once another ends
    bar.step(1, {"loss": 2.0, "accuracy": 0.1})
    clock.now += 0.5
    bar.step(2, {"loss": 1.5, "accuracy": 0.2})
    run, epoch = rendered(bar)
    assert "16 samples/s" in run  # 8 samples in the 0.5 s since the first execution ended
    assert "0:00:05" in run  # 10 steps left at 0.5 s each
    assert "loss 1.5000" in epoch and "accuracy" not in epoch
    assert "0:00:01" in epoch  # 2 steps left in the epoch
    assert "2/12" in run and "2/4" in epoch
    assert "loss 1.5000" in screen.getvalue()  # drawn on the terminal, not only held
    clock.now += 0.5  # the time left counts down between callbacks
    assert "0:00:04" in rendered(bar)[0]
    bar.finish()


def test_samples_count_the_short_last_batch_of_an_epoch():
    pace = shown.Pace(BATCH, SAMPLES, STEPS)
    assert [pace.samples(p) for p in (0, 1, 3, 4, 5, 8)] == [0, 8, 24, 30, 38, 60]


def test_before_a_second_execution_the_rates_include_the_first():
    bar, _, clock = live()
    bar.start(EPOCHS, STEPS, batch_size=BATCH, samples_per_epoch=SAMPLES)
    assert "-:--:--" in rendered(bar)[0]  # nothing known yet
    clock.now += 2.0
    bar.step(STEPS, {"loss": 0.7})  # one execution for the whole epoch
    run, _ = rendered(bar)
    assert "15 samples/s" in run and "0:00:04" in run  # 30 samples, 4 steps in 2 s
    bar.finish()


def test_a_gan_shows_both_losses():
    bar, _, clock = live()
    bar.start(EPOCHS, STEPS, batch_size=BATCH, samples_per_epoch=SAMPLES)
    clock.now += 1
    bar.step(1, {"d_loss": 0.69, "g_loss": 0.71})
    assert "d_loss 0.6900 g_loss 0.7100" in rendered(bar)[1]
    bar.finish()


@pytest.mark.parametrize(("epochs", "steps", "logs"), [
    (3, 4, {"loss": 0.25}),
    (100, 4100, {"loss": 123456.789}),
    (1000, 9999, {"d_loss": 0.6931, "g_loss": 12.5}),
])  # fmt: skip
def test_the_display_fits_80_columns(epochs, steps, logs):
    bar, _, clock = live()
    bar.start(epochs, steps, batch_size=32, samples_per_epoch=steps * 32, epochs_done=epochs // 2)
    for step in (1, 2):
        clock.now += 0.2
        bar.step(step, logs)
    rows = rendered(bar)
    bar.finish()
    assert len(rows) == 2, rows  # one line per row: nothing wraps
    assert all(len(row) <= 80 for row in rows)
    run, epoch = rows
    assert re.search(rf"\b{epochs // 2 * steps + 2}/{epochs * steps}\b", run), run
    assert "samples/s" in run and re.search(r"\d+:\d\d:\d\d +\d+:\d\d:\d\d$", run.rstrip()), run
    assert f"epoch {epochs // 2 + 1:>{len(str(epochs))}}/{epochs}" in epoch, epoch
    assert all(f"{k} {v:.4f}" in epoch for k, v in logs.items()), epoch


def test_a_resumed_run_starts_at_its_position_and_times_only_this_invocation():
    bar, _, clock = live()
    bar.start(EPOCHS, STEPS, batch_size=BATCH, samples_per_epoch=SAMPLES,
              epochs_done=1, steps_done=2)  # fmt: skip
    run, epoch = tasks(bar)
    assert (run.completed, epoch.completed, epoch.description) == (6, 2, "epoch 2/3")
    assert "6/12" in rendered(bar)[0]
    clock.now += 1.0
    bar.step(3, {"loss": 0.4})
    clock.now += 1.0
    bar.step(4, {"loss": 0.4})
    run_row, _ = rendered(bar)
    # 6 samples (the short last batch) in the second since the first execution of this run
    assert "6.0 samples/s" in run_row
    assert "0:00:04" in run_row  # 4 steps left at 1 s each
    bar.finish()

    bar, _, clock = live()
    seen = drive(bar, clock, start=(1, 2))
    assert seen[0] == (7, 3) and seen[-1] == (12, 4)
    assert [run for run, _ in seen] == list(range(7, 13))


def test_the_live_display_ends_and_keeps_the_epoch_lines():
    bar, screen, clock = live()
    drive(bar, clock)
    assert bar.display is None
    text = screen.getvalue()
    assert all(f"epoch {e}/3  loss {0.5 / e:.4f}  val_loss 0.6000" in text for e in (1, 2, 3))


# -- CI logs and quiet mode ---------------------------------------------------------------
def test_plain_progress_prints_exactly_one_line_per_epoch():
    screen = io.StringIO()
    bar = shown.PlainProgress(Console(file=screen, width=80))
    drive(bar, Clock())
    lines = screen.getvalue().splitlines()
    assert lines == ["training: 3 epochs of 4 steps",
                     *(f"epoch {e}/3  loss {0.5 / e:.4f}  val_loss 0.6000  (1.0s)"
                       for e in (1, 2, 3))]  # fmt: skip


def test_plain_progress_of_a_resumed_run_prints_only_the_epochs_it_trains():
    screen = io.StringIO()
    drive(shown.PlainProgress(Console(file=screen, width=80)), Clock(), start=(1, 2))
    assert [line.split()[1] for line in screen.getvalue().splitlines()[1:]] == ["2/3", "3/3"]


def test_quiet_progress_stays_quiet():
    screen = io.StringIO()
    bar = shown.QuietProgress(Console(file=screen, width=80))
    drive(bar, Clock())
    bar.stage("loading dataset 'digits'")
    assert screen.getvalue() == ""


def test_progress_is_chosen_for_the_terminal(monkeypatch):
    from trainer.cli import console as report

    monkeypatch.setattr(report, "err", Console(file=io.StringIO(), force_terminal=True))
    monkeypatch.delenv("CI", raising=False)
    assert isinstance(shown.progress(), shown.RichProgress)


def test_a_trial_forwards_the_steps_and_their_logs():
    from trainer.workflows.tune import TrialProgress

    inner = Recorder()
    trial = TrialProgress(inner, trial=None, metric="val_loss", offset=0)
    trial.start(2, 5, batch_size=4, samples_per_epoch=18, epochs_done=1, steps_done=3)
    trial.step(4, {"loss": 0.5})
    assert inner.started == ((2, 5), {"batch_size": 4, "samples_per_epoch": 18,
                                      "epochs_done": 1, "steps_done": 3})  # fmt: skip
    assert inner.steps == [(0, 4, {"loss": 0.5})]


# -- what the real loop reports ------------------------------------------------------------
class Recorder:
    """A progress that keeps every call: (finished epochs, step in the epoch, logs)."""

    def __init__(self) -> None:
        self.started, self.steps, self.epochs, self.finished = None, [], [], False

    def stage(self, text: str) -> None:
        pass

    def start(self, epochs: int, steps_per_epoch: int, **plan) -> None:
        self.started = ((epochs, steps_per_epoch), plan)

    def step(self, step: int, logs=None) -> None:
        self.steps.append((len(self.epochs), step, logs))

    def epoch(self, epoch: int, epochs: int, logs: dict, seconds: float) -> None:
        self.epochs.append(epoch)

    def finish(self) -> None:
        self.finished = True


TINY = {
    "name": "tiny",
    "seed": 1,
    "dataset": {"type": "digits", "limit": 200, "validation_split": 0.2},
    "model": {"type": "fnn", "units": [16]},
    "optimizer": {"type": "adam", "learning_rate": 0.01},
    "training": {"epochs": 2, "batch_size": 32},
}


def tiny_config(tmp_path, **training):
    from trainer.config.loading import load_config

    data = {**TINY, "training": {**TINY["training"], **training}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


@pytest.mark.parametrize("per_execution", [1, "auto"])
def test_the_loop_reports_running_losses_at_increasing_positions(tmp_path, per_execution):
    from trainer.training import engine

    recorder = Recorder()
    engine.fit(tiny_config(tmp_path, steps_per_execution=per_execution), tmp_path / "run",
               recorder)  # fmt: skip
    (epochs, steps), plan = recorder.started
    assert epochs == 2 and plan["epochs_done"] == 0 and plan["steps_done"] == 0
    assert plan["batch_size"] == 32 and steps == math.ceil(plan["samples_per_epoch"] / 32)
    assert recorder.epochs == [1, 2] and recorder.finished
    positions = [(epoch, step) for epoch, step, _ in recorder.steps]
    assert positions == sorted(set(positions))  # strictly increasing
    assert [p for p in positions if p[1] == steps] == [(0, steps), (1, steps)]
    if per_execution == 1:
        assert positions == [(e, s) for e in (0, 1) for s in range(1, steps + 1)]
    assert all(math.isfinite(logs["loss"]) for _, _, logs in recorder.steps)


def test_a_resumed_loop_starts_its_progress_where_it_stopped(tmp_path, monkeypatch):
    import keras

    from trainer.core.errors import Interrupted
    from trainer.training import engine

    cfg = tiny_config(tmp_path, steps_per_execution=1)
    monkeypatch.setenv("TRAINER_FAULT", "sigint@6")  # a ^C after step 6 of 2 x 4
    keras.backend.clear_session()  # variable names as a fresh process gives them, twice
    with pytest.raises(Interrupted):
        engine.fit(cfg, tmp_path / "run", Recorder())
    monkeypatch.delenv("TRAINER_FAULT")
    keras.backend.clear_session()
    recorder = Recorder()
    engine.fit(cfg, tmp_path / "run", recorder, resume=True)
    (_, steps), plan = recorder.started
    assert steps == 4 and (plan["epochs_done"], plan["steps_done"]) == (1, 2)
    assert [(e, s) for e, s, _ in recorder.steps] == [(0, 3), (0, 4)]
    assert recorder.epochs == [2]
