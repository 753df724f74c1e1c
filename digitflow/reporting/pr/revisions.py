"""The two sides of the comparison: the base revision (resolved, fetched from ``origin`` by a shallow CI
clone), files at that revision, and DVC's diff commands run as a user would run them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from digitflow.core.git import commit_id, run_git
from digitflow.reporting.pr.errors import BaseRevisionError, DvcCommandError

# Runs a command and returns its result; tests pass a failing one.
Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, check=False)


def resolve_base(base: str) -> str:
    """The commit id of ``base``, fetching it from ``origin`` when this clone lacks it.

    CI checkouts are often shallow or single-branch, so the base branch is not there; only then, and only
    if an ``origin`` remote exists, it is fetched (``origin/<base>`` is tried as well, which is where a
    full clone keeps other branches).
    """
    if not base or base.startswith("-"):
        raise BaseRevisionError(f"base revision {base!r} is not a branch, tag or commit name")
    branch = base.removeprefix("origin/")
    candidates = list(dict.fromkeys([base, f"origin/{branch}"]))
    for candidate in candidates:
        sha = commit_id(candidate)
        if sha:
            return sha
    if run_git(["rev-parse", "--is-inside-work-tree"]).returncode != 0:
        raise BaseRevisionError("not inside a git repository; run from the project's clone")
    shallow = run_git(["rev-parse", "--is-shallow-repository"]).stdout.strip() == "true"
    has_origin = run_git(["remote", "get-url", "origin"]).returncode == 0
    fetch_error = ""
    if has_origin:
        fetched = run_git(["fetch", "--no-tags", "origin", branch])
        if fetched.returncode == 0:
            sha = commit_id("FETCH_HEAD")
            if sha:
                return sha
        fetch_error = f"; `git fetch origin {branch}` failed: {fetched.stderr.strip() or 'no output'}"
    clone = "a shallow clone" if shallow else "this clone"
    remote = "" if has_origin else " and there is no `origin` remote to fetch it from"
    raise BaseRevisionError(
        f"base revision '{base}' is not in {clone}{remote}{fetch_error}. Make the base available: "
        f"`git fetch origin {branch}` (or `git fetch --unshallow` for a shallow clone); in GitHub Actions give "
        "actions/checkout `fetch-depth: 0`."
    )


def dvc_json(args: Sequence[str], run: Runner = _run) -> dict[str, Any]:
    """Run a DVC command with ``--json`` and decode its answer; a failure names the command and why."""
    command = [sys.executable, "-m", "dvc", *args, "--json"]
    result = run(command)
    if result.returncode != 0:
        raise DvcCommandError(f"`dvc {' '.join(args)} --json` failed: {result.stderr.strip() or result.stdout.strip()}")
    try:
        decoded = json.loads(result.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise DvcCommandError(f"`dvc {' '.join(args)} --json` printed something that is not JSON: {exc}") from None
    return decoded if isinstance(decoded, dict) else {}


def read_at_revision(revision: str, path: Path) -> str | None:
    """A file's text at a git revision, or ``None`` if that revision does not have it."""
    result = run_git(["show", f"{revision}:{Path(path).as_posix()}"])
    return result.stdout if result.returncode == 0 else None


def read_workspace(path: Path) -> str | None:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        return None
