"""One column's values as read, and what its type is: the logic that follows Arrow's read.

:class:`Values` turns an Arrow column into numbers (NaN where missing or text) and, for text
and for the target, codes into a vocabulary, so that a column's type can be decided after one
read (:meth:`Values.resolve`). Missing values are empty cells and the words in ``MISSING``, in
any case and with surrounding blanks, in CSV and Parquet text columns alike; nulls and NaN in a
Parquet numeric column. Reading the file is :mod:`trainer.datasets.csv_reader`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainer.core.errors import DataError
from trainer.datasets.user_data import MAX_DISTINCT, Labels

if TYPE_CHECKING:
    import pyarrow as pa

    from trainer.datasets.csv_reader import Places

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})  # compared in lower case
NUMERIC_SHARE = 0.9  # a column this much numbers with some text holds typos, not categories
# What float() reads, in RE2 for pyarrow.compute: 1, -2.5, .5, 5., 1e-3, 1_000, inf, nan.
NUMBER = (
    r"(?i)^[+-]?(?:(?:(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)"
    r"(?:e[+-]?\d(?:_?\d)*)?)|inf|infinity|nan)$"
)


class Values:
    """One column's values as read: numbers (NaN if missing or text), and category codes."""

    def __init__(self, name: str, kind: str | None, capped: bool, places: Places) -> None:
        self.name, self.kind, self.capped, self.places = name, kind, capped, places
        self.numbers: Any = None  # float64 array, NaN where missing or text
        self.codes: Any = None  # int32 array into the vocabulary, -1 where missing
        self.vocabulary: dict[str, int] = {}
        self.missing = self.count = self.text = 0
        self.first_text: tuple[int, str] | None = None  # (row, value)

    def fill(self, column: pa.ChunkedArray, codes: bool, nan_is_missing: bool) -> None:
        """Take the column's values from Arrow; ``codes``: encode numbers as categories too."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if _is_number(column.type) and self.kind != "categorical":
            self._numbers(pc.cast(column, pa.float64()), codes, nan_is_missing)
            return
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            try:  # booleans, dates: their text is the category
                column = pc.cast(column, pa.string())
            except pa.ArrowException:
                raise DataError(
                    f"{self.places.path}: column '{self.name}' holds {column.type}, neither "
                    "numbers nor text",
                    hint=f"leave it out with columns: {{{self.name}: ignore}}",
                ) from None
        self._text(column)

    def _numbers(self, floats, codes: bool, nan_is_missing: bool) -> None:
        """A column Arrow read as numbers: nulls (and in Parquet NaN) are missing."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        numbers = pc.fill_null(floats, float("nan")).to_numpy()
        self.missing = int(np.isnan(numbers).sum()) if nan_is_missing else floats.null_count
        self.count = len(numbers) - self.missing
        if int(np.isfinite(numbers).sum()) != self.count:
            # in a CSV column 'nan' is missing, so a NaN there was '+nan' or '-nan'
            bad = np.isinf(numbers)
            if not nan_is_missing:
                bad = ~np.isfinite(numbers) & ~_array(pc.is_null(floats))
            row = _first(bad)
            self._not_finite(row, self.places.cell(row, self.name) or repr(float(numbers[row])))
        self.numbers = numbers
        if codes:
            encoded = pc.dictionary_encode(pa.array(numbers, mask=np.isnan(numbers)))
            rows = _array(pc.fill_null(encoded.indices, len(encoded.dictionary)))
            self._vocabulary(encoded.dictionary, rows, lambda value: repr(float(value)))

    def _text(self, strings) -> None:
        """A text column: every string operation runs once per distinct value, not per row."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        encoded = pc.dictionary_encode(strings)
        chunks = encoded.chunks
        raw = chunks[0].dictionary if chunks else pa.array([], pa.string())
        indices = pa.chunked_array([c.indices for c in chunks], pa.int32())
        rows = _array(pc.fill_null(indices, len(raw)))  # null: the extra last entry
        trimmed = pc.utf8_trim_whitespace(raw)
        words = pa.array(sorted(MISSING))
        missing = np.append(_array(pc.is_in(pc.utf8_lower(trimmed), value_set=words)), True)
        self.missing = int(missing[rows].sum())
        present = pc.if_else(pa.array(missing[:-1]), None, trimmed)  # per distinct value
        if self.kind != "categorical":
            number = np.append(_array(pc.fill_null(pc.match_substring_regex(present, NUMBER),
                                                   False)), False)  # fmt: skip
            floats = _floats(pc.if_else(pa.array(number[:-1]), present, None))
            floats = np.append(_array(pc.fill_null(floats, float("nan"))), float("nan"))
            text = (~number & ~missing)[rows]
            self.count, self.text = int(number[rows].sum()), int(text.sum())
            first_text = _first(text)
            if first_text is not None:
                self.first_text = (first_text, present[int(rows[first_text])].as_py())
            bad = (number & ~np.isfinite(floats))[rows]  # inf, or '+nan'
            row = _first(bad)
            text_first = (
                self.kind == "numeric" and first_text is not None and first_text < (row or 0)
            )
            if row is not None and not text_first:
                self._not_finite(row, present[int(rows[row])].as_py())
            if self.kind == "numeric" and self.text:
                row, value = self.first_text
                raise DataError(
                    f"{self.places.at(row)}, column '{self.name}': {value!r} is not a number, "
                    "but the column is numeric",
                    hint="fix the value, leave the cell empty to mark it missing, or "
                    f"declare the column with columns: {{{self.name}: categorical}}",
                )
            self.numbers = floats[rows]
        if self.kind != "numeric":
            # trimming may make several spellings one category; codes follow first appearance
            vocabulary = pc.dictionary_encode(present)
            codes = np.append(_array(pc.fill_null(vocabulary.indices, -1)), -1)
            self._vocabulary(vocabulary.dictionary, codes[rows], str, codes_given=True)

    def _vocabulary(self, dictionary, rows, name, codes_given: bool = False) -> None:
        import numpy as np

        if self.capped and len(dictionary) > MAX_DISTINCT:
            self.codes, self.vocabulary = None, {}  # too many values to be categories
            return
        codes = rows if codes_given else np.where(rows == len(dictionary), -1, rows)
        self.codes = codes.astype(np.int32, copy=False)
        self.vocabulary = {name(value): code for code, value in enumerate(dictionary.to_pylist())}

    def release(self) -> None:
        """Let the values go (a streamed table's column, once written); counts stay."""
        self.numbers = self.codes = None

    def _not_finite(self, row: int, value: str) -> None:
        raise DataError(
            f"{self.places.at(row)}, column '{self.name}': {value!r} is not a finite number",
            hint="replace it with a finite value, or leave the cell empty (missing)",
        )

    @property
    def distinct(self) -> int | None:
        """How many distinct values, or None beyond ``MAX_DISTINCT``."""
        import numpy as np

        if self.codes is not None:
            return len(self.vocabulary)
        if self.numbers is None or self.text:
            return None
        count = len(np.unique(self.numbers[~np.isnan(self.numbers)]))
        return count if count <= MAX_DISTINCT else None

    def resolve(self) -> str:
        """numeric or categorical, from the override or the values read."""
        if self.kind is not None:
            return self.kind
        if self.text == 0:
            return "numeric"
        if self.count >= NUMERIC_SHARE * (self.count + self.text):
            row, value = self.first_text
            raise DataError(
                f"{self.places.at(row)}, column '{self.name}': text {value!r} in a numeric "
                f"column ({self.count} of its {self.count + self.text} values are numbers)",
                hint="fix the value, leave the cell empty to mark it missing, or declare the "
                f"column with columns: {{{self.name}: categorical}}",
            )
        if self.codes is None:
            raise DataError(
                f"{self.places.path}: column '{self.name}' holds text with more than "
                f"{MAX_DISTINCT} distinct values, too many to be categories (an ID or free text?)",
                hint=f"leave it out with columns: {{{self.name}: ignore}}, or force it with "
                f"columns: {{{self.name}: categorical}}",
            )
        return "categorical"

    def check_target(self, setting: str) -> None:
        """Text among a numeric target's values is a typo, named by its line, not a class."""
        if not self.text or setting in ("binary", "multiclass"):
            return
        share = f" ({self.count} of its {self.count + self.text} values are)"
        if setting == "regression":
            share = ""
        elif self.count < NUMERIC_SHARE * (self.count + self.text):
            return  # mostly text: the values are classes
        row, value = self.first_text
        raise DataError(
            f"{self.places.at(row)}, target column '{self.name}': {value!r} is not a number{share}",
            hint="fix the value, or leave the cell empty and drop the row with missing: "
            f"{{columns: {{{self.name}: drop}}}}; for text classes set task: multiclass",
        )

    def labels(self) -> Labels:
        import numpy as np

        distinct = None if self.codes is None else len(self.vocabulary)
        numbers = np.zeros(0) if self.numbers is None else self.numbers
        numbers = numbers[~np.isnan(numbers)]
        integral = bool(np.all(numbers == np.floor(numbers)))
        return Labels(text=self.text > 0, distinct=distinct, integral=integral)

    def missing_mask(self):
        import numpy as np

        if self.codes is not None:
            return self.codes < 0
        return np.isnan(self.numbers)


def _is_number(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


def _array(values):
    """An Arrow array or chunked array without nulls as a NumPy array."""
    return values.to_numpy(zero_copy_only=False)


def _first(mask) -> int | None:
    """The first row where the NumPy ``mask`` holds, or None."""
    row = int(mask.argmax()) if len(mask) else 0
    return row if len(mask) and mask[row] else None


def _floats(strings):
    """Strings that match NUMBER, as float64 (float() where Arrow's cast refuses one)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    strings = pc.replace_substring(strings, "_", "")  # 1_000: float() reads it, Arrow does not
    try:
        return pc.cast(strings, pa.float64())
    except pa.ArrowInvalid:
        values = [None if v is None else float(v) for v in strings.to_pylist()]
        return pa.chunked_array([pa.array(values, pa.float64())])
