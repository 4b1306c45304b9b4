"""``python -m experiments.plan``: a capacity plan from a lab report (experiments.reports.plan)."""

import sys

from experiments.reports.plan import main

sys.exit(main())
