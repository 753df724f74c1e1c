"""digitflow.data.mnist: mirrors, the checksummed download from a real local HTTP mirror, and its failures."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from torchvision.datasets import MNIST

from digitflow.core.errors import DigitflowError, DownloadError
from digitflow.core.params import load_params
from digitflow.data.mnist import (
    MAX_FILE_BYTES,
    MIRRORS_ENV_VAR,
    MNIST_RESOURCES,
    download_mnist,
    load_mnist_images,
    normalize_mirror,
    resolve_mirrors,
)
from tests.conftest import make_project_copy, run
from tests.support.project import serve_folder, serving, set_params

pytestmark = pytest.mark.mnist

CLOSED_PORT_MIRROR = "http://127.0.0.1:9/"  # discard port: nothing listens, the connection is refused
MD5 = dict(MNIST_RESOURCES)
FIRST_FILE, LAST_FILE = MNIST_RESOURCES[0][0], MNIST_RESOURCES[-1][0]


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def mirror_copy(source: Path, folder: Path, corrupt: str | None = None, how: str = "truncate") -> Path:
    """The four files (symlinked), with ``corrupt`` truncated or with one byte changed."""
    folder.mkdir()
    for name in MD5:
        if name != corrupt:
            (folder / name).symlink_to(source / name)
    if corrupt:
        data = bytearray((source / corrupt).read_bytes())
        if how == "truncate":
            data = data[: len(data) // 2]
        else:
            data[len(data) // 2] ^= 0xFF
        (folder / corrupt).write_bytes(bytes(data))
    return folder


# --- mirror resolution (no network) ---------------------------------------------------------------


def test_params_mirrors_used_when_env_var_absent():
    assert resolve_mirrors(["http://a.example/mnist/", "https://b.example/x"], environ={}) == [
        "http://a.example/mnist/",
        "https://b.example/x/",
    ]


def test_env_var_overrides_params_and_is_comma_separated():
    environ = {MIRRORS_ENV_VAR: " http://env-one.example/m , https://env-two.example/,"}
    assert resolve_mirrors(["http://params.example/"], environ=environ) == [
        "http://env-one.example/m/",
        "https://env-two.example/",
    ]


@pytest.mark.parametrize("value", ["", " , ,"])
def test_empty_env_var_falls_back_to_params(value):
    assert resolve_mirrors(["http://params.example/"], environ={MIRRORS_ENV_VAR: value}) == ["http://params.example/"]


def test_env_var_read_from_process_environment(monkeypatch):
    monkeypatch.setenv(MIRRORS_ENV_VAR, "http://from-process.example")
    assert resolve_mirrors(["http://params.example/"]) == ["http://from-process.example/"]


def test_local_folder_becomes_file_url(tmp_path: Path, monkeypatch):
    folder = tmp_path / "my mirror"
    folder.mkdir()
    assert normalize_mirror(str(folder)) == folder.resolve().as_uri() + "/"
    assert normalize_mirror(str(folder)).startswith("file:///")
    assert "my%20mirror" in normalize_mirror(str(folder))  # quoted, so urllib can open it
    monkeypatch.chdir(tmp_path)
    assert normalize_mirror("my mirror/") == folder.resolve().as_uri() + "/"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://host/mnist", "http://host/mnist/"),
        ("http://host/mnist/", "http://host/mnist/"),
        ("  https://host/a/b  ", "https://host/a/b/"),
        ("file:///data/mnist", "file:///data/mnist/"),
    ],
)
def test_trailing_slash(given, expected):
    assert normalize_mirror(given) == expected


def test_download_error_is_a_digitflow_error():
    assert issubclass(DownloadError, DigitflowError)


# --- downloads from real mirrors ------------------------------------------------------------------


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory, mnist_mirror: str) -> Path:
    root = tmp_path_factory.mktemp("mnist-download")
    raw = download_mnist(root, resolve_mirrors([mnist_mirror], environ={}))
    assert raw == root / "MNIST" / "raw"
    return root


def test_http_download_gives_torchvisions_layout(downloaded: Path):
    raw = downloaded / "MNIST" / "raw"
    names = {p.name for p in raw.iterdir()}
    assert names == set(MD5) | {name.removesuffix(".gz") for name in MD5}
    for name, md5 in MD5.items():
        assert md5_of(raw / name) == md5
    # Only the final folder remains: no staging folder beside it.
    assert [p.name for p in (downloaded / "MNIST").iterdir()] == ["raw"]
    train = MNIST(str(downloaded), train=True, download=False)
    test = MNIST(str(downloaded), train=False, download=False)
    assert len(train) + len(test) == 70_000


def test_load_mnist_images(downloaded: Path):
    images, labels, test_start = load_mnist_images(downloaded)
    assert images.shape == (70_000, 28, 28)
    assert images.dtype == np.uint8
    assert labels.dtype == np.int64
    assert test_start == 60_000
    test = MNIST(str(downloaded), train=False, download=False)
    np.testing.assert_array_equal(labels[test_start:], test.targets.numpy())
    np.testing.assert_array_equal(images[test_start], test.data[0].numpy())
    assert set(np.unique(labels)) == set(range(10))


@pytest.mark.parametrize(("corrupt", "how"), [(LAST_FILE, "truncate"), (FIRST_FILE, "flip")])
def test_corrupt_mirror_names_file_url_and_md5_and_leaves_nothing(tmp_path, shared_mnist, corrupt, how):
    folder = mirror_copy(shared_mnist, tmp_path / "mirror", corrupt=corrupt, how=how)
    root = tmp_path / "out"
    with serve_folder(folder) as url, pytest.raises(DownloadError) as caught:
        download_mnist(root, resolve_mirrors([url], environ={}))
    message = str(caught.value)
    assert f"could not download {corrupt}" in message
    assert f"{url}{corrupt}" in message
    assert f"expected MD5 {MD5[corrupt]}" in message
    assert f"got MD5 {md5_of(folder / corrupt)}" in message
    assert "checksum mismatch" in message
    # Files downloaded before the failure are gone too, and no staging folder is left.
    assert files_under(root) == []
    assert not (root / "MNIST" / "raw").exists()
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_failed_download_keeps_the_previous_download(tmp_path, shared_mnist):
    root = tmp_path / "out"
    previous = root / "MNIST" / "raw" / "previous.txt"
    previous.parent.mkdir(parents=True)
    previous.write_text("an earlier, complete download")
    folder = mirror_copy(shared_mnist, tmp_path / "mirror", corrupt=FIRST_FILE)
    with serve_folder(folder) as url, pytest.raises(DownloadError):
        download_mnist(root, resolve_mirrors([url], environ={}))
    assert files_under(root) == [previous]
    assert previous.read_text() == "an earlier, complete download"


def test_unreachable_mirror_falls_back_to_the_next(tmp_path, mnist_mirror):
    root = tmp_path / "out"
    raw = download_mnist(root, resolve_mirrors([CLOSED_PORT_MIRROR, mnist_mirror], environ={}))
    for name, md5 in MD5.items():
        assert md5_of(raw / name) == md5
    assert len(MNIST(str(root), train=False, download=False)) == 10_000


def test_corrupt_mirror_falls_back_to_the_next(tmp_path, shared_mnist, mnist_mirror):
    folder = mirror_copy(shared_mnist, tmp_path / "mirror", corrupt=LAST_FILE)
    root = tmp_path / "out"
    with serve_folder(folder) as bad:
        raw = download_mnist(root, resolve_mirrors([bad, mnist_mirror], environ={}))
    assert md5_of(raw / LAST_FILE) == MD5[LAST_FILE]


def test_all_mirrors_bad_lists_each(tmp_path, shared_mnist):
    corrupt_folder = mirror_copy(shared_mnist, tmp_path / "corrupt", corrupt=FIRST_FILE)
    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()
    missing_folder = tmp_path / "does-not-exist"
    root = tmp_path / "out"
    with serve_folder(corrupt_folder) as corrupt_url, serve_folder(empty_folder) as empty_url:
        mirrors = resolve_mirrors([CLOSED_PORT_MIRROR, corrupt_url, empty_url, str(missing_folder)], environ={})
        with pytest.raises(DownloadError) as caught:
            download_mnist(root, mirrors)
    lines = str(caught.value).splitlines()
    assert f"could not download {FIRST_FILE} (expected MD5 {MD5[FIRST_FILE]})" in lines[0]
    reasons = {
        mirror: next(line for line in lines if line.strip().startswith(mirror + FIRST_FILE)) for mirror in mirrors
    }
    assert "refused" in reasons[CLOSED_PORT_MIRROR].lower()
    assert "checksum mismatch" in reasons[corrupt_url]
    assert "404" in reasons[empty_url]
    assert mirrors[3].startswith("file://")
    assert "fetch.mirrors" in str(caught.value)
    assert MIRRORS_ENV_VAR in str(caught.value)
    assert files_under(root) == []


def test_file_url_mirror(tmp_path, shared_mnist):
    mirror = resolve_mirrors([str(shared_mnist)], environ={})
    assert mirror[0].startswith("file://")
    root = tmp_path / "out"
    raw = download_mnist(root, mirror)
    for name, md5 in MD5.items():
        assert md5_of(raw / name) == md5
    assert len(MNIST(str(root), train=True, download=False)) == 60_000


def test_corrupt_file_url_mirror_is_a_download_error(tmp_path, shared_mnist):
    folder = mirror_copy(shared_mnist, tmp_path / "mirror", corrupt=FIRST_FILE)
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_mnist(tmp_path / "out", resolve_mirrors([str(folder)], environ={}))


# --- a mirror that accepts the connection and never answers (issue 10) -----------------------------


@contextlib.contextmanager
def silent_mirror() -> Iterator[str]:
    """A real TCP server on 127.0.0.1 that accepts every connection and never sends a byte."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/mnist/"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


def test_silent_mirror_times_out_naming_file_and_mirror(tmp_path):
    started = time.monotonic()
    with silent_mirror() as url, pytest.raises(DownloadError) as caught:
        download_mnist(tmp_path, [url], timeout=1.0)
    elapsed = time.monotonic() - started
    assert elapsed < 10
    message = str(caught.value)
    assert f"could not download {FIRST_FILE}" in message
    assert f"{url}{FIRST_FILE}: no answer within 1 s (fetch.timeout in params.yaml)" in message
    assert files_under(tmp_path) == []


def test_fetch_stage_skips_a_silent_mirror_within_a_minute(tmp_path, mnist_mirror):
    """The real command with the default timeout: the silent mirror costs one timeout, not one per file."""
    project = make_project_copy(tmp_path / "project")
    set_params(project, data={"dataset": "mnist"})
    assert load_params(project / "params.yaml").fetch.timeout < 60
    with silent_mirror() as url:
        started = time.monotonic()
        result = run(project, "python", "-m", "stages.fetch", DIGITFLOW_MNIST_MIRRORS=f"{url},{mnist_mirror}")
        elapsed = time.monotonic() - started
    assert elapsed < 60, result.stderr
    raw = project / "data/raw/MNIST/raw"
    assert {p.name for p in raw.iterdir()} >= set(MD5)
    assert all(md5_of(raw / name) == md5 for name, md5 in MD5.items())


# --- a mirror that never stops sending, and one that sends a byte at a time (issue 23) ------------------


@contextlib.contextmanager
def streaming_mirror(announce: int | None, pause: float) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that answers every GET with bytes without end (``announce``: the
    Content-Length it claims, or none), a 4 KiB block every ``pause`` seconds."""
    import http.server

    stop = threading.Event()

    class Endless(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            if announce is not None:
                self.send_header("Content-Length", str(announce))
            self.end_headers()
            with contextlib.suppress(OSError):
                while not stop.is_set():
                    self.wfile.write(b"\0" * 4096)
                    time.sleep(pause)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Endless) as url:
        try:
            yield f"{url}mnist/"
        finally:
            stop.set()


def test_a_mirror_sending_without_end_is_cut_off_at_the_size_cap(tmp_path):
    assert MAX_FILE_BYTES > 4 * 9_912_422  # room above the largest file, train-images-idx3-ubyte.gz
    started = time.monotonic()
    with streaming_mirror(announce=None, pause=0) as url, pytest.raises(DownloadError) as caught:
        download_mnist(tmp_path, [url], timeout=5, max_bytes=2_000_000)
    assert time.monotonic() - started < 30
    assert f"{url}{FIRST_FILE}: more than 2,000,000 bytes arrived, more than an MNIST file can be" in str(caught.value)
    assert files_under(tmp_path) == []


def test_a_mirror_announcing_too_much_is_refused_before_reading(tmp_path):
    with streaming_mirror(announce=10**12, pause=0.5) as url, pytest.raises(DownloadError) as caught:
        download_mnist(tmp_path, [url], timeout=5)
    assert f"the mirror announces 1,000,000,000,000 bytes, more than the {MAX_FILE_BYTES:,}" in str(caught.value)


def test_a_trickling_mirror_stops_at_the_deadline(tmp_path):
    """Never silent for the 5 s timeout, never finished: the whole download gives up after 2 s, and the
    mirrors left are not tried."""
    started = time.monotonic()
    with streaming_mirror(announce=None, pause=0.2) as url, pytest.raises(DownloadError) as caught:
        download_mnist(tmp_path, [url, CLOSED_PORT_MIRROR], timeout=5, deadline=2)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert f"{url}{FIRST_FILE}: the download did not finish in time (fetch.deadline in params.yaml)" in message
    assert f"{CLOSED_PORT_MIRROR}{FIRST_FILE}: not tried, the download's time was up" in message
    assert files_under(tmp_path) == []
