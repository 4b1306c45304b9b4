"""``python -m experiments.durability``: what Redis durability costs lua (experiments.studies.durability)."""

import sys

from experiments.studies.durability import main

sys.exit(main())
