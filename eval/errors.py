"""The error every benchmark loader raises for bad data: it names the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pahf.errors import InputError


class DataError(InputError):
    """A benchmark file is missing, malformed or inconsistent.

    The message always starts with the file, then the field (when one is at fault), so a user
    can fix the data without reading the loader: ``phase1.json: item 3: 'Option A': empty``.
    """

    def __init__(self, path: Path | str, problem: str, field: str | None = None) -> None:
        self.path = Path(path)
        self.field = field
        self.problem = problem
        where = f"{self.path}: {field}: " if field else f"{self.path}: "
        super().__init__(where + problem)

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its fields when pickled (worker processes), not from its message.
        return (type(self), (self.path, self.problem, self.field))
