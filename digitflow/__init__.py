"""digitflow: a reproducible DVC + MLflow pipeline that classifies handwritten digits.

The package is layered; data flows one way, and a module imports only from its own layer and the ones
before it (``tests/project/test_layers.py`` holds the rule):

    core        errors, paths, params, atomic I/O, the stage shell, shared names, git, processes
    data        datasets, the split, the MNIST download, picture folders, checks (imports core)
    models      the two models, their card and folder, predicting image files (core, data)
    evaluation  metrics, figures, the evaluation log and workbook             (core .. models)
    tracking    the MLflow store, runs, faults, records, registry             (core .. evaluation)
    reporting   the Markdown report, offline plots, the pull-request comment  (core .. tracking)
    sweep       Optuna studies whose trials are DVC experiments               (core .. tracking)
    team        the team stack: PostgreSQL, S3, an MLflow server              (core .. tracking)
    cli         ``digitflow <command>``                                       (everything)

``stages/`` (one thin module per DVC stage) sits on top like ``cli``. Subpackage ``__init__`` modules
import nothing, so a stage pays only for the libraries of the modules it uses.
"""

__version__ = "0.1.0"
