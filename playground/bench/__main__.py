"""``python -m playground.bench``: the comparison benchmark CLI (see ``playground.bench.cli``)."""

import sys

from playground.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
