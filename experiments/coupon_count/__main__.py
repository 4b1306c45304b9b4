"""``python -m experiments.coupon_count``: cost against the coupon count (experiments.studies.coupon_count)."""

import sys

from experiments.studies.coupon_count import main

sys.exit(main())
