"""What the warm server loads before it serves: the libraries the stages use, and nothing of the project.

``PRELOAD`` is every third-party module a stage imports (tests/unit/core/test_warm.py checks it against
the stages' imports), then what those libraries import only when a stage first calls them (found by
profiling warm stages; ``DIGITFLOW_SERVER_TRACE`` and benchmarks/warm_bench.py show what a warm stage
still imports). A library a cold stage would import after its own set-up may change process state when
it loads; what differs from a cold stage because it loaded first is put back here or in each child.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
from collections.abc import Callable, MutableMapping

PRELOAD = (
    "numpy", "yaml", "pydantic", "filelock", "tqdm.auto", "PIL.Image",
    "scipy", "pandas", "sklearn", "sklearn.datasets", "sklearn.linear_model", "sklearn.metrics",
    "sklearn.model_selection", "sklearn.pipeline", "sklearn.preprocessing",
    "torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch._dynamo",
    "torchvision.datasets", "torchvision.datasets.utils",
    "matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg",
    "openpyxl", "openpyxl.utils", "openpyxl.worksheet.worksheet",
    "mlflow", "mlflow.data", "mlflow.entities", "mlflow.exceptions", "mlflow.models", "mlflow.types",
    "mlflow.utils.mlflow_tags", "mlflow.sklearn", "mlflow.pytorch", "mlflow.pyfunc",
    # Called, not imported, by the stages: the MLflow store on SQLite and its schema check (SQLAlchemy,
    # Alembic), the git context of a run (GitPython), model logging (requirements, signatures, the
    # scoring server's input check; torch.export for PyTorch models), images, workbooks, CSV.
    "sqlite3", "sqlalchemy.dialects.sqlite", "alembic.command", "alembic.config", "alembic.migration",
    "alembic.script", "alembic.runtime.migration", "mlflow.store.db.utils",
    "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store", "git",
    "mlflow.store.tracking.sqlalchemy_workspace_store", "mlflow.store.model_registry.sqlalchemy_workspace_store",
    "mlflow.tracing.export", "mlflow.tracing.processor", "mlflow.pyfunc.utils.environment",
    "opentelemetry.sdk.metrics", "mlflow.utils.requirements_utils", "mlflow.utils.environment",
    "mlflow.models.display_utils", "mlflow.pyfunc.scoring_server", "mlflow.utils.name_utils", "email.policy",
    "torch.export", "torch.export._trace", "torch._export.passes", "torch._inductor.codecache", "torch._inductor.ir",
    "torch._functorch.aot_autograd", "torch.fx.experimental.validator", "torch.utils.serialization", "networkx",
    "sympy", "sympy.combinatorics", "sympy.tensor.tensor",
    "PIL.BmpImagePlugin", "PIL.GifImagePlugin", "PIL.JpegImagePlugin", "PIL.PngImagePlugin", "PIL.PpmImagePlugin",
    "openpyxl.packaging.extended", "pandas.io.formats.csvs", "pandas.io.formats.excel", "pandas.io.formats.string",
    "pandas.core.methods.to_dict", "pyarrow.pandas_compat", "pyarrow.vendored.version", "sklearn.datasets.data",
    "sklearn.datasets.descr",
)  # fmt: skip
# The project modules the server itself runs; each child drops them and imports every project module
# fresh, from its stage's folder.
OWN_MODULES = ("digitflow", "digitflow.core", "digitflow.core.determinism", "digitflow.core.warm")
JEMALLOC_CONF_ENV, NO_JEMALLOC_THREAD = "JE_ARROW_MALLOC_CONF", "background_thread:false"


def own_module(name: str) -> bool:
    return name in OWN_MODULES or name.startswith("digitflow.core.warm.")


def project_module(name: str) -> bool:
    return name.split(".")[0] in {"digitflow", "stages"}


def thread_free_environment(environ: MutableMapping[str, str]) -> None:
    """Libraries that would start threads when imported, told not to: MLflow's telemetry, and the
    background purging thread of PyArrow's jemalloc (pandas imports PyArrow). Neither changes a result;
    jemalloc stops that thread in a forked child anyway. The children get the command's environment."""
    environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    conf = environ.get(JEMALLOC_CONF_ENV)
    environ[JEMALLOC_CONF_ENV] = f"{conf},{NO_JEMALLOC_THREAD}" if conf else NO_JEMALLOC_THREAD


def preload(log: Callable[[str], None]) -> tuple[list[str], dict[str, str]]:
    """Import ``PRELOAD``; the names imported and the environment variables the imports set (PyTorch
    sets ``KMP_DUPLICATE_LIB_OK``, ``TORCHINDUCTOR_CACHE_DIR``, ...: a cold stage would have them once
    it imported the same library, so each child sets them again). A library that fails to import is
    left to the children and logged. The root logger is put back as it was: ``mlflow.pytorch`` calls
    ``logging.basicConfig`` when imported, which in a cold stage comes after the stage's own and so
    does nothing."""
    environ = dict(os.environ)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    loaded = []
    for name in PRELOAD:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception as exc:
            log(f"not preloaded: {name}: {exc!r}")
    root.handlers[:] = handlers
    root.setLevel(level)
    warm_up(log)
    # Everything loaded so far lives as long as the server: keep it out of the children's garbage
    # collections (a full one would walk 700,000 objects, 0.8 s, and copy every page it touches).
    gc.collect()
    gc.freeze()
    return loaded, {name: value for name, value in os.environ.items() if environ.get(name) != value}


def warm_up(log: Callable[[str], None]) -> None:
    """Work every stage that logs a model repeats, with the same result, on the installed packages
    alone (which the key fixes): MLflow's map from modules to their distributions, read from every
    package's metadata (2-3 s) when it checks a model's requirements."""
    try:
        from mlflow.utils import requirements_utils

        requirements_utils._init_modules_to_packages_map()
        requirements_utils._init_packages_to_modules_map()
    except Exception as exc:
        log(f"warm-up skipped: {exc!r}")
