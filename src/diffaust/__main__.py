"""`python -m diffaust`: the `diffaust` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
