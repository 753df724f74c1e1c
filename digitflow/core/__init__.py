"""The base layer: what every other layer shares and nothing depends on.

Errors a user can act on, every path (``paths``) and every setting (``params``), atomic file output
(``io``) and input reading with repair advice (``inputs``), what ``dvc.yaml``/``dvc.lock`` record
(``dvc_files``), pinned CPU kernels (``determinism``), progress output, the shell every stage and
command runs in (``shell``), shared names (models, titles, metric directions), git and process helpers,
and the warm stage server that runs the stages without paying their imports (``warm``, which imports the
heavy libraries only in its own server process).
Imports no other layer of digitflow, and no heavy library at import time.
"""
