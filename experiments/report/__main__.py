"""``python -m experiments.report``: a lab report rendered again from its results.json (experiments.reports.report)."""

import sys

from experiments.reports.report import main

sys.exit(main())
