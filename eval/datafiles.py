"""Strict reading of benchmark JSON: each problem is a :class:`DataError` naming file and field.

Duplicate keys are refused rather than silently collapsed (Python's ``json`` keeps the last one),
because in benchmark data a repeated ``"Option A"`` or user is always a mistake.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, TypeVar

from pahf.eval.errors import DataError

T = TypeVar("T")


def read_json(path: Path) -> Any:
    """The parsed JSON in ``path``; missing, unreadable, malformed or duplicate-key files raise."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except IsADirectoryError:
        raise DataError(path, "is a directory, expected a JSON file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read: {exc}") from exc

    def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise DataError(path, f"duplicate key {key!r} in one JSON object")
            seen[key] = value
        return seen

    try:
        return json.loads(raw, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise DataError(path, f"malformed JSON ({where}): {exc.msg}") from None


def require(path: Path, where: str, obj: dict[str, Any], key: str, kind: type[T]) -> T:
    """``obj[key]`` if present and of type ``kind``; else a DataError naming ``where.key``."""
    if key not in obj:
        raise DataError(path, "missing field", field=f"{where}: {key!r}")
    value = obj[key]
    if kind is str and isinstance(value, str):
        if not value.strip():
            raise DataError(path, "empty string", field=f"{where}: {key!r}")
        return value  # type: ignore[return-value]
    if kind is int and isinstance(value, bool):
        raise DataError(path, "expected an integer, got a boolean", field=f"{where}: {key!r}")
    if not isinstance(value, kind):
        raise DataError(
            path,
            f"expected {kind.__name__}, got {type(value).__name__}",
            field=f"{where}: {key!r}",
        )
    return value


def string_list(path: Path, where: str, obj: dict[str, Any], key: str) -> list[str]:
    """``obj[key]`` as a non-empty list of distinct non-empty strings."""
    value = require(path, where, obj, key, list)
    if not value:
        raise DataError(path, "empty list", field=f"{where}: {key!r}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise DataError(
                path,
                f"item {i} must be a non-empty string, got {item!r}",
                field=f"{where}: {key!r}",
            )
    counts = Counter(value)  # linear: list.count per item hung on a 100k-option list
    dupes = sorted(v for v, n in counts.items() if n > 1)
    if dupes:
        raise DataError(path, f"duplicate entries {dupes}", field=f"{where}: {key!r}")
    return list(value)


def object_list(path: Path, data: Any) -> list[dict[str, Any]]:
    """The top level of a file that must be a list of JSON objects."""
    if not isinstance(data, list):
        raise DataError(path, f"expected a JSON list of items, got {type(data).__name__}")
    if not data:
        raise DataError(path, "no items")
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise DataError(path, f"expected an object, got {type(item).__name__}", f"item {i}")
    return data


def object_map(path: Path, where: str, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise DataError(path, f"expected a JSON object, got {type(data).__name__}", field=where)
    return data
