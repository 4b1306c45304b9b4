"""``python -m experiments.tokens``: access tokens for existing members (experiments.data.tokens)."""

import sys

from experiments.data.tokens import main

sys.exit(main())
