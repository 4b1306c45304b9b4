"""The lab: ``lab.py`` runs it on the engine (``engine/``); ``reports/`` and ``studies/`` read the engine's results.

``data/`` seeds members and mints their tokens; each other folder holds one command's ``__main__``
(``python -m experiments.plan`` and the like).
"""
