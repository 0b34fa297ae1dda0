"""``python -m auditor.cli``: the same as the ``auditor`` console script."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
