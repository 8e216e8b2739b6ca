"""``python -m pahf ...`` is the ``pahf`` command (for environments without its script)."""

import sys

from pahf.cli import main

if __name__ == "__main__":
    sys.exit(main())
