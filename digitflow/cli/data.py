"""Data for the pipeline: ``digitflow example-images`` writes the example folder of labelled pictures
(``data.dataset: folder``, docs/own_images.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _example_images(args: argparse.Namespace) -> None:
    from digitflow.data.example_images import SHAPES, make_example_folder

    written = make_example_folder(args.folder, args.per_class, replace=args.replace)
    print(f"{len(written)} pictures of {len(SHAPES)} classes ({', '.join(SHAPES)}) in {args.folder}")


def register(commands: Any) -> None:
    example = commands.add_parser(
        "example-images",
        help="write the example folder of labelled pictures (one subfolder per class), made here, not downloaded",
        description="Write FOLDER/<class>/<picture> for four classes of drawn symbols (circle, cross, square, "
        "triangle): scans and photos of various sizes, colours and formats, the same every time. FOLDER must be "
        "new or empty, unless --replace.",
    )
    example.add_argument("folder", type=Path, help="the folder to write, e.g. data/images")
    example.add_argument("--per-class", type=_positive, default=40, help="pictures of each class (default %(default)s)")
    example.add_argument("--replace", action="store_true", help="replace FOLDER whole if it holds anything")
    example.set_defaults(handler=_example_images)
