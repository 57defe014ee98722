"""Tabular preprocessing: impute, encode and scale, fitted on the training split only.

A tabular loader (``csv``) hands :func:`trainer.datasets.load` a raw matrix, one column per
input column: numbers (NaN where missing) for numeric columns and category codes (indices
into :attr:`Column.categories`, NaN where missing) for categorical ones, plus a
:class:`Table` that says which is which. :func:`fit_table` learns everything the transform
needs from the training split and returns it as a JSON-able dict; :func:`apply_table` applies
such a dict to any split. A run saves the dict, so ``trainer eval`` re-applies exactly the
transform the model was trained with instead of refitting it on whatever data it finds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trainer.core.errors import DataError

if TYPE_CHECKING:
    import numpy as np

Strategy = Literal["mean", "median", "most_frequent", "constant", "drop"]
STATISTICS = ("mean", "median", "most_frequent", "constant")  # strategies that fill a value
DEFAULT_FILL = {"numeric": 0.0, "categorical": "missing"}  # for 'constant' without fill_value
MAX_LISTED = 5  # examples named in one message


class MissingValues(BaseModel):
    """``dataset.missing``: how missing values are filled, per dataset and per column."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    strategy: Strategy | None = Field(
        None,
        description="Fill with the training split's mean, median or most frequent value, a "
        "constant (fill_value), or drop the rows. Categorical columns use most_frequent when "
        "the strategy is mean or median. Omit it to require every column to be complete.",
    )
    fill_value: int | float | str | None = Field(
        None,
        description="The value for strategy 'constant' (default: 0 for numeric columns, "
        "'missing' for categorical ones).",
    )
    columns: dict[str, Strategy] = Field(
        default_factory=dict, description="Per-column strategies, overriding 'strategy'."
    )


@dataclass(frozen=True)
class Column:
    name: str
    kind: Literal["numeric", "categorical"]
    categories: tuple[str, ...] = ()  # every category the files hold; codes index this


@dataclass(frozen=True)
class Table:
    """How to read a tabular loader's raw matrix, and the settings for its transform."""

    columns: tuple[Column, ...]
    encoding: Literal["onehot", "integer"] = "onehot"
    strategies: dict[str, str] = field(default_factory=dict)  # column -> fill strategy
    fill_value: int | float | str | None = None

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]


def fit_table(table: Table, x: np.ndarray, scaling: str) -> dict[str, Any]:
    """Learn fill values, vocabularies and scaling from the training split ``x``."""
    import numpy as np

    from trainer.datasets.lazy import is_lazy

    entries = []
    for i, column in enumerate(table.columns):
        values = x.column(i) if is_lazy(x) else x[:, i]  # a streamed table: one column read
        present = values[~np.isnan(values)]
        strategy = table.strategies.get(column.name)
        entry: dict[str, Any] = {"name": column.name, "type": column.kind, "missing": strategy}
        if column.kind == "numeric":
            fill = _numeric_fill(column.name, strategy, present, table.fill_value)
            filled = present if fill is None else np.where(np.isnan(values), fill, values)
            entry["fill"] = fill
            entry["offset"], entry["scale"] = _scaling(scaling, filled)
        else:
            seen = [column.categories[int(c)] for c in np.unique(present)]
            fill = _categorical_fill(column, strategy, present, table.fill_value)
            entry["fill"] = fill
            entry["categories"] = sorted(set(seen) | ({fill} if fill is not None else set()))
        entries.append(entry)
    return {
        "kind": "table",
        "encoding": table.encoding,
        "scaling": scaling,
        "columns": entries,
        "features": feature_names(entries, table.encoding),
    }


def feature_names(entries: list[dict[str, Any]], encoding: str) -> list[str]:
    """The model's input features in order: one per numeric column, one per category."""
    names = []
    for entry in entries:
        if entry["type"] == "categorical" and encoding == "onehot":
            names += [f"{entry['name']}={category}" for category in entry["categories"]]
        else:
            names.append(entry["name"])
    return names


def scaling_summary(state: dict[str, Any]) -> dict[str, Any]:
    """Per-feature scaling statistics, in the form array datasets report them."""
    method = state.get("scaling")
    if method not in ("unit", "standard"):
        return {"method": method}
    offsets, scales = [], []
    for entry in state["columns"]:
        numeric = entry["type"] == "numeric"
        width = 1 if numeric or state["encoding"] != "onehot" else len(entry["categories"])
        offset, scale = (entry["offset"], entry["scale"]) if numeric else (0.0, 1.0)
        offsets += [offset] * width
        scales += [scale] * width
    if method == "standard":
        return {"method": method, "mean": offsets, "std": scales}
    highs = [low + scale for low, scale in zip(offsets, scales, strict=True)]
    return {"method": method, "min": offsets, "max": highs}


def _numeric_fill(name: str, strategy, present, fill_value) -> float | None:
    import numpy as np

    if strategy is None or strategy == "drop":
        return None
    if strategy == "constant":
        value = DEFAULT_FILL["numeric"] if fill_value is None else fill_value
        try:
            return float(value)
        except ValueError:
            raise DataError(
                f"column '{name}' is numeric but missing.fill_value is {value!r}, not a number",
                hint="give a numeric fill_value, or a per-column strategy for this column",
            ) from None
    if present.size == 0:
        raise DataError(
            f"column '{name}' has no values in the training split, so its {strategy} is "
            "undefined and imputation would leave non-finite values",
            hint=f"use missing.columns: {{{name}: constant}} or drop the column with "
            f"columns: {{{name}: ignore}}",
        )
    if strategy == "mean":
        return float(present.mean())
    if strategy == "median":
        return float(np.median(present))
    values, counts = np.unique(present, return_counts=True)
    return float(values[counts.argmax()])  # the smallest of the most frequent values


def _categorical_fill(column: Column, strategy, present, fill_value) -> str | None:
    import numpy as np

    if strategy is None or strategy == "drop":
        return None
    if strategy == "constant":
        return DEFAULT_FILL["categorical"] if fill_value is None else str(fill_value)
    if present.size == 0:
        raise DataError(
            f"column '{column.name}' has no values in the training split, so it has no most "
            "frequent category to fill missing values with",
            hint=f"use missing.columns: {{{column.name}: constant}} or drop the column with "
            f"columns: {{{column.name}: ignore}}",
        )
    codes, counts = np.unique(present, return_counts=True)
    best = [column.categories[int(c)] for c in codes[counts == counts.max()]]
    return min(best)  # ties: the first in sorted order, so the choice does not depend on order


def _scaling(method: str, values) -> tuple[float, float]:
    """(offset, scale) so that (value - offset) / scale is the scaled value."""
    import numpy as np

    values = values[~np.isnan(values)]
    if method in ("none", "default") or values.size == 0:
        return 0.0, 1.0
    if method == "unit":
        low, high = float(values.min()), float(values.max())
        return low, (high - low) if high > low else 1.0
    with np.errstate(over="ignore", invalid="ignore"):  # huge values: checked finite later
        mean, std = float(values.mean()), float(values.std())
    return mean, std if std > 0 else 1.0


def apply_table(state: dict[str, Any], table: Table, x, split: str) -> tuple[np.ndarray, list[str]]:
    """Transform the raw matrix ``x`` of one split with fitted (or saved) ``state``.

    Returns the float32 features and warnings (categories never seen in training, which
    encode as all zeros with one-hot encoding and as -1 with integer encoding). A streamed
    table's features are written, a chunk of rows at a time, into a file beside its raw
    matrix (:mod:`trainer.datasets.spill`); they are the same bits as in memory.
    """
    import numpy as np

    from trainer.datasets.lazy import is_lazy

    entries = _check_state(state, table)
    names = feature_names(entries, state["encoding"])
    unseen: dict[str, list] = {}  # column -> [rows, the categories seen]
    if not is_lazy(x):
        from trainer.datasets.memory import aligned_empty

        features = aligned_empty((len(x), len(names)), np.float32)  # shareable with TensorFlow
        _apply_rows(entries, state, table, x, split, unseen, features)
        _check_finite(features, names, split)
        return features, _unseen_warnings(unseen, split, state["encoding"])
    out = x.spill(len(names))  # a streamed table's: a file beside its raw matrix
    for low, rows in x.chunks():
        features = out.data[low : low + len(rows)]
        _apply_rows(entries, state, table, rows, split, unseen, features, first=low)
        _check_finite(features, names, split, first=low)
    return out, _unseen_warnings(unseen, split, state["encoding"])


def _apply_rows(entries, state, table: Table, x: np.ndarray, split: str, unseen: dict,
                out: np.ndarray, first: int = 0) -> np.ndarray:  # fmt: skip
    """Write the float32 features of the raw rows ``x`` (rows ``first`` on of the split) into
    ``out``, a column block at a time: no float64 copy of the whole is ever made."""
    import numpy as np

    index = {column.name: i for i, column in enumerate(table.columns)}
    at = 0  # the next feature column of out
    for entry in entries:
        name = entry["name"]
        column = table.columns[index[name]]
        values = x[:, index[name]]
        missing = np.isnan(values)
        if missing.any() and entry.get("fill") is None:
            raise DataError(
                f"column '{name}' has missing value(s) in the {split} split (the first in row "
                f"{first + int(np.flatnonzero(missing)[0]) + 1}), and the preprocessing has no "
                "fill value for it",
                hint="set dataset.missing (e.g. missing: {strategy: median})",
            )
        if column.kind == "numeric":
            filled = np.where(missing, entry["fill"] if missing.any() else 0.0, values)
            out[:, at] = (filled - entry["offset"]) / entry["scale"]  # float64, then rounded
            at += 1
            continue
        vocabulary = {category: i for i, category in enumerate(entry["categories"])}
        lookup = np.array([vocabulary.get(c, -1) for c in column.categories] or [-1])
        codes = np.full(len(values), -1, dtype=np.int64)
        codes[~missing] = lookup[values[~missing].astype(np.int64)]
        if missing.any():
            codes[missing] = vocabulary.get(entry["fill"], -1)
        new = (codes < 0) & ~missing
        if new.any():
            seen = unseen.setdefault(name, [0, set()])
            seen[0] += int(new.sum())
            seen[1] |= {column.categories[int(c)] for c in values[new]}
        if state["encoding"] == "onehot":
            block = out[:, at : at + len(vocabulary)]
            block[...] = 0.0
            rows = np.flatnonzero(codes >= 0)
            block[rows, codes[rows]] = 1.0
            at += len(vocabulary)
        else:
            out[:, at] = codes
            at += 1
    return out


def _unseen_warnings(unseen: dict[str, list], split: str, encoding: str) -> list[str]:
    warnings = []
    for name, (rows, categories) in unseen.items():
        listed = ", ".join(repr(e) for e in sorted(categories)[:MAX_LISTED])
        warnings.append(
            f"column '{name}': {rows} row(s) of the {split} split hold categories the training "
            f"split lacks ({listed}); they encode as "
            + ("all zeros" if encoding == "onehot" else "-1")
        )
    return warnings


def _check_state(state: dict[str, Any], table: Table) -> list[dict[str, Any]]:
    """The saved state's column entries, after checking that they fit this table."""
    if not isinstance(state, dict) or state.get("kind") != "table":
        kind = state.get("kind") if isinstance(state, dict) else type(state).__name__
        raise DataError(
            f"the preprocessing given is for a '{kind}' dataset, not a table (CSV) one",
            hint="re-apply the preprocessing.json saved by a run on this same dataset",
        )
    lacking = [key for key in ("columns", "encoding") if key not in state]
    if lacking:
        raise DataError(f"the preprocessing given lacks {', '.join(lacking)}; it is damaged")
    entries = list(state["columns"])
    kinds = {column.name: column.kind for column in table.columns}
    saved = {entry["name"]: entry["type"] for entry in entries}
    if saved != kinds:
        lacking = sorted(set(saved) - set(kinds))
        extra = sorted(set(kinds) - set(saved))
        changed = sorted(n for n in set(saved) & set(kinds) if saved[n] != kinds[n])
        parts = [f"the data lacks column(s) {', '.join(lacking)}"] if lacking else []
        parts += [f"it has new column(s) {', '.join(extra)}"] if extra else []
        parts += [f"column(s) {', '.join(changed)} changed type"] if changed else []
        raise DataError(
            "the saved preprocessing does not fit this data: " + "; ".join(parts),
            hint="evaluate with data laid out like the training data",
        )
    return entries


def _check_finite(features, names: list[str], split: str, first: int = 0) -> None:
    import numpy as np

    bad = ~np.isfinite(features)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        name = names[col] if col < len(names) else str(col)
        raise DataError(
            f"column '{name}' holds non-finite values after imputation and scaling in the "
            f"{split} split ({int(bad[:, col].sum())} value(s), the first in row "
            f"{first + row + 1})",
            hint="values beyond float32's range (about 3.4e38) overflow; rescale the column",
        )
