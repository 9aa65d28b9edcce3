"""``python -m bsi_keras.report``: the command line of `bsi_keras.cli.report`."""

import sys

from bsi_keras.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
