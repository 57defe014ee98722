"""Predictions of a finished run on new data, through exactly the transform the run saved.

The input is read as the run's data was: for a ``csv`` run a table of the run's columns, in
any of the formats training reads (``.csv``, ``.csv.gz``, ``.parquet``, a folder of
``.parquet`` files) and by the same Arrow reader (:mod:`trainer.datasets.csv_reader`), with
the column kinds the run saved (imputed, encoded and scaled with ``preprocessing.json``;
other columns, such as the target, are ignored), or for every other run NumPy arrays
(``.npy``, ``.npz``), a CSV of numbers (one flattened sample per row, an optional header) or
a folder of images (found and resized as ``image_folder`` does), scaled with the run's saved
statistics. Every problem is a DataError naming the file and what the run expected (and for a
table the line, or the row group and row, and the column); problems in reading the input are
found before TensorFlow starts, a shape the model cannot take once the model is loaded.

The output format follows its suffix: ``.csv`` (an ``id`` column, the prediction, and a
``probability_<class>`` column per class), ``.npy`` (the class probabilities, or the
regression outputs) or ``.npz`` (``ids``, ``predictions`` as class indices or values,
``probabilities``, ``class_names``).

Ids, one convention for every input: a row's 0-based index among the data rows (the header
and blank lines not counted; a NumPy file's first axis), except that a table's rows carry
their own ids through (its ``id`` column when the model does not read it, or the
column ``id_column`` names) and an image is named by its path under the folder. An existing
output is refused (exit 2, before the model loads) unless ``overwrite`` is set, as
``trainer export`` refuses one.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from trainer.core import files
from trainer.core.errors import DataError, UsageError
from trainer.core.files import require_data_file
from trainer.core.registry import did_you_mean
from trainer.datasets import pipeline, storage
from trainer.datasets.lazy import is_lazy
from trainer.models import MODELS
from trainer.training import backend, saved

OUTPUTS = (".csv", ".npy", ".npz")
MAX_LISTED = 5
TABLES = ".csv or .csv.gz file, a .parquet file or a folder of .parquet files"


def check_output(output: Path, input_path: Path | None = None, overwrite: bool = False) -> None:
    """Refuse an output that cannot or must not be written, before anything is loaded."""
    if output.is_dir():
        raise UsageError(
            f"--output '{output}' is a directory",
            hint="give a file path: predictions.csv, predictions.npy or predictions.npz",
        )
    if input_path is not None and output.exists() and input_path.exists():
        if output.resolve() == input_path.resolve():
            raise UsageError(
                f"--output '{output}' is the --input file; predicting would overwrite the data",
                hint="write the predictions to a new file",
            )
    if output.exists() and not overwrite:
        raise UsageError(
            f"--output '{output}' already exists",
            hint="pass --overwrite to replace it, or choose a new path",
        )
    if output.suffix.lower() not in OUTPUTS:
        raise UsageError(
            f"--output '{output}': unknown format '{output.suffix}'; use one of "
            f"{', '.join(OUTPUTS)}",
            hint="predictions.csv (ids, predictions, probabilities) or predictions.npy",
        )
    files.check_writable(output.parent)


def predict(
    run_dir: Path,
    input_path: Path,
    output: Path,
    id_column: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Predict ``input_path`` with the run's model and write ``output``; returns a summary.

    ``id_column`` names the input CSV's column whose values become the output's ids (runs
    trained on a CSV only); ``overwrite`` allows replacing an existing ``output``.
    """
    check_output(output, input_path, overwrite)
    cfg = saved.finished_run_config(run_dir)
    if MODELS.get(cfg.model.type).info.get("evaluate") is not None:
        raise UsageError(
            f"model '{cfg.model.type}' generates images; it has no predictions to make from inputs"
        )
    saved_statistics = run_dir / "preprocessing.json"
    state = (
        files.read_run_json(saved_statistics)
        if saved_statistics.is_file()
        else {"kind": "array", "scaling": {"method": "none"}}
    )
    if not input_path.exists():
        raise DataError(f"{input_path}: not found")
    warnings: list[str] = []
    if state.get("kind") == "table":
        delimiter = getattr(cfg.dataset, "delimiter", ",")
        ids, x, id_column = read_table(input_path, state, warnings, id_column, delimiter)
    elif id_column is not None:
        raise UsageError(
            f"--id-column '{id_column}': this run was not trained on a CSV file, so its inputs "
            "have no columns",
            hint="leave it out: NumPy rows are numbered from 0, images named by their path",
        )
    else:
        ids, x = read_arrays(input_path, cfg)
    backend.start(cfg.training)
    model = saved.load_model(run_dir, cfg)
    expected = tuple(model.input_shape[1:])
    if state.get("kind") != "table":
        x = _scaled(_shaped(x, expected, input_path), state)
    batch = pipeline.eval_batch_size(cfg.training, model)
    with storage.reported(x):  # images are read batch by batch: a bad file is named
        outputs = model.predict(storage.feed(x, batch_size=batch), batch_size=batch, verbose=0)
    names = _class_names(run_dir, state, cfg.task, outputs)
    write(output, ids, outputs, cfg.task, names)
    summary = {
        "rows": len(ids),
        "input": str(input_path),
        "output": str(output),
        "task": cfg.task,
        "id_column": id_column,
        "warnings": warnings,
    }
    if names:
        labels = _labels(outputs, cfg.task)
        summary["predicted"] = {n: int((labels == i).sum()) for i, n in enumerate(names)}
    return summary


def read_table(path: Path, state: dict[str, Any], warnings: list[str],
               id_column: str | None = None, delimiter: str = ","):  # fmt: skip
    """(row ids, features, the id column used or None) of a table laid out like the run's
    training file: a CSV (``.csv.gz`` too) or Parquet file, or a folder of Parquet files, read
    by the Arrow reader training uses, with the column kinds the run saved. The ids are
    ``id_column``'s values, else those of an ``id`` column the model does not read, else the
    rows' 0-based indices."""
    from trainer.datasets import csv_reader
    from trainer.datasets.preprocessing import Column, Table, apply_table
    from trainer.datasets.table_columns import Values

    if path.suffix.lower() in (".npy", ".npz"):
        raise DataError(
            f"{path}: this run was trained on a table, so it predicts a table's rows",
            hint=f"give a {TABLES} with the training file's columns",
        )
    entries = state["columns"]
    kinds = {entry["name"]: entry["type"] for entry in entries}
    parquet = csv_reader.is_parquet(path)
    if parquet:
        header, places, read_parquet = csv_reader.open_parquet(path)
    else:
        require_data_file(path)  # a FIFO or a device would block or never end
        header = csv_reader.read_header(path, delimiter)
        places = csv_reader.CsvPlaces(path, delimiter, header)
    if not header:
        raise DataError(f"{path}: the file is empty; expected a header row naming the columns")
    lacking = [e["name"] for e in entries if e["name"] not in header]
    if lacking:
        guesses = "; ".join(f"'{n}': {did_you_mean(n, header)}" for n in lacking[:MAX_LISTED])
        raise DataError(
            f"{path}: lacks column(s) {', '.join(lacking)} that the model was trained on "
            f"({guesses})",
            hint=f"the run's input columns are {', '.join(e['name'] for e in entries)}",
        )
    if id_column is not None and id_column not in header:
        raise DataError(
            f"{path}: has no column '{id_column}' (--id-column); {did_you_mean(id_column, header)}"
        )
    if id_column is None and "id" in header and "id" not in kinds:
        id_column = "id"
    names = [*kinds, *([id_column] if id_column and id_column not in kinds else [])]
    for name in names:
        if header.count(name) > 1:
            first = header.index(name)
            raise DataError(
                f"{path}, line 1: column '{name}' appears twice in the header (columns "
                f"{first + 1} and {header.index(name, first + 1) + 1})"
            )
    if parquet:
        data = read_parquet(names)
    else:  # the saved kinds, never guessed from this file; the ids as text
        as_read = {**({id_column: "categorical"} if id_column else {}), **kinds}
        data = csv_reader.read_csv_columns(path, delimiter, header, names, as_read)
    if data.num_rows == 0:
        raise DataError(f"{path}: has a header but no data rows")
    x = np.full((data.num_rows, len(entries)), np.nan)
    columns = []
    for j, (name, kind) in enumerate(kinds.items()):
        values = Values(name, kind, False, places)
        try:
            values.fill(data.column(name), False, parquet)  # NaN is missing in Parquet
        except DataError as error:  # the hint fits training; here the run fixed the kind
            raise DataError(
                error.message,
                hint=f"the run was trained on '{name}' as a {kind} column: fix the value, or "
                "leave the cell empty to mark it missing",
            ) from None
        if kind == "numeric":
            x[:, j] = values.numbers
            columns.append(Column(name, "numeric"))
        else:
            codes = np.asarray(values.codes)
            x[:, j] = np.where(codes < 0, np.nan, codes)
            columns.append(Column(name, "categorical", tuple(values.vocabulary)))
    table = Table(tuple(columns), state["encoding"])
    features, found = apply_table(state, table, x, "input")
    warnings += found
    if id_column is None:
        return [str(k) for k in range(data.num_rows)], features, None
    ids = _ids(path, id_column, data.column(id_column), kinds.get(id_column), places)
    return ids, features, id_column


def _ids(path: Path, name: str, column, kind: str | None, places) -> list[str]:
    """The column ``name``'s values as ids, spelled as the file spells them ('' where empty)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from trainer.datasets import csv_reader

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    spelled = isinstance(places, csv_reader.CsvPlaces)
    if spelled and kind == "numeric":
        ids: list[str | None] = [None] * len(column)  # read as numbers for the model
    elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        ids = [None if v is None else v.strip() for v in column.to_pylist()]
    else:
        try:
            ids = [None if v is None else v for v in pc.cast(column, pa.string()).to_pylist()]
        except pa.ArrowException:
            raise DataError(
                f"{path}: the id column '{name}' holds {column.type}, which has no text form",
                hint="name another column with --id-column, or leave it out",
            ) from None
    empty = {row for row, value in enumerate(ids) if value is None}
    if spelled and empty:  # Arrow reads empty cells and 'NA' as null: take the file's text
        at = places.header.index(name)
        cells = csv_reader.scan(path, places.delimiter, len(places.header), empty)
        for row in empty:
            ids[row] = cells[row][1][at].strip()
    return [value or "" for value in ids]


def read_arrays(path: Path, cfg) -> tuple[list[str], np.ndarray]:
    """(ids, raw samples) from an .npy/.npz file, a CSV of numbers or a folder of images."""
    suffix = path.suffix.lower()
    if path.is_dir():
        return _read_images(path, cfg)
    require_data_file(path)  # a FIFO or a device would block or never end
    if suffix in (".npy", ".npz"):
        try:
            loaded = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise DataError(f"{path}: not a readable NumPy file ({error})") from None
        if suffix == ".npz" or hasattr(loaded, "files"):
            with loaded:
                keys = list(loaded.files)
                key = "x" if "x" in keys else keys[0] if len(keys) == 1 else None
                if key is None:
                    raise DataError(
                        f"{path}: holds {', '.join(keys) or 'no arrays'}; name the "
                        "features 'x' (np.savez(path, x=features))"
                    )
                loaded = loaded[key]
        x = loaded
    elif suffix == ".csv":
        x = _read_number_rows(path)
    else:
        raise DataError(
            f"{path}: unknown input format '{suffix}'; give .npy, .npz, .csv or a folder of images"
        )
    if x.ndim == 0 or x.dtype.kind not in "biuf":
        raise DataError(
            f"{path}: holds {x.dtype} shaped {x.shape}; expected numbers shaped (samples, ...)"
        )
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        first = int(np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0])
        raise DataError(f"{path}: sample {first} holds NaN or infinite values")
    return [str(i) for i in range(len(x))], x


def _read_number_rows(path: Path) -> np.ndarray:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: cannot be read as UTF-8 CSV ({error})") from None
    try:
        [float(v) for v in rows[0]]
    except (ValueError, IndexError):
        rows = rows[1:]  # a header row
    if not rows:
        raise DataError(f"{path}: no data rows")
    try:
        return np.array([[float(v) for v in row] for row in rows], dtype=np.float32)
    except ValueError as error:
        raise DataError(
            f"{path}: every value must be a number, one sample per row ({error})"
        ) from None


def _read_images(folder: Path, cfg) -> tuple[list[str], np.ndarray]:
    """Images under ``folder`` (any depth, sorted), sized and coloured as the run's were."""
    from trainer.datasets.image_folder import image_files, read_images

    if cfg.dataset.type != "image_folder":
        raise DataError(
            f"{folder}: a folder of images, but the run's data "
            f"('{cfg.dataset.type}') was not images from a folder",
            hint="give an .npy or .npz file",
        )
    files = image_files(folder)
    if not files:
        raise DataError(f"{folder}: holds no images (.bmp, .gif, .jpeg, .jpg, .png)")
    x = read_images(files, cfg.dataset.image_size, cfg.dataset.color_mode)
    return [str(f.relative_to(folder)) for f in files], x


def _shaped(x: np.ndarray, expected: tuple, path: Path) -> np.ndarray:
    """``x`` shaped (samples, *expected), flattened samples reshaped when the sizes agree."""
    if is_lazy(x) and tuple(x.shape[1:]) != expected:
        x = np.asarray(x)
    if tuple(x.shape[1:]) == expected:
        return x
    if x.ndim >= 1 and int(np.prod(x.shape[1:])) == int(np.prod(expected)):
        return x.reshape(len(x), *expected)
    if x.ndim >= 1 and tuple(x.shape) == expected:
        return x[None]  # a single sample
    raise DataError(
        f"{path}: samples shaped {tuple(x.shape[1:])} ({int(np.prod(x.shape[1:]))} values); "
        f"the model takes samples shaped {expected} ({int(np.prod(expected))} values)",
        hint="give one sample per row (first axis), laid out as the training data",
    )


def _scaled(x: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    from trainer.datasets import scaler_from

    scaler = scaler_from(state)
    if is_lazy(x):  # images, scaled as each batch is read
        return x.scaled(scaler.offset, scaler.scale)
    return scaler(x)


def _class_names(run_dir: Path, state, task: str, outputs) -> list[str]:
    if task == "regression":
        return []
    metrics = run_dir / "metrics.json"
    names = files.read_run_json(metrics).get("class_names") if metrics.is_file() else None
    names = names or state.get("class_names")
    width = 2 if task == "binary" else outputs.shape[-1]
    return list(names) if names and len(names) == width else [str(i) for i in range(width)]


def _probabilities(outputs: np.ndarray, task: str) -> np.ndarray:
    if task == "binary":
        positive = outputs.reshape(len(outputs), -1)[:, :1]
        return np.concatenate([1 - positive, positive], axis=1)
    return outputs


def _labels(outputs: np.ndarray, task: str) -> np.ndarray:
    return _probabilities(outputs, task).argmax(axis=1)


def write(output: Path, ids: list[str], outputs, task: str, names: list[str]) -> None:
    """The predictions in the format ``output``'s suffix names, written atomically."""
    from trainer.core.files import atomic_write_bytes

    outputs = np.asarray(outputs, dtype=np.float32).reshape(len(outputs), -1)
    suffix = output.suffix.lower()
    if suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, _probabilities(outputs, task) if names else outputs)
        atomic_write_bytes(output, buffer.getvalue())
        return
    if suffix == ".npz":
        arrays = {"ids": np.asarray(ids)}
        if names:
            arrays.update(
                predictions=_labels(outputs, task),
                probabilities=_probabilities(outputs, task),
                class_names=np.asarray(names),
            )
        else:
            arrays["predictions"] = outputs
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(output, buffer.getvalue())
        return
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    if names:
        probabilities = _probabilities(outputs, task)
        writer.writerow(["id", "prediction", *(f"probability_{n}" for n in names)])
        for i, row in enumerate(probabilities):
            writer.writerow([ids[i], names[int(row.argmax())], *(repr(float(p)) for p in row)])
    else:
        columns = (
            ["prediction"]
            if outputs.shape[1] == 1
            else [f"prediction_{j}" for j in range(outputs.shape[1])]
        )
        writer.writerow(["id", *columns])
        for i, row in enumerate(outputs):
            writer.writerow([ids[i], *(repr(float(v)) for v in row)])
    atomic_write_bytes(output, table.getvalue().encode("utf-8"))
