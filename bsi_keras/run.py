"""``python -m bsi_keras.run``: the command line of `bsi_keras.cli.run`."""

import sys

from bsi_keras.cli.run import main

if __name__ == "__main__":
    sys.exit(main())
