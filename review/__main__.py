"""`python -m review <command>`: see `review.cli`."""

import sys

from review.cli import main

if __name__ == "__main__":
    sys.exit(main())
