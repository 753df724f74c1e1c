"""Sweeps: an Optuna study shared through a database, whose trials are DVC experiments (``dvc exp run
--temp``): the search space (``space``), the shared study (``study``), a worker's trials (``worker``),
the DVC side of a trial (``experiments``) and what a person gets at the end (``results``).
May import every layer up to ``tracking``; not ``reporting`` or ``team``.
"""
