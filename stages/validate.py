"""Stage validate: check the whole params.yaml, so that an edit no other stage reads is checked too.

Every stage validates the file before its work, but DVC re-runs a stage only when a param it lists
changes: an unknown key (``foo: 1``), a misspelt one (``gate.max_drop_rell``) or a setting read outside
the pipeline (``fetch.mirrors``, ``gate``) would pass ``dvc repro`` silently. This stage depends on the
whole file, so any edit re-runs it, and it takes well under a second; it writes nothing, so nothing
downstream re-runs because of it. With ``data.dataset: folder`` it also checks that ``data.folder`` is a
folder: DVC hashes that path as the fetch stage's dependency before fetch runs, and would fail on a
missing one with a bare "No such file or directory".
"""

from __future__ import annotations

import logging

from digitflow.core.params import load_params
from digitflow.core.paths import PARAMS_FILE
from digitflow.core.shell import run_stage

log = logging.getLogger(__name__)


def main() -> None:
    params = load_params()
    if params.data.dataset == "folder":
        from digitflow.data.image_folder import require_folder

        require_folder(params.data.folder)
    log.info("%s is valid", PARAMS_FILE)


if __name__ == "__main__":
    run_stage("validate", main)
