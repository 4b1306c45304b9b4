"""``python -m experiments.rtt``: TPS against RTT for one or more lab reports (experiments.reports.rtt_plot)."""

import sys

from experiments.reports.rtt_plot import main

sys.exit(main())
