"""digitflow.core.git on real repositories: git's own message on failure, None where the answer is "no"."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from digitflow.core.git import GitError, commit_id, current_branch, git, is_dirty, run_git, try_git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with no commit yet."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    git("config", "user.email", "tests@digitflow.local", cwd=repo)
    git("config", "user.name", "digitflow tests", cwd=repo)
    return repo


def commit(repo: Path, **files: str) -> str:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "change", cwd=repo)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()


def test_run_git_reports_the_status_without_raising(tmp_path: Path) -> None:
    result = run_git(["status"], cwd=tmp_path)
    assert result.returncode != 0
    assert "not a git repository" in result.stderr


def test_git_returns_the_output_or_raises_with_gits_message(repo: Path) -> None:
    assert git("rev-parse", "--show-toplevel", cwd=repo).strip() == str(repo.resolve())
    with pytest.raises(GitError, match=r"^`git checkout no-such-branch` failed: error: pathspec 'no-such-branch'"):
        git("checkout", "no-such-branch", cwd=repo)


def test_try_git_says_none_where_git_says_no(repo: Path, tmp_path: Path) -> None:
    assert try_git("rev-parse", "--is-inside-work-tree", cwd=repo) == "true"  # stripped
    assert try_git("rev-parse", "--is-inside-work-tree", cwd=tmp_path) is None


def test_commit_id(repo: Path, tmp_path: Path) -> None:
    assert commit_id(cwd=tmp_path) is None  # not a repository
    assert commit_id(cwd=repo) is None  # no commit yet
    first = commit(repo, **{"a.txt": "1"})
    git("tag", "-a", "v1", "-m", "first", cwd=repo)
    second = commit(repo, **{"a.txt": "2"})
    assert commit_id(cwd=repo) == second
    assert len(second) == 40
    assert commit_id("HEAD~1", cwd=repo) == first
    assert commit_id("v1", cwd=repo) == first  # an annotated tag, peeled to its commit
    assert commit_id("HEAD~2", cwd=repo) is None
    assert commit_id("no-such-ref", cwd=repo) is None


def test_is_dirty(repo: Path, tmp_path: Path) -> None:
    assert is_dirty(cwd=tmp_path) is None
    commit(repo, **{"code.py": "x = 1\n", "metrics/m.json": "{}\n"})
    assert is_dirty(cwd=repo) is False
    (repo / "new.txt").write_text("untracked files do not count\n")
    assert is_dirty(cwd=repo) is False
    (repo / "metrics/m.json").write_text('{"a": 1}\n')
    assert is_dirty(cwd=repo) is True
    assert is_dirty(cwd=repo, exclude=[Path("metrics")]) is False
    (repo / "code.py").write_text("x = 2\n")
    assert is_dirty(cwd=repo, exclude=[Path("metrics")]) is True
    git("add", "code.py", cwd=repo)  # staged but not committed is still not the commit
    assert is_dirty(cwd=repo, exclude=[Path("metrics")]) is True


def test_current_branch_on_a_branch_in_a_dvc_experiment_and_in_a_pull_request(repo: Path, tmp_path: Path) -> None:
    first = commit(repo, a="1")
    assert current_branch(repo, {}) == "main"
    git("checkout", "-q", "--detach", cwd=repo)  # as `dvc exp run` leaves the workspace while it runs
    assert current_branch(repo, {}) == ""
    experiment = {"DVC_EXP_BASELINE_REV": first}
    assert current_branch(repo, experiment) == "main"
    git("branch", "feature", cwd=repo)  # two branches at the baseline: the first by name
    assert current_branch(repo, experiment) == "feature"
    # A `--temp` experiment runs in a copy; DVC_ROOT names the user's repository, where the branches are.
    copy = tmp_path / "copy"
    git("clone", "-q", str(repo), str(copy))
    git("checkout", "-q", "--detach", cwd=copy)
    for branch in git("for-each-ref", "--format=%(refname:short)", "refs/heads", cwd=copy).split():
        git("branch", "-D", branch, cwd=copy)  # its branches are remote ones only, as in DVC's copy
    assert current_branch(copy, experiment) == ""
    assert current_branch(copy, {**experiment, "DVC_ROOT": str(repo)}) == "feature"
    assert current_branch(repo, {"DVC_EXP_BASELINE_REV": commit(repo, a="2")}) == ""  # no branch there
    assert current_branch(repo, {"GITHUB_HEAD_REF": "fix-typo"}) == "fix-typo"
