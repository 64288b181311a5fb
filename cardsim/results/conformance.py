"""Does an output folder match the output schema? Every file, column and JSON key written must
be listed in cardsim.results.outputs, with its type, and everything listed must be written.

`check_folder` returns the differences as sentences (empty: the folder conforms), so a test
can show all of them at once and a user can check a folder from another version.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cardsim.results.schema import KPIS, Column, OutputFile

KPI_DTYPES = {
    "parquet": {"integer": "int64", "number": "double", "number|null": "double"},
    "csv": {"integer": "int64", "number": "float64", "number|null": "float64"},
    "json": {"integer": "integer", "number": "number", "number|null": "number|null"},
}
"""The type of a KPI column in each format, by the KPI's kind."""


def expand(file: OutputFile, params: Sequence[str]) -> list[Column]:
    """The file's columns with `{kpi}` and `{param}` replaced by every KPI and varied field."""
    out = []
    for column in file.columns:
        if "{kpi}" in column.name:
            for kpi in KPIS:
                dtype = KPI_DTYPES[file.format][kpi.kind] if column.dtype == "kpi" else column.dtype
                out.append(Column(column.name.replace("{kpi}", kpi.name), dtype, column.meaning))
        elif "{param}" in column.name:
            out += [Column(column.name.replace("{param}", p), column.dtype, "") for p in params]
        else:
            out.append(column)
    return out


def check_folder(
    folder: Path, files: Sequence[OutputFile], params: Sequence[str] = ()
) -> list[str]:
    """Differences between `folder` and the listed `files` (`params`: the varied fields)."""
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    problems = [
        f"{path}: written but not in cardsim/results/outputs.py"
        for path in written
        if not any(fnmatch(path, f.path) for f in files)
    ]
    for file in files:
        matches = [path for path in written if fnmatch(path, file.path)]
        if not matches and not file.when:
            problems.append(f"{file.path}: listed in cardsim/results/outputs.py but not written")
        for path in matches:
            expected = expand(file, params)
            actual = dict(_written_columns(folder / path, file.format, expected))
            problems += [f"{path}: {p}" for p in _compare(file, expected, actual)]
    return problems


def _compare(file: OutputFile, expected: list[Column], actual: dict[str, set[str]]) -> list[str]:
    """A listed name may hold `*`: it stands for every written name it matches (fnmatch)."""
    listed = {c.name: c.dtype for c in expected}
    problems = []
    seen = dict.fromkeys(listed, False)
    for name, types in actual.items():
        owners = [n for n in listed if n == name or ("*" in n and fnmatch(name, n))]
        if not owners:
            problems.append(f"{name} written but not listed")
            continue
        seen[owners[0]] = True
        wrong = sorted(t for t in types if not _fits(t, listed[owners[0]], file.format))
        if wrong:
            problems.append(f"{name} is {', '.join(wrong)}, listed as {listed[owners[0]]}")
    for name, found in seen.items():
        if not found and not file.may_miss(name):
            problems.append(f"{name} listed but not written")
    return problems


def _fits(written: str, listed: str, fmt: str) -> bool:
    """A written type agrees with the listed one, or with one of `a|b` (whole numbers may fill
    a float CSV column or a JSON number)."""
    options = listed.split("|")
    if listed == "any" or written == "empty" or written in options:
        return True
    if fmt == "csv":
        return written == "int64" and "float64" in options
    if fmt == "json":
        return written == "integer" and "number" in options
    return False


def _written_columns(
    path: Path, fmt: str, expected: list[Column]
) -> Iterator[tuple[str, set[str]]]:
    """(name, the set of types seen) for each column or JSON key of one file."""
    if fmt == "parquet":
        for field in pq.read_schema(path):
            yield field.name, {arrow_dtype(field.type)}
    elif fmt == "csv":
        table = pd.read_csv(path)
        for name in table.columns:
            # A column with no values at all has no type to check (CSV does not keep one).
            empty = bool(table[name].isna().all())
            yield str(name), {"empty" if empty else _pandas_dtype(table[name].dtype)}
    elif fmt == "json":
        keys: dict[str, set[str]] = {}
        _walk(json.loads(path.read_text()), "", {c.name: c.dtype for c in expected}, keys)
        yield from keys.items()


def arrow_dtype(dtype: pa.DataType) -> str:
    """Arrow type as the schema lists it: large strings are strings, dictionaries by value."""
    if pa.types.is_dictionary(dtype):
        return f"dictionary<{arrow_dtype(dtype.value_type)}>"
    if pa.types.is_large_string(dtype):
        return "string"
    return str(dtype)


def _pandas_dtype(dtype: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int64"
    if pd.api.types.is_float_dtype(dtype):
        return "float64"
    return "string"


def _walk(value: Any, path: str, listed: dict[str, str], keys: dict[str, set[str]]) -> None:
    """Record the JSON type of every key, descending where the schema lists keys below it."""
    below = [name for name in listed if name.startswith(path + ".")] if path else list(listed)
    inside = [name for name in listed if name.startswith(path + "[].")]
    if isinstance(value, dict) and (below or not path) and listed.get(path) != "map":
        if path in listed:
            keys.setdefault(path, set()).add("object")
        for key, item in value.items():
            _walk(item, f"{path}.{key}" if path else key, listed, keys)
    elif isinstance(value, list) and inside:
        if path in listed:
            keys.setdefault(path, set()).add("array")
        for name in inside if not value else ():
            keys.setdefault(name, set())  # an empty array has every listed key, vacuously
        for item in value:
            _walk(item, path + "[]", listed, keys)
    else:
        keys.setdefault(path, set()).add(_json_type(value, listed.get(path, "")))


def _json_type(value: Any, listed: str) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "map" if listed == "map" else "object"
