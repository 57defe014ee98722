"""Tables: CSV, gzip'd CSV and Parquet files, numeric and categorical columns, a target.

``path`` (and ``validation_path``, ``test_path``) is a ``.csv`` file, a ``.csv.gz`` file, a
``.parquet`` file, or a folder of ``.parquet`` files read as one table (in file-name order,
every file with the same columns); any other suffix is read as CSV. Each file is read once,
by Arrow (:mod:`trainer.datasets.csv_reader`), and each column's type is decided after that
one read:

- every value a number (or missing): numeric;
- mostly numbers with a few text values (at least 90% numbers): an error naming
  the line and the value, since that is nearly always a typo or a missing-value marker;
- otherwise categorical; ``columns: {name: numeric | categorical | ignore}`` overrides this.

Missing values are empty cells and NA, N/A, NaN, null, None and ? (in any case), and nulls and
NaN in Parquet files. Imputation,
encoding and scaling (``standard`` by default; numeric columns only, categories stay 0/1 or
indices) happen in :mod:`trainer.datasets.preprocessing`, fitted on the training split only;
here the files are read, checked, and rows are dropped for ``missing: drop``. CSV files are
UTF-8 (a byte-order mark is allowed) with a header row.

Columns are taken one at a time, every split's file alike, into the raw matrix: in memory, or
(``in_memory: false``, or ``auto`` for a table too large) into a memory-mapped file, each column
read from the file when it is taken (:mod:`trainer.datasets.spill`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from trainer.core.errors import DataError
from trainer.core.registry import did_you_mean
from trainer.datasets import DATASETS, RawData, Task
from trainer.datasets.csv_reader import CsvTable, open_table, read_table
from trainer.datasets.preprocessing import Column, MissingValues, Strategy, Table
from trainer.datasets.table_columns import Values
from trainer.datasets.user_data import FileParams, TaskSetting, number_name, resolve_task

MAX_LISTED = 5
ColumnType = Literal["numeric", "categorical", "ignore"]


class CsvParams(FileParams):
    type: Literal["csv"] = "csv"
    path: Path = Field(
        description="The table: a .csv or .csv.gz file with a header row, a .parquet file, or a "
        "folder of .parquet files; all the data, or the training pool when validation_path or "
        "test_path is given. Relative paths start from the current directory."
    )
    target: str = Field(min_length=1, description="The column to predict.")
    columns: dict[str, ColumnType] = Field(
        default_factory=dict,
        description="Column types overriding the inferred ones: numeric, categorical, or "
        "ignore (the column is left out, e.g. an ID).",
    )
    encoding: Literal["onehot", "integer"] = Field(
        "onehot",
        description="Categorical columns become one 0/1 feature per category (onehot) or one "
        "feature holding the category's index (integer).",
    )
    delimiter: str = Field(
        ",", min_length=1, max_length=1, description="The field separator of CSV files."
    )
    missing: MissingValues | None = Field(
        None,
        description="How to fill missing values (`missing: median` is short for "
        "{strategy: median}); without it, missing values are an error.",
    )
    validation_path: Path | None = Field(
        None,
        description="A table (CSV or Parquet) with the same columns for validation (not "
        "validation_split).",
    )
    test_path: Path | None = Field(
        None,
        description="A table (CSV or Parquet) with the same columns for testing (not test_split).",
    )

    in_memory: Literal["auto"] | bool = Field(
        "auto",
        description="true: read the table whole (fastest); false: read it a column at a time "
        "into memory-mapped files under spill_dir and train from them (tables larger than "
        "memory); 'auto': whole when that takes under half the memory available.",
    )
    spill_dir: Path | None = Field(
        None,
        description="Where a streamed table's columns and features are written (files deleted "
        "as soon as they are made; they need about 12 bytes a cell): a folder on a disk with "
        "room; by default the system's temporary folder (TMPDIR).",
    )

    COMMON: ClassVar[set[str]] = FileParams.COMMON

    @field_validator(
        "missing", mode="before", json_schema_input_type=MissingValues | Strategy | None
    )
    @classmethod
    def _bare_strategy(cls, value: Any) -> Any:
        return {"strategy": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self):
        if self.target in self.columns:
            raise ValueError(
                f"columns sets a type for the target '{self.target}'; the target's type "
                "follows from task (auto, regression, binary or multiclass)"
            )
        if self.missing and self.missing.columns.get(self.target, "drop") != "drop":
            raise ValueError(
                f"missing.columns: rows whose target '{self.target}' is missing can only be "
                "dropped (drop), not filled"
            )
        self._only_one("validation_path", "validation_split")
        self._only_one("test_path", "test_split")
        return self

    def infer_task(self) -> Task:
        table = read_table(self.path, self.target, self.delimiter, target_only=True)
        return target_task("auto", table)


@DATASETS.register(
    CsvParams, available=lambda: True, task="inferred from the target", inputs="vector"
)
def csv(
    seed: int,
    path: Path,
    target: str,
    columns: dict[str, str],
    encoding: str,
    delimiter: str,
    missing: MissingValues | None,
    validation_path: Path | None,
    test_path: Path | None,
    task_type: TaskSetting,
    in_memory: bool | str = "auto",
    spill_dir: Path | None = None,
) -> RawData:
    """Your own table (CSV, .csv.gz, Parquet): numeric and categorical columns, a target."""
    import numpy as np

    from trainer.datasets.spill import MappedRows, decide_table, spilled

    storage = decide_table(in_memory, path, len(read_columns(path, delimiter)), spill_dir)
    whole = storage["in_memory"]
    kinds = dict(columns)  # and each column's type once the training file's values decide it
    train = open_table(path, target, delimiter, kinds, whole=whole)
    if whole:  # every column's type is known before the other files are read, typed alike
        kinds |= {values.name: train.fill(values).resolve() for values in train.features}
    files = {"train": train}
    for split, other in (("validation", validation_path), ("test", test_path)):
        if other is not None:
            files[split] = _open_like(other, train, kinds, delimiter, whole)
    task = target_task(task_type, train)
    _check_strategy_names(train, columns, missing)
    class_names, targets = target_labels(files, task)
    warnings: list[str] = []
    keep = {split: ~_target_missing(table, missing) for split, table in files.items()}

    width = len(train.features)
    directory = None if whole else Path(storage["spill_dir"])
    if whole:
        matrices = {s: np.empty((t.rows, width)) for s, t in files.items()}
    else:  # column-major: each column is written, and read for its statistics, in one piece
        matrices = {s: spilled((t.rows, width), np.float64, directory, "F")
                    for s, t in files.items()}  # fmt: skip
    strategies, feature_columns, unfilled = {}, [], {split: [] for split in files}
    for i, values in enumerate(train.features):
        if values.name not in train.taken:  # streamed: read now, one column at a time
            kinds[values.name] = train.fill(values).resolve()
        kind = kinds[values.name]
        per_file = {"train": values}
        for split, table in files.items():
            if split != "train":  # read as the training file's column is
                column = table.features[i]
                column.kind, column.capped = kind, kind != "categorical"
                per_file[split] = table.fill(column)
        strategy = _strategy(values.name, kind, missing)
        if strategy is not None:
            strategies[values.name] = strategy
        categories: tuple[str, ...] = ()
        if kind == "categorical":
            categories = tuple(sorted(set().union(*(v.vocabulary for v in per_file.values()))))
        for split, column in per_file.items():
            if column.missing and strategy is None:
                unfilled[split].append(f"{column.name} ({column.missing})")
            if strategy == "drop" and column.missing:
                keep[split] &= ~column.missing_mask()
            matrices[split][:, i] = _column(column, kind, categories)
            column.release()
        feature_columns.append(Column(values.name, kind, categories))
    _check_missing(files, unfilled)
    for split, table in files.items():
        _check_kept(table, keep[split], warnings)

    x: dict[str, Any] = {}
    for split, matrix in matrices.items():
        rows = np.flatnonzero(keep[split])
        if whole:
            x[split] = matrix if len(rows) == len(matrix) else matrix[rows]
        else:
            x[split] = MappedRows(matrix, directory).take(rows)
    fill = None if missing is None else missing.fill_value
    table = Table(tuple(feature_columns), encoding, strategies, fill)
    y = {split: targets[split][keep[split]] for split in files}
    return RawData(
        x["train"], y["train"], task,
        x.get("test"), y.get("test"), class_names,
        default_scaling="standard", x_val=x.get("validation"),
        y_val=y.get("validation"), table=table, warnings=warnings, storage=storage,
    )  # fmt: skip


def read_columns(path: Path, delimiter: str) -> list[str]:
    """The table's column names, from its header or schema (no value is read)."""
    from trainer.datasets.csv_reader import is_parquet, parquet_files, read_header

    try:
        if is_parquet(path):
            import pyarrow.parquet as pq

            files = parquet_files(path)
            return list(pq.ParquetFile(files[0]).schema_arrow.names) if files else []
        return read_header(path, delimiter)
    except Exception:  # noqa: BLE001 - reading the table names what is wrong with it
        return []


def target_task(setting: TaskSetting, table: CsvTable) -> Task:
    """The task of the table's target column, after checking its values."""
    table.target.check_target(setting)
    return resolve_task(setting, table.target.labels(), table.where_target)


def _open_like(path: Path, train: CsvTable, kinds: dict[str, str], delimiter: str,
               whole: bool) -> CsvTable:  # fmt: skip
    """Another split's file, its columns in the training file's order and types."""
    table = open_table(path, train.target.name, delimiter, kinds, known_kinds=False,
                       whole=whole)  # fmt: skip
    names = [v.name for v in train.features]
    by_name = {v.name: v for v in table.features}
    if set(by_name) != set(names):
        lacking = sorted(set(names) - set(by_name))
        extra = sorted(set(by_name) - set(names))
        raise DataError(
            f"{path}: its columns differ from {train.path}'s"
            + (f"; it lacks {', '.join(lacking)}" if lacking else "")
            + (f"; it adds {', '.join(extra)}" if extra else ""),
            hint="give every split's file the same columns (order may differ)",
        )
    table.features = [by_name[name] for name in names]  # in the training file's order
    return table


def _check_strategy_names(train: CsvTable, columns: dict[str, str],
                          missing: MissingValues | None) -> None:  # fmt: skip
    """missing.columns names columns the file has, and no mean or median of declared
    categories (of inferred ones: when the column's values are read)."""
    if missing is None:
        return
    for name in missing.columns:
        if name not in train.header:
            raise DataError(
                f"{train.path}: missing.columns names '{name}', which the file lacks; "
                f"{did_you_mean(name, train.header)}"
            )
        if columns.get(name) == "categorical":
            _strategy(name, "categorical", missing)


def _strategy(name: str, kind: str, missing: MissingValues | None) -> str | None:
    """A feature column's fill strategy (mean and median mean most_frequent for text)."""
    if missing is None:
        return None
    strategy = missing.columns.get(name, missing.strategy)
    if strategy in ("mean", "median") and kind == "categorical":
        if name in missing.columns:
            raise DataError(
                f"missing.columns: '{strategy}' does not apply to the categorical column '{name}'",
                hint="use most_frequent, constant or drop for it",
            )
        strategy = "most_frequent"
    return strategy


def _check_missing(files: dict[str, CsvTable], unfilled: dict[str, list[str]]) -> None:
    """Missing values in a column without a strategy: one error naming columns and counts."""
    problems = [f"{files[split].path}: {', '.join(counts)}"
                for split, counts in unfilled.items() if counts]  # fmt: skip
    if problems:
        raise DataError(
            "missing values in columns without a strategy: " + "; ".join(problems),
            hint="set dataset.missing, e.g. missing: {strategy: median} (statistics from the "
            "training split), or per column: missing: {columns: {NAME: most_frequent}}",
        )


def _target_missing(table: CsvTable, missing: MissingValues | None):
    """Rows without a target: an error naming them, unless the config drops them."""
    import numpy as np

    no_target = table.target.missing_mask()
    target_drop = missing is not None and "drop" in (
        missing.columns.get(table.target.name),
        missing.strategy,
    )
    if no_target.any() and not target_drop:
        rows = np.flatnonzero(no_target)
        listed = table.places.rows([int(row) for row in rows[:MAX_LISTED]])
        more = f" and {len(rows) - MAX_LISTED} more" if len(rows) > MAX_LISTED else ""
        raise DataError(
            f"{table.path}: target column '{table.target.name}' is empty {listed}{more}",
            hint="remove those rows, or drop them with missing: {columns: "
            f"{{{table.target.name}: drop}}}}",
        )
    return no_target


def _check_kept(table: CsvTable, keep, warnings: list[str]) -> None:
    if not keep.any():
        raise DataError(f"{table.path}: every row has a missing value to drop; no rows are left")
    if not keep.all():
        warnings.append(
            f"{table.path}: dropped {int((~keep).sum())} of {table.rows} rows with missing values"
        )


def _column(values: Values, kind: str, categories: tuple[str, ...]):
    """One column of the raw matrix: numbers, or codes into ``categories`` (NaN if missing)."""
    import numpy as np

    if kind == "numeric":
        return np.asarray(values.numbers, dtype=np.float64)
    index = {category: float(i) for i, category in enumerate(categories)}
    lookup = np.array([index[c] for c in values.vocabulary] + [np.nan])  # code -1 -> NaN
    return lookup[np.asarray(values.codes, dtype=np.int32)]


def target_labels(files: dict[str, CsvTable], task: str) -> tuple[list[str], dict[str, Any]]:
    """Class names and each file's labels (indices into them), or regression values."""
    import numpy as np

    if task == "regression":
        for table in files.values():
            if table.target.text:  # another split's file may hold text the first did not
                row, value = table.target.first_text
                raise DataError(
                    f"{table.places.at(row)}: target {value!r} is not a number, but the "
                    "task is regression"
                )
        values = {s: np.asarray(t.target.numbers, dtype=np.float64) for s, t in files.items()}
        return [], values
    if any(table.target.codes is None for table in files.values()):
        raise DataError(f"{files['train'].path}: too many distinct target values to be classes")
    numeric = not any(table.target.text for table in files.values())

    def key(raw: str):
        return float(raw) if numeric else raw

    keys = sorted({key(raw) for table in files.values() for raw in table.target.vocabulary})
    names = [number_name(k) for k in keys] if numeric else list(keys)
    if task == "binary" and len(names) > 2:
        raise DataError(
            f"the target '{files['train'].target.name}' holds {len(names)} classes across the "
            f"files ({', '.join(names[:MAX_LISTED])}), but the task is binary",
            hint="set task: multiclass",
        )
    position = {k: i for i, k in enumerate(keys)}
    labels = {}
    for split, table in files.items():
        lookup = np.array([position[key(raw)] for raw in table.target.vocabulary] + [-1])
        labels[split] = lookup[np.asarray(table.target.codes, dtype=np.int32)]
    return names, labels
