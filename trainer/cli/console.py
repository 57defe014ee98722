"""The terminal: with :mod:`trainer.cli.progress`, the only code that writes to it.

Results go to stdout; progress, notes and errors go to stderr, so ``--json`` output stays
machine-readable. Training progress (a live display, or one line per epoch in CI) is in
:mod:`trainer.cli.progress`.
"""

from __future__ import annotations

import json
import sys
import textwrap
from dataclasses import dataclass
from typing import Any, Literal

from rich.cells import cell_len
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


MESSAGE_CAP = 4000  # characters of one error message: a hostile value must not flood the terminal


def error(exc: BaseException, debug: bool = False) -> None:
    text = str(exc)
    if len(text) > MESSAGE_CAP:  # the messages cut what they echo; this is the last guard
        text = f"{text[:MESSAGE_CAP]}... ({len(text) - MESSAGE_CAP:,} more characters cut)"
    err.print("[bold red]error:[/] ", end="")
    err.print(text, markup=False)
    if debug:
        err.print_exception(show_locals=False)
    elif not getattr(exc, "exit_code", None):
        err.print("(rerun with --debug to see the traceback)", style="dim")


def note(text: str) -> None:
    err.print(text, markup=False, style="dim")


def warn(text: str) -> None:
    err.print("[yellow]warning:[/] ", end="")
    err.print(text, markup=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def print_text(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def say(text: str, indent: str = "", hang: str | None = None, console: Console = out) -> None:
    """Prose on stdout, wrapped at spaces to the terminal's width (continued lines start with
    ``hang``); a word longer than a line, such as a path, is kept whole so it can be copied."""
    lines = textwrap.wrap(text, max(console.width, 20), initial_indent=indent,
                          subsequent_indent=indent if hang is None else hang,
                          break_long_words=False, break_on_hyphens=False)  # fmt: skip
    console.print("\n".join(lines) or indent, markup=False, soft_wrap=True)


# -- tables: one rule for every table, so none is cut at any width -----------------------
@dataclass(frozen=True)
class Column:
    """A column of a report table.

    ``key`` marks the column that names the row (a run, a class, a config key): it is never
    wrapped or cut, and heads the row's block in the stacked layout (after the header when
    ``label`` is set: "trial 3"). ``drop`` > 0 marks a column that may be left out when the
    table is too wide, the highest first.
    """

    header: str
    justify: Literal["left", "right"] = "left"
    key: bool = False
    drop: int = 0
    label: bool = False


Cell = str | Text


def table(title: str, columns: list[Column], rows: list[list[Cell]], console: Console = out,
          styles: list[str | None] | None = None) -> None:  # fmt: skip
    """Print ``rows`` under ``columns``, laid out to the console's width by one rule:

    1. if every column fits at its narrowest (its longest word; a key column its longest
       value), it is a table: columns shrink, those with the most room to spare first, never
       below their narrowest, and cells wrap at spaces; nothing is cut;
    2. otherwise the ``drop`` columns are left out, the highest first, until it fits, and a
       note on stderr names them;
    3. if even the columns left do not fit, each row becomes a block: its key on a line,
       then one ``header  value`` line per non-empty cell, every column included.
    """
    cells = [[c if isinstance(c, Text) else Text(c) for c in row] for row in rows]
    styles = styles or [None] * len(cells)
    shown = list(range(len(columns)))
    dropped: list[str] = []
    widths = _widths(columns, cells, console.width)
    for j in sorted((j for j, c in enumerate(columns) if c.drop), key=lambda j: -columns[j].drop):
        if widths is not None:
            break
        shown.remove(j)
        dropped.append(columns[j].header)
        widths = _widths([columns[k] for k in shown], [[r[k] for k in shown] for r in cells],
                         console.width)  # fmt: skip
    if widths is None:
        _blocks(title, columns, cells, styles, console)
        return
    if dropped:
        note(f"(left out to fit {console.width} columns: {', '.join(dropped)})")
    grid = Table(title=title, title_justify="left")
    for j, width in zip(shown, widths, strict=True):
        column = columns[j]
        grid.add_column(column.header, justify=column.justify, width=width, no_wrap=column.key,
                        overflow="fold")  # fmt: skip
    for row, style in zip(cells, styles, strict=True):
        grid.add_row(*(row[j] for j in shown), style=style)
    console.print(grid)


def _widths(columns: list[Column], rows: list[list[Text]], room: int) -> list[int] | None:
    """Each column's content width in a table ``room`` cells wide; None if it cannot fit."""
    narrowest, widest = [], []
    for j, column in enumerate(columns):
        cells = [Text(column.header), *(row[j] for row in rows)]
        lines = [line for cell in cells for line in cell.plain.splitlines() or [""]]
        words = lines if column.key else [word for line in lines for word in line.split()]
        widest.append(max(1, *(cell_len(line) for line in lines)))
        narrowest.append(max(1, *(cell_len(word) for word in words)))
    room -= 3 * len(columns) + 1  # a space either side of each cell, and the rules between
    if sum(narrowest) > room:
        return None
    widths = widest
    while sum(widths) > room:
        j = max(range(len(widths)), key=lambda k: widths[k] - narrowest[k])
        widths[j] -= 1
    return widths


def _blocks(title: str, columns: list[Column], rows: list[list[Text]],
            styles: list[str | None], console: Console) -> None:  # fmt: skip
    """The stacked layout of a table too wide for the console."""
    key = next((j for j, column in enumerate(columns) if column.key), 0)
    if title:
        console.print(Text(title, style="table.title"))
    label = min(max(cell_len(column.header) for column in columns), console.width // 2)
    for row, style in zip(rows, styles, strict=True):
        head = Text(f"{columns[key].header} " if columns[key].label else "") + row[key]
        head.stylize("bold")
        console.print(head, style=style or "")
        fields = Table.grid(padding=(0, 2))
        fields.add_column(width=label, overflow="fold")
        fields.add_column(overflow="fold")
        for j, column in enumerate(columns):
            if j != key and row[j].plain:
                fields.add_row(Text(column.header), row[j])
        if fields.row_count:
            console.print(Padding(fields, (0, 0, 0, 2), expand=False), style=style or "")


def metrics_report(metrics: dict[str, Any], title: str, console: Console = out) -> None:
    """Tables for the test metrics, the confusion matrix and the per-class scores."""
    baseline = metrics.get("baseline")
    columns = [Column("metric", key=True), Column("test", "right")]
    if baseline:
        columns.append(Column(f"baseline: {baseline['name']}", "right"))
    rows = [[name, _fmt(value), *([_fmt(baseline["test"].get(name))] if baseline else [])]
            for name, value in metrics["test"].items()]  # fmt: skip
    table(title, columns, rows, console)
    if "confusion_matrix" in metrics:
        _confusion(metrics["class_names"], metrics["confusion_matrix"], console)
        scores = ("precision", "recall", "f1")
        columns = [Column("class", key=True), *(Column(k, "right") for k in (*scores, "support"))]
        rows = [[name, *(_fmt(row[k]) for k in scores), str(row["support"])]
                for name, row in metrics["per_class"].items()]  # fmt: skip
        table("per class", columns, rows, console)
    if "model" in metrics:
        for key, value in metrics["model"].items():
            say(f"{key}: {value}", hang="  ", console=console)


def _confusion(names: list[str], matrix: list[list[int]], console: Console) -> None:
    """The confusion matrix, its columns headed by class name, or by number where the names
    would not fit (the rows then read "3 Dress")."""
    title = "confusion matrix (rows: true, columns: predicted)"
    columns = [Column("", key=True), *(Column(name, "right") for name in names)]
    rows = [[name, *(str(v) for v in row)] for name, row in zip(names, matrix, strict=True)]
    if _widths(columns, [[Text(c) for c in row] for row in rows], console.width) is None:
        columns = [Column("", key=True), *(Column(str(i), "right") for i in range(len(names)))]
        rows = [[f"{i} {row[0]}", *row[1:]] for i, row in enumerate(rows)]
        title = "confusion matrix (rows: true, columns: predicted, by number)"
    table(title, columns, rows, console)


def datasets_table(rows: list[dict[str, str]]) -> None:
    names = ("name", "task", "offline", "description")
    columns = [Column(name, key=name == "name") for name in names]
    table("datasets", columns, [[row[name] for name in names] for row in rows])


def lr_find(summary: dict[str, Any]) -> None:
    """`trainer lr-find`: the suggested learning rates and where the curve went."""
    suggestion, tenth = summary.get("suggestion"), summary.get("minimum_tenth")
    if suggestion is not None:
        say(f"suggested learning rate: {suggestion:.3g}  (steepest descent of the smoothed loss)")
    else:
        warn("the loss never fell steadily over the range: no steepest-descent suggestion")
    if tenth is not None:
        say(f"minimum / 10:            {tenth:.3g}  (a safe upper bound)")
    say(f"{summary['steps_run']} steps; stopped: {summary['stopped']}")
    say(f"plot: {summary['output']}/lr_find.png  (data: lr_find.csv)")


def _short(value: Any) -> str:
    """A searched value for a table: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def tune_trial(row: dict[str, Any]) -> None:
    """One line per finished trial of `trainer tune`, on stderr."""
    if "note" in row:
        note(row["note"])
        return
    params = "  ".join(f"{k}={_short(v)}" for k, v in row["params"].items())
    value = row["value"] if row["value"] is not None else row.get("last_reported")
    spread = f" ± {row['std']:.4f}" if row.get("std") is not None else ""
    shown = "" if value is None else f"{value:.4f}{spread}"
    why = f"  ({row['error']})" if row.get("error") else ""
    err.print(f"trial {row['trial']:>3} {row['state']:<8} {shown:>18}  {params}{why}",
              markup=False, highlight=False)  # fmt: skip


def leaderboard(summary: dict[str, Any], limit: int = 20) -> None:
    """`trainer tune`: the trials ranked by the objective, the best config's path."""
    rows = summary["leaderboard"]
    keys = sorted({k for r in rows for k in r["params"]})
    direction = "lower" if summary["direction"] == "minimize" else "higher"
    columns = [Column("trial", "right", key=True, label=True), Column("state"),
               Column(summary["metric"], "right"), *(Column(k, "right") for k in keys)]  # fmt: skip
    cells = []
    for r in rows[:limit]:
        value = r["value"] if r["value"] is not None else r.get("last_reported")
        shown = _fmt(value) + (f" ± {r['std']:.4f}" if r.get("std") is not None else "")
        cells.append([str(r["trial"]), r["state"], shown,
                      *(_short(r["params"].get(k, "")) for k in keys)])  # fmt: skip
    table(f"leaderboard: {summary['metric']} ({direction} is better)", columns, cells)
    if len(rows) > limit:
        say(f"... and {len(rows) - limit} more in leaderboard.csv")
    counts = ", ".join(f"{n} {state}" for state, n in summary["trials"].items())
    say(f"trials: {counts}")
    if summary.get("best_config"):
        say(f"best config: {summary['best_config']}  (trainer fit {summary['best_config']})",
            hang="  ")  # fmt: skip
    else:
        warn("no trial completed, so there is no best config")


def predictions(summary: dict[str, Any]) -> None:
    """`trainer predict`: how many rows, where they went, their ids, the predicted classes."""
    say(f"{summary['rows']} predictions written to {summary['output']}", hang="  ")
    if summary.get("id_column"):
        say(f"ids: the input's '{summary['id_column']}' column", hang="  ")
    if summary.get("predicted"):
        counts = ", ".join(f"{name}: {n}" for name, n in summary["predicted"].items())
        say(f"predicted classes: {counts}", hang="  ")


def exported(summary: dict[str, Any]) -> None:
    """`trainer export`: the file, and how closely it matches the Keras model."""
    say(f"exported {summary['format']} to {summary['output']} "
        f"({summary['bytes'] / 1024:.1f} KiB)", hang="  ")  # fmt: skip
    say(f"checked against Keras on {summary['samples']} sample inputs: largest absolute "
        f"difference {summary['max_abs_diff']:.3g} (allowed {summary['tolerance']:g})",
        hang="  ")  # fmt: skip


def inspection(summary: dict[str, Any]) -> None:
    """`trainer datasets inspect`: the facts about a config's data, as tables."""
    say(f"dataset {summary.get('dataset')}: task {summary.get('task')}, "
        f"{summary.get('rows')} rows, input shape {summary.get('input_shape')}")  # fmt: skip
    if summary.get("columns"):
        names = ("name", "role", "type", "missing", "distinct")
        columns = [Column(name, "right" if name in ("missing", "distinct") else "left",
                          key=name == "name") for name in names]  # fmt: skip
        rows = [["" if row.get(k) is None else str(row[k]) for k in names]
                for row in summary["columns"]]  # fmt: skip
        table("columns", columns, rows)
    if summary.get("class_balance"):
        balance = summary["class_balance"]
        splits = list(balance)
        classes = sorted({c for counts in balance.values() for c in counts})
        table(
            "class balance",
            [Column("class", key=True), *(Column(s, "right") for s in splits)],
            [[name, *(str(balance[s].get(name, 0)) for s in splits)] for name in classes],
        )
    if summary.get("splits"):
        sizes = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
        say(f"splits: {sizes}", hang="  ")
    if summary.get("storage"):
        say(f"training would keep the data {summary['storage']['reason']}", hang="  ")
    if summary.get("missing"):
        missing = ", ".join(f"{k}: {v}" for k, v in summary["missing"].items())
        say(f"missing values: {missing}", hang="  ")
    for warning in summary.get("warnings", []):
        warn(warning)
    for problem in summary.get("problems", []):
        err.print("[bold red]problem:[/] ", end="")
        err.print(problem, markup=False)


def runs_table(runs: list[dict[str, Any]], root: Any) -> None:
    """`trainer runs list`: one row per run directory. Where the terminal is narrow the start
    time, dataset and model go first (the run's name usually holds the first two)."""
    if not runs:
        note(f"no runs in {root}")
        return
    metrics = {run["metric"] for run in runs if run["metric"]}
    same = metrics.pop() if len(metrics) == 1 else None  # one metric: it heads the column
    columns = [Column("run", key=True), Column("started", drop=3), Column("status"),
               Column("model", drop=1), Column("dataset", drop=2),
               *([] if same else [Column("metric")]), Column(f"test {same or ''}".strip(), "right"),
               Column("diagnosis")]  # fmt: skip
    rows = []
    for run in runs:
        value = _fmt(run["value"]) if run["metric"] else ""
        rows.append([run["run"], str(run["started"] or "").replace("T", " ")[:16], run["status"],
                     run["model"] or "", run["dataset"] or "",
                     *([] if same else [run["metric"] or ""]), value,
                     (run["verdict"] or "").replace("_", " ")])  # fmt: skip
    table(f"runs in {root}", columns, rows)


def runs_comparison(comparison: dict[str, Any]) -> None:
    """`trainer runs compare`: differing config values, then test metrics; best in bold."""
    names = comparison["runs"]
    if comparison["config"]:
        table(
            "config values that differ",
            [Column("key", key=True), *map(Column, names)],
            [[key, *(str(v) for v in values)] for key, values in comparison["config"].items()],
        )
    else:
        say("the configs are the same (apart from the name)")
    rows: list[list[Cell]] = []
    for metric, values in comparison["metrics"].items():
        best = comparison["best"].get(metric)
        rows.append([metric, *(Text(_fmt(v), style="bold") if i == best else _fmt(v)
                               for i, v in enumerate(values))])  # fmt: skip
    labels = ("status", "verdict")
    rows += [[label, *(str(v or "") for v in comparison[label])] for label in labels]
    columns = [Column("metric", key=True), *(Column(name, "right") for name in names)]
    table("test metrics (best in bold)", columns, rows,
          styles=[None] * (len(rows) - len(labels)) + ["dim"] * len(labels))  # fmt: skip


def diagnosis(result: dict[str, Any]) -> None:
    """The end of `trainer fit`: what the history says, in words, and what to try next."""
    verdict = result["verdict"]
    words = {"overfitting": "over-fitting", "underfitting": "under-fitting",
             "not_applicable": "not applicable"}.get(verdict, verdict)  # fmt: skip
    style = {"healthy": "green", "not_applicable": "dim"}.get(verdict, "yellow")
    out.print(f"[bold]diagnosis:[/] [{style}]{words}[/]")
    say(result["summary"], indent="  ")
    for finding in result["findings"]:
        if finding["message"] not in result["summary"]:
            say(finding["message"], indent="  ")
    if result["suggestions"]:
        say("next steps:")
        for suggestion in result["suggestions"]:
            say(suggestion, indent="  - ", hang="    ")
