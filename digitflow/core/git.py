"""The few git questions the project asks: run a git command, the commit, whether the tree is dirty.

One wrapper, so every caller gets the same error handling: ``git`` raises with git's own message,
``try_git`` returns ``None`` where the answer is simply "no" (not a repository, no such revision).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from digitflow.core.errors import DigitflowError


class GitError(DigitflowError):
    """A git command the project relies on failed."""


def run_git(args: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``git ARGS`` in ``cwd``, its output captured as text; never raises for git's exit status."""
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def git(*args: str, cwd: Path | None = None) -> str:
    """The standard output of ``git ARGS``; a failure raises ``GitError`` with git's message."""
    result = run_git(args, cwd)
    if result.returncode != 0:
        raise GitError(f"`git {' '.join(args)}` failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def try_git(*args: str, cwd: Path | None = None) -> str | None:
    """The stripped output of ``git ARGS``, or ``None`` if git says no (not a repository, no such ref)."""
    result = run_git(args, cwd)
    return result.stdout.strip() if result.returncode == 0 else None


def commit_id(revision: str = "HEAD", cwd: Path | None = None) -> str | None:
    """The full commit id of ``revision``, or ``None`` if there is no such commit."""
    return try_git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}", cwd=cwd) or None


def differs_from_commit(path: Path) -> bool:
    """Whether the file at ``path`` differs from its version in the commit checked out in its repository
    (False outside one, or for a file git does not track)."""
    path = Path(path).resolve()
    return bool(try_git("status", "--porcelain", "--untracked-files=no", "--", path.name, cwd=path.parent))


def is_dirty(cwd: Path | None = None, exclude: Sequence[Path] = ()) -> bool | None:
    """Whether tracked files differ from the commit (``exclude``: paths whose changes do not count);
    ``None`` outside a repository."""
    pathspec = [".", *(f":(exclude){path.as_posix()}" for path in exclude)]
    status = try_git("status", "--porcelain", "--untracked-files=no", "--", *pathspec, cwd=cwd)
    return None if status is None else bool(status)


def current_branch(cwd: Path | None = None, environ: dict[str, str] | None = None) -> str:
    """The branch checked out (``main``). On a detached HEAD: inside a DVC experiment (``dvc exp run``
    detaches HEAD at the experiment's baseline commit, ``DVC_EXP_BASELINE_REV``), the branch whose tip that
    commit is (the first by name if several are); else the pull request's source branch that GitHub
    Actions names in ``GITHUB_HEAD_REF``; else ``""``."""
    import os

    environ = dict(os.environ) if environ is None else environ
    checked_out = try_git("symbolic-ref", "--short", "-q", "HEAD", cwd=cwd)
    if checked_out:
        return checked_out
    baseline = environ.get("DVC_EXP_BASELINE_REV")
    if baseline:
        # DVC_ROOT: the user's repository, where a `--temp` or queued experiment's branches are.
        root = Path(environ["DVC_ROOT"]) if environ.get("DVC_ROOT") else cwd
        tips = try_git("for-each-ref", f"--points-at={baseline}", "--format=%(refname:short)", "refs/heads", cwd=root)
        if tips:
            return sorted(tips.split())[0]
    return environ.get("GITHUB_HEAD_REF", "")
