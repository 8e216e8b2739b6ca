"""The one error type for bad input, so callers can tell a mistake to fix from a bug.

Every error pahf raises because of what it was given (a malformed data file, a store location
that is not a directory, a run directory holding other settings, a missing API key) derives
from :class:`InputError`; the ``pahf`` command prints those as one line with exit status 2 and
shows anything else as the bug it is.
"""

from __future__ import annotations


class InputError(ValueError):
    """What pahf was given is wrong; the message names what and where, to fix it without code.

    A ``ValueError`` so code that caught the older, unspecific errors keeps working.
    """
