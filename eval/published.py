"""Load the published PAHF benchmark data (facebookresearch/PAHF layout) as a :class:`Benchmark`.

Point it at the folder that holds ``data/`` or at ``data/`` itself::

    load_published("../shared/pahf-reference-sample", "embodied")

Layout read: ``data/embodied/scenarios/{original,evolved}_scenarios_{A,B}.json`` with
``data/embodied/personas/{original,evolved}_persona.py`` (see
:mod:`pahf.eval.published_embodied`), and ``data/shopping/phase{1..4}.json`` with
``data/shopping/{persona_info,updated_persona_info}.json`` (see
:mod:`pahf.eval.published_shopping`). Any problem in the files raises :class:`DataError`
(a ``ValueError``) naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pahf.eval.episodes import Benchmark
from pahf.eval.errors import DataError
from pahf.eval.published_embodied import load_embodied
from pahf.eval.published_shopping import load_shopping

__all__ = ["DataError", "data_root", "load_published"]


def data_root(data_dir: str | Path) -> Path:
    """The ``data`` folder: ``data_dir/data`` if it exists, else ``data_dir`` itself when it holds
    ``embodied/`` or ``shopping/``."""
    base = Path(data_dir).expanduser()
    if not base.exists():
        raise DataError(base, "data directory not found")
    if not base.is_dir():
        raise DataError(base, "not a directory")
    if (base / "data").is_dir():
        return base / "data"
    if (base / "embodied").is_dir() or (base / "shopping").is_dir():
        return base
    raise DataError(base, "no data/, embodied/ or shopping/ folder inside (PAHF data layout)")


def load_published(
    data_dir: str | Path, domain: Literal["embodied", "shopping"]
) -> Benchmark:
    """All four phases of one domain of the published PAHF data."""
    root = data_root(data_dir)
    if domain == "embodied":
        return load_embodied(root / "embodied")
    if domain == "shopping":
        return load_shopping(root / "shopping")
    raise ValueError(f"unknown domain {domain!r}; choose 'embodied' or 'shopping'")
