"""A registered model's files, pinned: a digest of them is recorded when the version is registered, and
checked before the model is loaded, so nothing that changed in the artifact store afterwards can run.

MLflow loads a model by what its ``MLmodel`` file says: the flavor's loader, a ``code`` folder put on
``sys.path``, the serialization format. Whoever can write a model's artifacts can therefore make loading
it run their code, whatever its format: in the artifact store's bucket (the team stack gives that bucket
to the MLflow server alone), or through the server, which lets any account with EDIT on an experiment
write the artifacts of every run and logged model in it. The registry, by contrast, is written only by
accounts with EDIT on the registered model (``add-user --promote``). So the version carries, as a tag set
by its registrar, the SHA-256 of every file of the model (``files_digest``), and ``verified_download``
refuses a copy whose files differ, before anything in it is read.

Registration itself is optional (``DIGITFLOW_REGISTER=false``, which pull requests' CI sets), and a
server's refusal (an account without ``--promote``) is a warning, not a failed stage: the run and its
model are logged either way, and the version records the git branch it was trained on (``promote``
ranks main's only, by default).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from digitflow.core.errors import DigitflowError
from digitflow.core.git import commit_id, current_branch
from digitflow.core.names import REGISTERED_MODELS
from digitflow.core.progress import is_terminal
from digitflow.tracking.links import without_credentials
from digitflow.tracking.runs import RunInfo
from digitflow.tracking.store import tracking_uri

log = logging.getLogger(__name__)

DIGEST_TAG = "digitflow.files_sha256"
BRANCH_TAG = "digitflow.git_branch"
COMMIT_TAG = "digitflow.git_commit"
REGISTER_ENV_VAR = "DIGITFLOW_REGISTER"
# Written by MLflow into a folder downloaded from a `models:/name/version` URI; not one of the model's files.
NOT_MODEL_FILES = {"registered_model_meta"}


class ModelFilesError(DigitflowError):
    """A registered model's files differ from those its registrar recorded, or were never recorded."""


PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def files_digest(folder: Path) -> str:
    """SHA-256 of ``sha256sum``-style lines (file digest, relative path), sorted by path, of every file."""
    lines = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name not in NOT_MODEL_FILES):
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(folder).as_posix()}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def download(model_uri: str, destination: Path | None = None, progress: bool | None = None) -> Path:
    """The model's files in ``destination`` (a new temporary folder by default). MLflow's progress bar in a
    terminal (``progress`` None), never if ``progress`` is false: the registrar's copy of a model just
    logged is a few small files, and without a terminal a bar is a line of carriage returns in a log."""
    import mlflow

    destination = destination or Path(tempfile.mkdtemp(prefix="digitflow-model-"))
    saved = os.environ.get(PROGRESS_BAR_ENV)
    if not (is_terminal() if progress is None else progress):
        os.environ[PROGRESS_BAR_ENV] = "false"  # read by MLflow at each download
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(destination)))
    finally:
        if saved is None:
            os.environ.pop(PROGRESS_BAR_ENV, None)
        else:
            os.environ[PROGRESS_BAR_ENV] = saved


def registration_wanted(environ: Mapping[str, str] | None = None) -> bool:
    """``DIGITFLOW_REGISTER``: unset or true registers each trained model, false only logs it."""
    environ = os.environ if environ is None else environ
    value = environ.get(REGISTER_ENV_VAR, "true").strip().lower()
    if value not in {"true", "1", "yes", "false", "0", "no"}:
        raise DigitflowError(f"{REGISTER_ENV_VAR}={value!r}: set it to true or false")
    return value in {"true", "1", "yes"}


def register_logged_model(run: Any, logged: Any, model_name: str, environ: Mapping[str, str] | None = None) -> RunInfo:
    """Register the model a training run logged as a new version, tagged with its files' digest, branch and
    commit; the record of the run (and version, if registered)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    # The record goes to DVC's cache and remote: never with the URI's `user:password@`.
    record = RunInfo(run.info.run_id, run.info.experiment_id, without_credentials(tracking_uri()))
    if not registration_wanted(environ):
        log.info("model logged, not registered (%s=false)", REGISTER_ENV_VAR)
        return record
    name = REGISTERED_MODELS[model_name]
    with tempfile.TemporaryDirectory(prefix="digitflow-model-") as folder:
        digest = files_digest(download(logged.model_uri, Path(folder), progress=False))
    tags = {DIGEST_TAG: digest, BRANCH_TAG: current_branch(), COMMIT_TAG: commit_id() or "unknown"}
    try:
        version = mlflow.register_model(logged.model_uri, name, tags=tags)
    except MlflowException as exc:
        if exc.get_http_status_code() != 403:
            raise
        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "this account")
        log.warning(
            "warning: the model is logged but not registered: %s may not register versions of %s (registering "
            "and moving @champion take EDIT on it, `digitflow stack add-user %s --promote`). Set %s=false to "
            "skip registering.",
            user,
            name,
            user,
            REGISTER_ENV_VAR,
        )
        return record
    return RunInfo(record.run_id, record.experiment_id, record.tracking_uri, name, str(version.version))


def verified_download(client: Any, name: str, version: Any) -> Path:
    """The files of ``version`` of registered model ``name``, downloaded to a new folder and checked against
    the digest its registrar recorded; ``ModelFilesError`` (and nothing read) if they differ or none was."""
    recorded = version.tags.get(DIGEST_TAG)
    if not recorded:
        raise ModelFilesError(
            f"{name} version {version.version} has no record of its files ({DIGEST_TAG}): it was registered "
            "before digitflow recorded one, or by hand. Register it again with the pipeline (`dvc repro` by an "
            "account that may promote) and promote that version."
        )
    folder = download(client.get_model_version_download_uri(name, version.version))
    found = files_digest(folder)
    if found != recorded:
        raise ModelFilesError(
            f"the files of {name} version {version.version} changed since it was registered (SHA-256 {found[:12]}, "
            f"recorded {recorded[:12]}): someone wrote them in the artifact store. Refusing to load them; "
            f"promote another version, and check who can write that experiment's artifacts."
        )
    return folder
