"""Tracking with MLflow: the repository's store (``store``), runs and their tags (``runs``), what training
logs (``training_log``), test results written once into the right run (``evaluation_runs``), the
training record beside each model (``records``), the registry and ``@champion`` (``registry``), and
what happens when the store fails (``faults``, ``heartbeat``, ``client_settings``, ``watchdog``).
May import ``core``, ``data``, ``models`` and ``evaluation``.
"""
