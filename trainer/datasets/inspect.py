"""``trainer datasets inspect``: what a dataset holds and how it would be split, without training.

:func:`inspect` reads the data as training would, but reports problems instead of stopping at
the first: missing values without a strategy, for instance, are exactly what a user inspects
a CSV for. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from typing import Any

from trainer.core.errors import DataError
from trainer.datasets import DatasetParams, prepare, read_raw


def inspect(params: DatasetParams, seed: int = 0) -> dict[str, Any]:
    """A JSON-able description of a dataset: rows, columns, classes, missing values, splits.

    Keys (``None`` or empty where they do not apply):

    - ``dataset``, ``task``: the registered name and the (inferred) task;
    - ``rows``: samples in all of the data's files or pools; ``files``: ``{split: {path,
      rows}}`` for CSV files, ``{split: {path}}`` for other files;
    - ``columns`` (CSV): ``[{name, role (feature, target, ignored), type (numeric,
      categorical; for the target the task), missing, distinct}]``, where ``distinct`` is
      None beyond 1000 values; ``target``: the target column's name;
    - ``classes``: ``{class name: count}`` over all rows (classification);
      ``target_summary``: ``{min, max, mean, std}`` of the targets (regression);
    - ``missing``: ``{column: count}`` for columns with missing values (CSV);
    - ``input_shape``: one sample's shape as the model sees it; ``features``: the names of
      the model's inputs after encoding (CSV);
    - ``splits``: ``{train, validation, test}`` sizes; ``class_balance``: ``{split: {class:
      count}}``;
    - ``storage`` (image folders, tables): whether training would hold the data in memory or
      stream it, and why (``trainer.datasets.storage``, ``trainer.datasets.spill``); no
      image is decoded here, and a streamed table is read a column at a time;
    - ``warnings``: what training would warn about (a class missing from a split, rows
      dropped, categories unseen in training);
    - ``problems``: the errors that would stop training, as messages.
    """
    report: dict[str, Any] = {
        "dataset": params.type, "task": params.task(), "rows": None, "files": {},
        "columns": [], "target": None, "classes": {}, "target_summary": None, "missing": {},
        "input_shape": None, "features": [], "splits": None, "class_balance": {},
        "warnings": [], "problems": [],
    }  # fmt: skip
    problems: list[str] = report["problems"]
    csv = params.type == "csv"
    if csv:
        _describe_csv(params, report)
    elif getattr(params, "path", None) is not None:
        for split, key in (("train", "path"), ("validation", "validation_path"),
                           ("test", "test_path")):  # fmt: skip
            if getattr(params, key, None) is not None:
                report["files"][split] = {"path": str(getattr(params, key))}
    try:
        raw = read_raw(params, seed)
    except DataError as error:
        _add(problems, error)
        return report
    if not csv:
        _describe_raw(raw, report)
    try:  # streamed images stay unread here; the report says where training would keep them
        streamed = "in_memory" in type(params).model_fields
        data = prepare(raw, params.model_copy(update={"in_memory": False}) if streamed
                       else params, seed)  # fmt: skip
    except DataError as error:
        _add(problems, error)
        return report
    if streamed and not csv:  # a table's was decided before its columns were read
        from trainer.datasets.storage import decide

        splits = {"train": data.x_train, "validation": data.x_val, "test": data.x_test}
        report["storage"] = decide(params, splits)
    report["splits"] = data.sizes()
    report["input_shape"] = list(data.spec.input_shape)
    report["features"] = list(data.preprocessing.get("features", []))
    report["warnings"] = list(data.warnings)
    if data.spec.is_classification:
        splits = {"train": data.y_train, "validation": data.y_val, "test": data.y_test}
        report["class_balance"] = {
            split: _counts(y, data.spec.class_names) for split, y in splits.items() if y is not None
        }
    return report


def _add(problems: list[str], error: DataError) -> None:
    if str(error) not in problems:
        problems.append(str(error))


def _counts(labels, class_names) -> dict[str, int]:
    import numpy as np

    counts = np.bincount(np.asarray(labels, dtype=np.int64).ravel(), minlength=len(class_names))
    return {str(name): int(count) for name, count in zip(class_names, counts, strict=False)}


def _describe_raw(raw, report: dict[str, Any]) -> None:
    import numpy as np

    pools = [(raw.x_train, raw.y_train), (raw.x_test, raw.y_test), (raw.x_val, raw.y_val)]
    ys = [np.asarray(y) for x, y in pools if x is not None]
    report["rows"] = int(sum(len(y) for y in ys))
    y = np.concatenate([y.reshape(len(y), -1) for y in ys])
    if raw.task == "regression":
        report["target_summary"] = _summary(y.astype(np.float64))
    else:
        names = raw.class_names or [str(i) for i in range(int(y.max()) + 1)]
        report["classes"] = _counts(y[:, 0], names)


def _summary(values) -> dict[str, float]:
    import numpy as np

    values = values[np.isfinite(values)]
    if values.size == 0:
        return {}
    stats = {"min": values.min(), "max": values.max(), "mean": values.mean(), "std": values.std()}
    return {key: float(value) for key, value in stats.items()}


def _describe_csv(params, report: dict[str, Any]) -> None:
    """Columns, missing values and classes, read straight from the files."""
    import numpy as np

    from trainer.datasets import csv_file, csv_reader

    files = {"train": params.path}
    files.update({s: p for s, p in (("validation", params.validation_path),
                                    ("test", params.test_path)) if p is not None})  # fmt: skip
    report["target"] = params.target
    whole = _table_storage(params, report)
    tables = {}
    for split, path in files.items():
        report["files"][split] = {"path": str(path), "rows": None}
        try:
            table = csv_reader.open_table(path, params.target, params.delimiter, params.columns,
                                          whole=whole)  # fmt: skip
        except DataError as error:
            _add(report["problems"], error)
            continue
        tables[split] = table
        report["files"][split]["rows"] = table.rows
    if "train" not in tables:
        return
    report["rows"] = sum(table.rows for table in tables.values())
    train = tables["train"]
    columns = []
    for name in train.header:
        row: dict[str, Any] = {"name": name, "role": "feature", "type": None, "missing": 0,
                               "distinct": None}  # fmt: skip
        if name in train.ignored:
            row.update(role="ignored", type="ignore", missing=None)
        elif name == params.target:
            row.update(role="target", type=params.task(), missing=_sum_missing(tables, name))
            row["distinct"] = train.target.labels().distinct
        else:
            values = next(v for v in train.features if v.name == name)
            found = [(t, v) for t in tables.values() for v in t.features if v.name == name]
            try:  # each file's column read now: one column in memory at a time when streamed
                for table, column in found:
                    table.fill(column)
                row["type"] = values.resolve()
            except DataError as error:
                _add(report["problems"], error)
                row["type"] = "invalid"
            row["missing"] = _sum_missing(tables, name)
            row["distinct"] = values.distinct
            if not whole:
                for _, column in found:
                    column.release()
        columns.append(row)
        if row["missing"]:
            report["missing"][name] = row["missing"]
    report["columns"] = columns
    task = params.task()
    try:
        names, targets = csv_file.target_labels(tables, task)
    except DataError as error:
        _add(report["problems"], error)
        return
    if task == "regression":
        report["target_summary"] = _summary(np.concatenate(list(targets.values())))
    else:
        labels = np.concatenate([t[t >= 0] for t in targets.values()])
        report["classes"] = _counts(labels, names)


def _table_storage(params, report: dict[str, Any]) -> bool:
    """Whether training would read the table whole (``storage``, as for image folders)."""
    from trainer.datasets.csv_file import read_columns
    from trainer.datasets.spill import decide_table

    try:
        columns = len(read_columns(params.path, params.delimiter))
        report["storage"] = decide_table(params.in_memory, params.path, columns, params.spill_dir)
    except DataError as error:
        _add(report["problems"], error)
        return True
    return report["storage"]["in_memory"]


def _sum_missing(tables, name: str) -> int:
    total = 0
    for table in tables.values():
        columns = [table.target, *table.features]
        total += next((v.missing for v in columns if v.name == name), 0)
    return int(total)
