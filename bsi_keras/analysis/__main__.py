"""``python -m bsi_keras.analysis`` is the landscape command line (`landscape.main`).

The package imports `bsi_keras.analysis.landscape` itself, so running that module with
``-m`` would execute it twice (runpy warns); this entry point avoids it.
"""

import sys

from bsi_keras.analysis.landscape import main

sys.exit(main())
