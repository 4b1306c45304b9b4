"""``python -m experiments.worker --master HOST:PORT``: a Locust worker for the lab (experiments.engine.remote)."""

import sys

from experiments.engine.remote import main

sys.exit(main())
