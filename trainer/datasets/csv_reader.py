"""Read a table (CSV, gzip'd CSV, Parquet, a folder of Parquet files) into columns, with Arrow.

pyarrow's multi-threaded readers read the file; each column is then handed to
:class:`~trainer.datasets.table_columns.Values`, which owns the typing of its values and the
words that mark them missing (``MISSING``).

Every problem is a DataError that names the file and where in it: the line of a CSV file
(1-based, the header is line 1) or the row group and row of a Parquet file, and the column.
Arrow's errors seldom say where, so the row at fault comes from the compute result (the first
index where a check fails), and a CSV row's line from reading the file again line by line with
the csv module: only on the way to an error, never on the way to training.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import re
import zlib
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.core.errors import DataError
from trainer.core.files import require_data_file
from trainer.core.registry import did_you_mean
from trainer.datasets.table_columns import MISSING, Values, _is_number

if TYPE_CHECKING:
    import pyarrow as pa

PARQUET = (".parquet", ".pq")
CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to double")


class Places:
    """Where a table's rows are in its file(s): a CSV line, or a Parquet row group and row."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def at(self, row: int) -> str:
        raise NotImplementedError

    def rows(self, rows: list[int]) -> str:
        """Several rows, for a message: 'on line(s) 4, 9'."""
        raise NotImplementedError

    def cell(self, row: int, name: str) -> str | None:
        """The cell as the file spells it, where that is cheap to find; else None."""
        return None


class CsvPlaces(Places):
    def __init__(self, path: Path, delimiter: str, header: list[str]) -> None:
        super().__init__(path)
        self.delimiter, self.header = delimiter, header

    def _find(self, rows: list[int]) -> dict[int, tuple[int, list[str]]]:
        return scan(self.path, self.delimiter, len(self.header), set(rows))

    def at(self, row: int) -> str:
        return f"{self.path}, line {self._find([row])[row][0]}"

    def rows(self, rows: list[int]) -> str:
        found = self._find(rows)
        return "on line(s) " + ", ".join(str(found[row][0]) for row in rows)

    def cell(self, row: int, name: str) -> str | None:
        return self._find([row])[row][1][self.header.index(name)].strip()


class ParquetPlaces(Places):
    def __init__(self, path: Path, groups: list[tuple[Path, int, int]]) -> None:
        super().__init__(path)
        self.groups = groups  # (file, row group, its first row in the table), in order
        self.starts = [start for _, _, start in groups]

    def at(self, row: int) -> str:
        file, group, start = self.groups[bisect_right(self.starts, row) - 1]
        return f"{file}, row group {group}, row {row - start}"

    def rows(self, rows: list[int]) -> str:
        return "at " + "; ".join(self.at(row) for row in rows)


@dataclass
class CsvTable:
    """One file (or Parquet folder) as read: its header, feature columns, target and rows."""

    path: Path
    header: list[str]
    features: list[Values]
    target: Values
    ignored: list[str]
    rows: int
    places: Places
    reader: Callable[[list[str]], pa.Table] | None = None  # columns by name -> an Arrow table
    nan_is_missing: bool = False  # Parquet's NaN is a missing value; a CSV's 'nan' text is too
    held: Any = None  # the columns read at once, until every one is filled
    taken: set[str] = field(default_factory=set)  # the columns filled so far

    @property
    def where_target(self) -> str:
        return f"{self.path}: target column '{self.target.name}'"

    def fill(self, column: Values) -> Values:
        """Take ``column``'s values from the file (read now, unless the table was read whole)."""
        data = self.held if self.held is not None else self.reader([column.name])
        column.fill(data.column(column.name), column is self.target, self.nan_is_missing)
        self.taken.add(column.name)
        if len(self.taken) > len(self.features):
            self.held = None  # every column taken: Arrow's copy can go
        return column


def is_parquet(path: Path) -> bool:
    """A Parquet file, or a folder of them (read as one table)."""
    return path.is_dir() or path.name.lower().endswith(PARQUET)


def read_table(path: Path, target: str, delimiter: str = ",", **options) -> CsvTable:
    """Read one table whole (:func:`open_table`'s ``options``), every column filled; every
    problem is a DataError naming the file and the line or row."""
    table = open_table(path, target, delimiter, **options)
    for column in table.features:
        table.fill(column)
    return table


def open_table(
    path: Path,
    target: str,
    delimiter: str = ",",
    kinds: dict[str, str] | None = None,
    target_only: bool = False,
    known_kinds: bool = True,
    whole: bool = True,
) -> CsvTable:
    """The table's header and target column; :meth:`CsvTable.fill` takes a feature column's
    values. ``kinds`` maps column names to numeric, categorical or ignore; with
    ``known_kinds`` a name the file lacks is an error (a typo in ``dataset.columns``).
    ``whole``: read every column at once (one parse of a CSV), held until filled; else each
    column is read when it is filled (for tables larger than memory), with the types
    ``kinds`` holds then."""
    kinds = {} if kinds is None else kinds
    if is_parquet(path):
        header, places, read = open_parquet(path)
        nan_is_missing = True
    else:
        require_data_file(path)
        header = read_header(path, delimiter)
        places = CsvPlaces(path, delimiter, header)
        nan_is_missing = False

        def read(names: list[str]) -> pa.Table:
            return read_csv_columns(path, delimiter, header, names, kinds)

    table = _start(path, header, target, delimiter, kinds, target_only, known_kinds, places)
    table.reader, table.nan_is_missing = read, nan_is_missing
    names = [table.target.name, *(column.name for column in table.features)]
    data = read(names if whole else names[:1])
    table.held = data if whole else None
    table.rows = data.num_rows
    if table.rows == 0:
        raise DataError(f"{path}: has a header but no data rows")
    table.fill(table.target)
    return table


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    return open(path, newline="", encoding="utf-8-sig")


def read_header(path: Path, delimiter: str) -> list[str]:
    return [name.strip() for name in _lines(path, delimiter, header_only=True)]


def scan(path: Path, delimiter: str, width: int, rows: set[int] | None = None) -> dict:
    """Read a CSV file line by line as the csv module does, raising its first problem.

    Returns ``{row: (line, cells)}`` for the data rows asked for (0-based, blank lines not
    counted), stopping once they are found; ``rows=None`` reads the whole file.
    """
    return _lines(path, delimiter, width=width, rows=rows)


def _lines(path, delimiter, width=0, rows=None, header_only=False):
    found: dict[int, tuple[int, list[str]]] = {}
    reader = None
    try:
        with _open_text(path) as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader, [])
            if header_only:
                return header
            index = 0
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip() and width > 1):
                    continue  # a blank line
                if len(row) != width:
                    raise DataError(
                        f"{path}, line {reader.line_num}: {len(row)} fields, but the header has "
                        f"{width}",
                        hint=f"check the quoting and the delimiter (dataset.delimiter is "
                        f"{delimiter!r})",
                    )
                if rows is not None and index in rows:
                    found[index] = (reader.line_num, row)
                    if len(found) == len(rows):
                        break
                index += 1
    except UnicodeDecodeError as error:
        line = reader.line_num + 1 if reader else 1
        raise DataError(
            f"{path}, around line {line}: not UTF-8 text ({error.reason} at byte "
            f"{error.start} of a block)",
            hint="save the file as UTF-8 CSV",
        ) from None
    except csv.Error as error:
        raise DataError(f"{path}, line {reader.line_num}: not valid CSV ({error})") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        line = reader.line_num + 1 if reader else 1
        raise DataError(
            f"{path}, around line {line}: not a complete gzip file ({error})",
            hint="compress the file again (gzip FILE.csv), or give the plain .csv",
        ) from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None
    return found


def _null_words() -> list[str]:
    """MISSING in every mix of cases, for the CSV reader's numeric columns."""
    words = set()
    for word in MISSING:
        words.update(map("".join, itertools.product(*({c.lower(), c.upper()} for c in word))))
    return sorted(words)


def read_csv_columns(path: Path, delimiter: str, header: list[str], names: list[str],
                     kinds) -> pa.Table:  # fmt: skip
    """Arrow's multi-threaded CSV read of ``names``: numbers as float64, other columns as text.

    Which columns hold numbers is guessed from the first block (Arrow's inference); a column
    whose later rows hold text is read again as text, where its values are checked in full.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    read = pcsv.ReadOptions(column_names=header, skip_rows=1, use_threads=True)
    blank = lambda row: "skip" if not row.text.strip() else "error"  # noqa: E731
    parse = pcsv.ParseOptions(delimiter=delimiter, invalid_row_handler=blank)
    nulls = _null_words()

    def options(types: dict[str, Any]) -> pcsv.ConvertOptions:
        return pcsv.ConvertOptions(
            column_types=types, include_columns=names, null_values=nulls,
            strings_can_be_null=True, quoted_strings_can_be_null=True,
        )  # fmt: skip

    types: dict[str, Any] = {}
    for name in names:
        if kinds.get(name) == "categorical":
            types[name] = pa.string()
        elif kinds.get(name) == "numeric":
            types[name] = pa.float64()
    try:
        guessed = pcsv.open_csv(str(path), read, parse, options(types)).schema
    except (pa.ArrowException, OSError):
        guessed = None  # the full read below fails too, and says where
    for name in names:
        if name not in types and guessed is not None:
            kind = guessed.field(name).type
            number = _is_number(kind) or pa.types.is_null(kind)
            types[name] = pa.float64() if number else pa.string()
    newlines = False
    while True:
        parse.newlines_in_values = newlines
        try:
            return pcsv.read_csv(str(path), read, parse, options(types))
        except (pa.ArrowException, OSError) as error:
            text = str(error)
            match = CONVERSION.search(text)
            if match and types.get(header[int(match.group(1))]) == pa.float64():
                types[header[int(match.group(1))]] = pa.string()  # text after the first block
                continue
            scan(path, delimiter, len(header))  # raises the problem, with its line
            if newlines:
                raise DataError(f"{path}: not valid CSV ({text})") from None
            newlines = True  # a quoted value holding a line break confused the block splitter


def parquet_files(path: Path) -> list[Path]:
    """A Parquet file, or a folder's, in name order (hidden and _-marker files left out)."""
    if not path.is_dir():
        return [path]
    return sorted(
        p for p in path.rglob("*") if p.name.lower().endswith(PARQUET)
        and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
    )  # fmt: skip


def open_parquet(path: Path):
    """The header, the places and the reader of a Parquet file or a folder of them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = parquet_files(path)
    if not files:
        raise DataError(
            f"{path}: is a directory, not a regular file, and holds no .parquet files to "
            "read as one table",
            hint="point dataset.path at a .csv, .csv.gz or .parquet file, or at a folder "
            "of .parquet files",
        )
    opened, groups, start, header = [], [], 0, None
    for file in files:
        require_data_file(file)
        try:
            handle = pq.ParquetFile(file)
        except (pa.ArrowException, OSError) as error:
            raise DataError(
                f"{file}: not a readable Parquet file ({error})",
                hint="the file may be truncated or still being written: write it again",
            ) from None
        names = handle.schema_arrow.names
        if header is None:
            header = names
        elif set(names) != set(header):
            lacking, extra = sorted(set(header) - set(names)), sorted(set(names) - set(header))
            raise DataError(
                f"{file}: its columns differ from {files[0]}'s"
                + (f"; it lacks {', '.join(lacking)}" if lacking else "")
                + (f"; it adds {', '.join(extra)}" if extra else ""),
                hint="give every file of the folder the same columns",
            )
        for group in range(handle.metadata.num_row_groups):
            groups.append((file, group, start))
            start += handle.metadata.row_group(group).num_rows
        opened.append((file, handle))

    def read(columns: list[str]) -> pa.Table:
        parts = [_read_parquet(file, handle, columns) for file, handle in opened]
        return pa.table({name: _unify([part.column(name) for part in parts]) for name in columns})

    return list(header), ParquetPlaces(path, groups), read


def _read_parquet(file: Path, handle, columns: list[str]) -> pa.Table:
    import pyarrow as pa

    try:
        return handle.read(columns=columns, use_threads=True)
    except (pa.ArrowException, OSError):
        for group in range(handle.metadata.num_row_groups):  # which row group is damaged
            try:
                handle.read_row_group(group, columns=columns)
            except (pa.ArrowException, OSError) as error:
                raise DataError(
                    f"{file}, row group {group}: cannot be read ({error})",
                    hint="the file is damaged: write it again",
                ) from None
        raise


def _unify(parts: list) -> pa.ChunkedArray:
    """One column from each file's part: numbers as float64 if every part holds numbers."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kinds = {part.type for part in parts}
    if len(kinds) > 1:
        plain = [p.type.value_type if pa.types.is_dictionary(p.type) else p.type for p in parts]
        kind = pa.float64() if all(map(_is_number, plain)) else pa.string()
        parts = [pc.cast(part, kind) for part in parts]
    return pa.chunked_array([chunk for part in parts for chunk in part.chunks], parts[0].type)


def _start(path, header, target, delimiter, kinds, target_only, known_kinds, places) -> CsvTable:
    if not header:
        raise DataError(f"{path}: the file is empty; expected a header row naming the columns")
    for i, name in enumerate(header):
        if not name:
            raise DataError(f"{path}, line 1: column {i + 1} of the header has no name")
        if header.index(name) != i:
            raise DataError(
                f"{path}, line 1: column '{name}' appears twice in the header "
                f"(columns {header.index(name) + 1} and {i + 1})"
            )
    if target not in header:
        hint = None
        if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
            hint = f"the header is a single column; is the delimiter not {delimiter!r}?"
        raise DataError(
            f"{path}: no target column '{target}'; {did_you_mean(target, header)}", hint=hint
        )
    for name in kinds if known_kinds else ():
        if name not in header:
            raise DataError(
                f"{path}: dataset.columns names '{name}', which the file lacks; "
                f"{did_you_mean(name, header)}"
            )
    wanted = [] if target_only else [n for n in header if n != target and kinds.get(n) != "ignore"]
    if not target_only and not wanted:
        raise DataError(f"{path}: no feature columns besides the target '{target}'")
    features = [
        Values(name, kinds.get(name), kinds.get(name) != "categorical", places) for name in wanted
    ]
    target_values = Values(target, None, True, places)
    ignored = [n for n in header if kinds.get(n) == "ignore"]
    return CsvTable(path, header, features, target_values, ignored, 0, places)
