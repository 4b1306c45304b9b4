"""``python -m experiments.seed``: the study's data (experiments.data.seed)."""

import sys

from experiments.data.seed import main

sys.exit(main())
