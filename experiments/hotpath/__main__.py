"""``python -m experiments.hotpath``: what one request costs in process (experiments.studies.hotpath)."""

import sys

from experiments.studies.hotpath import main

sys.exit(main())
