"""``python -m pahf.bench ...`` is ``pahf bench ...``."""

import sys

from pahf.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
