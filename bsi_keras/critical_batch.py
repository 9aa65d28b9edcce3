"""``python -m bsi_keras.critical_batch``: the command line of `bsi_keras.cli.critical_batch`."""

import sys

from bsi_keras.cli.critical_batch import main

if __name__ == "__main__":
    sys.exit(main())
