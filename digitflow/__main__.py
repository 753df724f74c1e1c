"""``digitflow`` commands for using the trained models: promote, serve, predict.

    digitflow promote torch [--metric test_accuracy] [--version N] [--force]
    digitflow serve torch [--port 5001]          # REST: mlflow models serve of @champion, on 127.0.0.1
    digitflow predict photo.png scan.jpg [--model torch] [--source models|champion] [--show DIR]

They use the same MLflow store as the pipeline (``mlflow.db`` at the repository root, or
``MLFLOW_TRACKING_URI``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from digitflow import paths
from digitflow.cli import run_stage
from digitflow.errors import DigitflowError


def _promote(args: argparse.Namespace) -> None:
    import mlflow

    from digitflow.registry import promote
    from digitflow.tracking import tracking_uri

    result = promote(args.model, args.metric, args.version, args.force, mlflow.MlflowClient(tracking_uri()))
    print(result.describe())


def serve_command(model: str, host: str, port: int) -> list[str]:
    """``mlflow models serve`` of the champion, in this environment (no virtualenv to build offline)."""
    from digitflow.registry import champion_uri

    return ["mlflow", "models", "serve", "-m", champion_uri(model), "--host", host, "--port", str(port),
            "--env-manager", "local"]  # fmt: skip


def _serve(args: argparse.Namespace) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    from digitflow.registry import CHAMPION
    from digitflow.tracking import tracking_uri
    from digitflow.training import REGISTERED_MODELS

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
    from digitflow.predict import convert_files, local_predictor, pixel_rows, registry_predictor, write_views

    missing = [str(f) for f in args.images if not Path(f).is_file()]
    if missing:
        raise DigitflowError(f"no such image file: {', '.join(missing)}")
    if args.source == "champion":
        from digitflow.registry import champion_uri
        from digitflow.tracking import tracking_uri

        os.environ.setdefault("MLFLOW_TRACKING_URI", tracking_uri())
        predictor, card = registry_predictor(champion_uri(args.model))
    else:
        predictor, card = local_predictor(args.model)
    conversions = convert_files(args.images, card)
    proba = predictor(pixel_rows(conversions))
    for file, row in zip(args.images, proba, strict=True):
        digit = int(row.argmax())
        print(f"{file}: {digit} (probability {row[digit]:.3f})")
    if args.show:
        written = write_views(args.show, args.images, conversions, proba, card)
        print(f"what the model saw: {len(written)} PNG files in {args.show}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="digitflow", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    models = list(paths.MODEL_NAMES)

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
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    run_stage(f"digitflow {args.command}", lambda: args.handler(args))


if __name__ == "__main__":
    main()
