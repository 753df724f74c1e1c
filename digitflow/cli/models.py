"""Using the trained models: ``digitflow promote``, ``serve`` and ``predict``.

They use the same MLflow store as the pipeline (``mlflow.db`` at the repository root, or
``MLFLOW_TRACKING_URI``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from digitflow.core.errors import DigitflowError
from digitflow.core.names import MODEL_NAMES, REGISTERED_MODELS


def _promote(args: argparse.Namespace) -> None:
    import mlflow

    from digitflow.tracking.registry import promote
    from digitflow.tracking.store import tracking_uri

    branch = None if args.any_branch else args.branch
    result = promote(args.model, args.metric, args.version, args.force, mlflow.MlflowClient(tracking_uri()), branch)
    print(result.describe())


def serve_command(folder: Path, host: str, port: int) -> list[str]:
    """``mlflow models serve`` of the champion's checked files, in this environment (no virtualenv to build
    offline)."""
    return ["mlflow", "models", "serve", "-m", str(folder), "--host", host, "--port", str(port),
            "--env-manager", "local"]  # fmt: skip


LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


def exposure_warning(host: str) -> str | None:
    """What to say when the model is served beyond this machine: ``mlflow models serve`` has no login."""
    if host in LOOPBACK_HOSTS or host.startswith("127."):
        return None
    return (
        f"warning: --host {host} serves the model to anyone who can reach this machine's port: `mlflow models "
        "serve` has no authentication and no TLS. Put it behind a proxy that has them, or keep --host 127.0.0.1."
    )


def _serve(args: argparse.Namespace) -> None:
    import mlflow

    from digitflow.tracking.registry import CHAMPION, champion_files
    from digitflow.tracking.store import tracking_uri

    if warning := exposure_warning(args.host):
        print(warning, file=sys.stderr)
    uri = tracking_uri()
    name = REGISTERED_MODELS[args.model]
    # Served from a local copy whose files match the digest recorded at registration: nothing written to
    # the artifact store since then is read, and the copy cannot change between the check and the load.
    version, folder = champion_files(args.model, mlflow.MlflowClient(uri))
    command = serve_command(folder, args.host, args.port)
    print(
        f"serving {name}@{CHAMPION} (version {version.version}, files checked) on "
        f"http://{args.host}:{args.port}/invocations",
        file=sys.stderr,
    )
    sys.stderr.flush()
    # Pickle refused: PyTorch's pt2 archive is read with torch's restricted unpickler, the scikit-learn model
    # is numbers only (models/sklearn_pyfunc.py).
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}
    os.execvpe(command[0], command, env)


def _predict(args: argparse.Namespace) -> None:
    from digitflow.models.predict import convert_files, local_predictor, pixel_rows, predicted_classes

    missing = [str(f) for f in args.images if not Path(f).is_file()]
    if missing:
        raise DigitflowError(f"no such image file: {', '.join(missing)}")
    if args.source == "champion":
        from digitflow.tracking.registry import champion_predictor
        from digitflow.tracking.store import tracking_uri

        os.environ.setdefault("MLFLOW_TRACKING_URI", tracking_uri())
        predictor, card = champion_predictor(args.model)
    else:
        predictor, card = local_predictor(args.model)
    conversions = convert_files(args.images, card)
    proba = predictor(pixel_rows(conversions))
    for file, (name, probability) in zip(args.images, predicted_classes(proba, card), strict=True):
        print(f"{file}: {name} (probability {probability:.3f})")
    if args.show:
        from digitflow.models.views import write_views

        written = write_views(args.show, args.images, conversions, proba, card)
        print(f"what the model saw: {len(written)} PNG files in {args.show}", file=sys.stderr)


def register(commands: Any) -> None:
    models = list(MODEL_NAMES)

    promote = commands.add_parser("promote", help="move the alias @champion to the best (or a given) version")
    promote.add_argument("model", choices=models)
    promote.add_argument("--metric", default="test_accuracy", help="test metric that ranks versions")
    promote.add_argument("--version", help="promote this version instead of the best one")
    promote.add_argument("--force", action="store_true", help="promote even if worse than the current champion")
    promote.add_argument(
        "--branch", default="main", help="consider the versions trained on this git branch (default main)"
    )
    promote.add_argument("--any-branch", action="store_true", help="consider every branch's versions")
    promote.set_defaults(handler=_promote)

    serve = commands.add_parser("serve", help="serve the champion over REST (mlflow models serve)")
    serve.add_argument("model", choices=models)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5001)
    serve.set_defaults(handler=_serve)

    predict = commands.add_parser("predict", help="predict the class (the digit) of image files (PNG, JPEG)")
    predict.add_argument("images", nargs="+", type=Path)
    predict.add_argument("--model", choices=models, default="torch")
    predict.add_argument(
        "--source", choices=["models", "champion"], default="models",
        help="models: the pipeline's models/ folder; champion: the registry's @champion",
    )  # fmt: skip
    predict.add_argument(
        "--show", type=Path, metavar="DIR",
        help="write DIR/<image>_seen.png per image: the picture beside what the model saw",
    )  # fmt: skip
    predict.set_defaults(handler=_predict)
