"""Stage code: for every other stage, the MD5 of each file of the code it can import.

It depends on the ``digitflow`` and ``stages`` folders, so any edit of the project's code re-runs it (in
well under a second); each other stage depends only on its own ``data/code/<stage>.json``, which changes
only when a file that stage can import changes, so DVC re-runs exactly those stages. The list of files is
read from the source on every run (digitflow/core/code_graph.py), so a new module or import needs no
edit of ``dvc.yaml``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from digitflow.core import paths
from digitflow.core.code_graph import fingerprint, stage_modules
from digitflow.core.io import atomic_dir, write_json
from digitflow.core.shell import run_stage

log = logging.getLogger(__name__)


def main() -> None:
    root = Path.cwd()
    stages = [stage for stage in stage_modules(root) if stage != "code"]
    with atomic_dir(paths.CODE_DIR) as folder:
        for stage in stages:
            target = folder / paths.code_fingerprint_file(stage).name
            write_json(target, {"stage": stage, "files": fingerprint(stage, root)})
    log.info("the code of %d stages, in %s", len(stages), paths.CODE_DIR)


if __name__ == "__main__":
    run_stage("code", main)
