"""``python -m experiments.compare``: two lab reports side by side (experiments.reports.compare)."""

import sys

from experiments.reports.compare import main

sys.exit(main())
