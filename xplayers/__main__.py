"""`python -m xplayers`: the same as the `xplayers` command."""

import sys

from xplayers.cli import main

if __name__ == "__main__":
    sys.exit(main())
