"""digitflow.core.io: outputs appear whole or not at all."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from digitflow.core import io
from digitflow.core.io import (
    atomic_dir,
    atomic_path,
    read_json,
    recover_dir,
    save_array,
    save_arrays,
    write_json,
    write_private,
    write_text,
)


class Boom(Exception):
    pass


def fail_writing_file(target: Path, text: str, error: type[BaseException] = Boom) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
        raise error


def fail_filling_dir(target: Path) -> None:
    with atomic_dir(target) as staging:
        (staging / "model.bin").write_text("half")
        (staging / "nested").mkdir()
        raise Boom


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_path_moves_the_file_into_place(tmp_path: Path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        assert tmp != target
        tmp.write_text("done")
        assert not target.exists()  # nothing visible until the block ends
    assert target.read_text() == "done"
    assert entries(target.parent) == ["out.txt"]


def test_atomic_path_leaves_nothing_when_the_block_raises(tmp_path: Path):
    target = tmp_path / "out.txt"
    with pytest.raises(Boom):
        fail_writing_file(target, "half")
    assert entries(tmp_path) == []


def test_atomic_path_keeps_the_old_file_when_the_block_raises(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        fail_writing_file(target, "new", KeyboardInterrupt)
    assert target.read_text() == "old"
    assert entries(tmp_path) == ["out.txt"]


def test_atomic_path_replaces_an_existing_file(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert entries(tmp_path) == ["out.txt"]


def test_atomic_dir_replaces_the_folder_on_success(tmp_path: Path):
    target = tmp_path / "models"
    target.mkdir()
    (target / "stale.bin").write_text("from the last run")
    with atomic_dir(target) as staging:
        assert staging.parent == tmp_path
        (staging / "model.bin").write_text("fresh")
        assert (target / "stale.bin").exists()  # the old folder is untouched until success
    assert entries(target) == ["model.bin"]
    assert (target / "model.bin").read_text() == "fresh"
    assert entries(tmp_path) == ["models"]


def test_atomic_dir_keeps_the_old_folder_on_failure(tmp_path: Path):
    target = tmp_path / "models"
    target.mkdir()
    (target / "model.bin").write_text("old")
    with pytest.raises(Boom):
        fail_filling_dir(target)
    assert entries(target) == ["model.bin"]
    assert (target / "model.bin").read_text() == "old"
    assert entries(tmp_path) == ["models"]


def test_atomic_dir_creates_nothing_on_failure(tmp_path: Path):
    target = tmp_path / "a" / "models"
    with pytest.raises(Boom), atomic_dir(target):
        raise Boom
    assert not target.exists()
    assert entries(tmp_path / "a") == []


def test_json_round_trip(tmp_path: Path):
    data = {"accuracy": 0.9722, "names": ["sklearn", "torch"], "nested": {"n": 3}}
    path = tmp_path / "metrics.json"
    write_json(path, data)
    assert read_json(path) == data
    assert path.read_text().endswith("\n")
    assert list(read_json(path)) == ["accuracy", "names", "nested"]  # key order kept


def test_save_array_keeps_the_name_and_dtype(tmp_path: Path):
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "features.npy"
    save_array(path, array)
    assert entries(tmp_path) == ["features.npy"]  # np.save did not append a second ".npy"
    loaded = np.load(path)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, array)


def test_save_array_refuses_objects(tmp_path: Path):
    with pytest.raises(ValueError, match="allow_pickle"):
        save_array(tmp_path / "bad.npy", np.array([{"a": 1}], dtype=object))
    assert entries(tmp_path) == []


def test_save_arrays(tmp_path: Path):
    path = tmp_path / "indices.npz"
    save_arrays(path, train=np.arange(5), test=np.arange(5, 7))
    assert entries(tmp_path) == ["indices.npz"]
    with np.load(path) as loaded:
        assert sorted(loaded.files) == ["test", "train"]
        np.testing.assert_array_equal(loaded["test"], [5, 6])


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_outputs_get_the_permissions_of_the_umask(tmp_path: Path, umask: int, file_mode: int, dir_mode: int):
    """mkstemp / mkdtemp make private temporaries; the published outputs must look like any other file."""
    previous = os.umask(umask)
    try:
        write_text(tmp_path / "report.md", "# report\n")
        with atomic_dir(tmp_path / "models") as staging:
            save_array(staging / "coef.npy", np.zeros(3))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "report.md").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "models").stat().st_mode) == dir_mode
    assert stat.S_IMODE((tmp_path / "models" / "coef.npy").stat().st_mode) == file_mode


STEPS = ("aside", "in")


def old_folder(tmp_path: Path) -> Path:
    target = tmp_path / "models"
    target.mkdir()
    (target / "model.bin").write_text("old")
    return target


def content(target: Path) -> str:
    return (target / "model.bin").read_text()


@pytest.mark.parametrize("step", STEPS)
def test_atomic_dir_interrupted_between_its_steps_keeps_old_or_new(
    tmp_path: Path, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM reaches a stage as an exception (core.shell): raised after each rename, the folder is the old
    one (put back) or the new one, with nothing left beside it."""
    target = old_folder(tmp_path)

    def interrupt(reached: str) -> None:
        if reached == step:
            raise KeyboardInterrupt(f"received signal {signal.SIGTERM}")

    monkeypatch.setattr(io, "_step_hook", interrupt)
    with pytest.raises(KeyboardInterrupt), atomic_dir(target) as staging:
        (staging / "model.bin").write_text("new")
    assert content(target) == ("old" if step == "aside" else "new")
    assert entries(tmp_path) == ["models"]


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from digitflow.core import io

def kill(step):
    if step == sys.argv[2]:
        os.kill(os.getpid(), getattr(signal, sys.argv[3]))

io._step_hook = kill
if sys.argv[3] == "SIGTERM":
    from digitflow.core.shell import run_stage
else:
    def run_stage(name, work):
        work()

def write():
    with io.atomic_dir(Path(sys.argv[1])) as staging:
        (staging / "model.bin").write_text("new")

run_stage("writer", write)
"""


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
@pytest.mark.parametrize("step", STEPS)
def test_atomic_dir_killed_at_each_step_loses_neither_copy(tmp_path: Path, step: str, signal_name: str) -> None:
    """A real signal at each step, in a process of its own: a SIGTERM (the stage shell's exception) leaves the
    old folder or the new in place; a SIGKILL may leave the old one aside, where the next ``atomic_dir`` (or
    ``recover_dir``) puts it back. Never neither."""
    target = old_folder(tmp_path)
    script = textwrap.dedent(KILLED_WRITER)
    result = subprocess.run([sys.executable, "-c", script, str(target), step, signal_name], capture_output=True)
    assert result.returncode != 0, "the signal stopped the writer"
    survivors = [content(folder) for folder in tmp_path.iterdir() if (folder / "model.bin").exists()]
    assert survivors, "neither the old folder nor the new one is left"
    if signal_name == "SIGTERM":
        assert content(target) == ("old" if step == "aside" else "new")
    recover_dir(target)
    assert content(target) == ("old" if step == "aside" else "new")
    # A writer killed outright may leave its staging folder (.models.*.tmp); never a second copy aside.
    assert [name for name in entries(tmp_path) if not name.endswith(".tmp")] == ["models"]


def test_write_private_is_owner_only_and_replaces_a_link_instead_of_following_it(tmp_path: Path) -> None:
    elsewhere = tmp_path / "someone_elses_file"
    elsewhere.write_text("theirs")
    secret = tmp_path / "stack.json"
    secret.symlink_to(elsewhere)
    write_private(secret, "password")
    assert not secret.is_symlink()
    assert secret.read_text() == "password"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert elsewhere.read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["someone_elses_file", "stack.json"]


def test_npz_bytes_depend_on_the_arrays_alone(tmp_path: Path) -> None:
    """Readable by np.load; the same bytes written twice; stored whole, dated 1980, with no zip64 record;
    and the bytes this digest names on every Python (NumPy's own np.savez gives other bytes on 3.11.2 than
    on 3.11.7, which made a committed dvc.lock change on another machine)."""
    import hashlib
    import zipfile

    rng = np.random.default_rng(0)
    arrays = {"images": rng.random((50, 8, 8)).astype("float32"), "labels": np.arange(50)}
    save_arrays(tmp_path / "a.npz", **arrays)
    save_arrays(tmp_path / "b.npz", **arrays)
    data = (tmp_path / "a.npz").read_bytes()
    assert data == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz", allow_pickle=False) as loaded:
        assert sorted(loaded.files) == ["images", "labels"]
        for name, array in arrays.items():
            np.testing.assert_array_equal(loaded[name], array)
            assert loaded[name].dtype == array.dtype
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        for info in archive.infolist():
            assert (info.date_time, info.compress_type, info.extra) == ((1980, 1, 1, 0, 0, 0), zipfile.ZIP_STORED, b"")
    assert hashlib.sha256(data).hexdigest()[:16] == "22db892848fe9748"
