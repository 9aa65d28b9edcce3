"""``python -m bsi_keras.sweep``: the command line of `bsi_keras.cli.sweep`."""

import sys

from bsi_keras.cli.sweep import main

if __name__ == "__main__":
    sys.exit(main())
