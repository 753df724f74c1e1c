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

    result = promote(args.model, args.metric, args.version, args.force, mlflow.MlflowClient(tracking_uri()))
    print(result.describe())


def serve_command(model: str, host: str, port: int) -> list[str]:
    """``mlflow models serve`` of the champion, in this environment (no virtualenv to build offline)."""
    from digitflow.tracking.registry import champion_uri

    return ["mlflow", "models", "serve", "-m", champion_uri(model), "--host", host, "--port", str(port),
            "--env-manager", "local"]  # fmt: skip


def _serve(args: argparse.Namespace) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    from digitflow.tracking.registry import CHAMPION
    from digitflow.tracking.store import tracking_uri

    uri = tracking_uri()
    name = REGISTERED_MODELS[args.model]
    try:
        mlflow.MlflowClient(uri).get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        raise DigitflowError(
            f"{name} has no @{CHAMPION} in {uri}: promote a version first (`digitflow promote {args.model}`)"
        ) from None
    command = serve_command(args.model, args.host, args.port)
    print(f"serving {name}@{CHAMPION} on http://{args.host}:{args.port}/invocations", file=sys.stderr)
    sys.stderr.flush()
    os.execvpe(command[0], command, {**os.environ, "MLFLOW_TRACKING_URI": uri})


def _predict(args: argparse.Namespace) -> None:
    from digitflow.models.predict import convert_files, local_predictor, pixel_rows

    missing = [str(f) for f in args.images if not Path(f).is_file()]
    if missing:
        raise DigitflowError(f"no such image file: {', '.join(missing)}")
    if args.source == "champion":
        from digitflow.tracking.registry import champion_predictor, champion_uri
        from digitflow.tracking.store import tracking_uri

        os.environ.setdefault("MLFLOW_TRACKING_URI", tracking_uri())
        predictor, card = champion_predictor(champion_uri(args.model))
    else:
        predictor, card = local_predictor(args.model)
    conversions = convert_files(args.images, card)
    proba = predictor(pixel_rows(conversions))
    for file, row in zip(args.images, proba, strict=True):
        digit = int(row.argmax())
        print(f"{file}: {digit} (probability {row[digit]:.3f})")
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
    promote.set_defaults(handler=_promote)

    serve = commands.add_parser("serve", help="serve the champion over REST (mlflow models serve)")
    serve.add_argument("model", choices=models)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5001)
    serve.set_defaults(handler=_serve)

    predict = commands.add_parser("predict", help="predict the digit in image files (PNG, JPEG)")
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
