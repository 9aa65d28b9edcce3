"""``python -m bsi_keras.launch``: the command line of `bsi_keras.cli.launch`."""

import sys

from bsi_keras.cli.launch import main

if __name__ == "__main__":
    sys.exit(main())
