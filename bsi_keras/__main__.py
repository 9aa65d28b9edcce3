"""``python -m bsi_keras`` is ``python -m bsi_keras.run``."""

import sys

from bsi_keras.run import main

sys.exit(main())
