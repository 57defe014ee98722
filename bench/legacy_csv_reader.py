"""The hand-written CSV reader Arrow replaced, kept for ``bench/tables.py`` only.

Its text as it was in trainer/datasets/csv_reader.py:

Stream a CSV file once, keeping each column as numbers and as category codes.

While reading, a column keeps its values as numbers (NaN where missing or text) and, as long as
it has at most ``MAX_DISTINCT`` distinct values, as codes into a vocabulary, so that its type
can be decided after one pass (:meth:`Values.resolve`). Every problem is a DataError that
names the file and, where there is one, the line (1-based, the header is line 1) and column.
"""

from __future__ import annotations

import csv
from array import array
from dataclasses import dataclass
from pathlib import Path

from trainer.core.errors import DataError
from trainer.core.files import require_data_file
from trainer.core.registry import did_you_mean
from trainer.datasets.user_data import MAX_DISTINCT, Labels

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})  # compared in lower case
NUMERIC_SHARE = 0.9  # a column this much numbers with some text holds typos, not categories


class Values:
    """One column's values as read: numbers (NaN if missing or text), and category codes."""

    def __init__(self, name: str, index: int, kind: str | None, capped: bool) -> None:
        self.name, self.index, self.kind, self.capped = name, index, kind, capped
        self.numbers: array | None = array("d") if kind != "categorical" else None
        self.codes: array | None = array("i") if kind != "numeric" else None
        self.vocabulary: dict[str, int] = {}
        self.missing = self.count = self.text = 0
        self.fractional = False
        self.first_text: tuple[int, str] | None = None

    def add(self, value: str, line: int, path: Path) -> None:
        if len(value) < 5 and value.lower() in MISSING:
            self.missing += 1
            if self.numbers is not None:
                self.numbers.append(float("nan"))
            if self.codes is not None:
                self.codes.append(-1)
            return
        if self.numbers is not None:
            try:
                number = float(value)
            except ValueError:
                number = None
            if number is None:
                if self.kind == "numeric":
                    raise DataError(
                        f"{path}, line {line}, column '{self.name}': {value!r} is not a number, "
                        "but the column is numeric",
                        hint="fix the value, leave the cell empty to mark it missing, or "
                        f"declare the column with columns: {{{self.name}: categorical}}",
                    )
                self.text += 1
                self.first_text = self.first_text or (line, value)
                number = float("nan")
            elif number - number != 0:  # inf or -inf ('nan' counts as missing)
                raise DataError(
                    f"{path}, line {line}, column '{self.name}': {value!r} is not a finite number",
                    hint="replace it with a finite value, or leave the cell empty (missing)",
                )
            else:
                self.count += 1
                self.fractional = self.fractional or not number.is_integer()
            self.numbers.append(number)
        if self.codes is not None:
            code = self.vocabulary.get(value)
            if code is None:
                if self.capped and len(self.vocabulary) >= MAX_DISTINCT:
                    self.codes, self.vocabulary = None, {}  # too many values to be categories
                    return
                code = self.vocabulary[value] = len(self.vocabulary)
            self.codes.append(code)

    def resolve(self, path: Path) -> str:
        """numeric or categorical, from the override or the values read."""
        if self.kind is not None:
            return self.kind
        if self.text == 0:
            return "numeric"
        if self.count >= NUMERIC_SHARE * (self.count + self.text):
            line, value = self.first_text
            raise DataError(
                f"{path}, line {line}, column '{self.name}': text {value!r} in a numeric "
                f"column ({self.count} of its {self.count + self.text} values are numbers)",
                hint="fix the value, leave the cell empty to mark it missing, or declare the "
                f"column with columns: {{{self.name}: categorical}}",
            )
        if self.codes is None:
            raise DataError(
                f"{path}: column '{self.name}' holds text with more than {MAX_DISTINCT} distinct "
                "values, too many to be categories (an ID or free text?)",
                hint=f"leave it out with columns: {{{self.name}: ignore}}, or force it with "
                f"columns: {{{self.name}: categorical}}",
            )
        return "categorical"

    def check_target(self, path: Path, setting: str) -> None:
        """Text among a numeric target's values is a typo, named by its line, not a class."""
        if not self.text or setting in ("binary", "multiclass"):
            return
        share = f" ({self.count} of its {self.count + self.text} values are)"
        if setting == "regression":
            share = ""
        elif self.count < NUMERIC_SHARE * (self.count + self.text):
            return  # mostly text: the values are classes
        line, value = self.first_text
        raise DataError(
            f"{path}, line {line}, target column '{self.name}': {value!r} is not a number{share}",
            hint="fix the value, or leave the cell empty and drop the row with missing: "
            f"{{columns: {{{self.name}: drop}}}}; for text classes set task: multiclass",
        )

    def labels(self) -> Labels:
        distinct = None if self.codes is None else len(self.vocabulary)
        return Labels(text=self.text > 0, distinct=distinct, integral=not self.fractional)

    def missing_mask(self):
        import numpy as np

        if self.codes is not None:
            return np.frombuffer(self.codes, dtype=np.int32) < 0
        return np.isnan(np.frombuffer(self.numbers, dtype=np.float64))


@dataclass
class CsvTable:
    """One file as read: its header, feature columns, target and the line of each row."""

    path: Path
    header: list[str]
    features: list[Values]
    target: Values
    ignored: list[str]
    lines: array

    @property
    def rows(self) -> int:
        return len(self.lines)

    @property
    def where_target(self) -> str:
        return f"{self.path}: target column '{self.target.name}'"


def read_csv(
    path: Path,
    target: str,
    delimiter: str = ",",
    kinds: dict[str, str] | None = None,
    target_only: bool = False,
    known_kinds: bool = True,
) -> CsvTable:
    """Stream one CSV file; every problem is a DataError naming the file and the line.

    ``kinds`` maps column names to numeric, categorical or ignore; with ``known_kinds`` a
    name the file lacks is an error (a typo in ``dataset.columns``).
    """
    kinds = kinds or {}
    require_data_file(path)
    try:
        handle = open(path, newline="", encoding="utf-8-sig")  # closed by the with below
    except FileNotFoundError:
        raise DataError(
            f"{path}: file not found",
            hint=f"relative paths start from the current directory ({Path.cwd()})",
        ) from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        with handle:
            header = [name.strip() for name in next(reader, [])]
            table = _start(path, header, target, delimiter, kinds, target_only, known_kinds)
            columns = [table.target, *table.features]
            width = len(header)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip() and width > 1):
                    continue  # a blank line
                line = reader.line_num
                if len(row) != width:
                    raise DataError(
                        f"{path}, line {line}: {len(row)} fields, but the header has {width}",
                        hint=f"check the quoting and the delimiter (dataset.delimiter is "
                        f"{delimiter!r})",
                    )
                table.lines.append(line)
                for column in columns:
                    column.add(row[column.index].strip(), line, path)
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}, around line {reader.line_num + 1}: not UTF-8 text ({error.reason} at byte "
            f"{error.start} of a block)",
            hint="save the file as UTF-8 CSV",
        ) from None
    except csv.Error as error:
        raise DataError(f"{path}, line {reader.line_num}: not valid CSV ({error})") from None
    if table.rows == 0:
        raise DataError(f"{path}: has a header but no data rows")
    return table


def _start(path, header, target, delimiter, kinds, target_only, known_kinds) -> CsvTable:
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
        Values(name, header.index(name), kinds.get(name), kinds.get(name) != "categorical")
        for name in wanted
    ]
    target_values = Values(target, header.index(target), None, True)
    ignored = [n for n in header if kinds.get(n) == "ignore"]
    return CsvTable(path, header, features, target_values, ignored, array("i"))
