"""MNIST download through torchvision, from its upstream mirrors or any HTTP mirror or local folder.

torchvision supplies the file list, the MD5 checksums, the download with a progress bar and the
extraction; this module adds what a pipeline stage needs on top: mirrors chosen by the user, one error
that names the file, each mirror tried and the expected checksum, and no partial file left behind
(everything is downloaded into a staging folder that replaces the output folder only when complete),
and a bounded wait: torchvision's ``download_url`` takes no timeout, so each download runs under a
scoped default socket timeout (``fetch.timeout`` seconds per connect or read); a mirror that accepts
the connection and never answers fails after that long and the next mirror is tried.
The result is torchvision's own layout, so ``torchvision.datasets.MNIST(root)`` loads it as is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import urllib.error
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
from torchvision.datasets import MNIST
from torchvision.datasets.utils import calculate_md5, check_integrity, download_url, extract_archive

from digitflow.core.errors import DownloadError
from digitflow.core.io import atomic_dir

MIRRORS_ENV_VAR = "DIGITFLOW_MNIST_MIRRORS"
MNIST_RESOURCES: tuple[tuple[str, str], ...] = tuple(MNIST.resources)


def normalize_mirror(mirror: str) -> str:
    """Return a base URL ending in '/'; a local folder becomes a ``file://`` URL."""
    mirror = mirror.strip()
    if "://" not in mirror:
        mirror = Path(mirror).expanduser().resolve().as_uri()
    return mirror if mirror.endswith("/") else mirror + "/"


def resolve_mirrors(param_mirrors: Sequence[str], environ: dict[str, str] | None = None) -> list[str]:
    """Mirrors from ``DIGITFLOW_MNIST_MIRRORS`` (comma-separated) when set, else from params."""
    environ = dict(os.environ) if environ is None else environ
    from_env = [m for m in environ.get(MIRRORS_ENV_VAR, "").split(",") if m.strip()]
    return [normalize_mirror(m) for m in (from_env or param_mirrors)]


DEFAULT_TIMEOUT = 20.0


@contextlib.contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """Every socket created in the block waits at most ``seconds`` for a connect or a read."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError)


def _download_one(filename: str, md5: str, mirrors: Sequence[str], folder: Path, timeout: float) -> list[str]:
    """Try each mirror in turn; return the mirrors that timed out, so later files try them last."""
    failures = []
    silent: list[str] = []
    for mirror in mirrors:
        url = f"{mirror}{filename}"
        target = folder / filename
        try:
            if url.startswith("file:"):
                # A local folder: copy, then the same checksum check as a download.
                shutil.copyfile(url2pathname(urlparse(url).path), target)
                if not check_integrity(str(target), md5):
                    raise RuntimeError("File not found or corrupted.")
            else:
                with socket_timeout(timeout):
                    download_url(url, root=str(folder), filename=filename, md5=md5)
            return silent
        except (urllib.error.URLError, OSError, RuntimeError, ValueError) as exc:
            if _timed_out(exc):
                target.unlink(missing_ok=True)
                silent.append(mirror)
                reason = f"no answer within {timeout:g} s (fetch.timeout in params.yaml)"
            elif target.exists():
                got = calculate_md5(target)
                size = target.stat().st_size
                reason = f"checksum mismatch: got MD5 {got} ({size} bytes); the file is corrupt or truncated"
                target.unlink()
            else:
                reason = f"{type(exc).__name__}: {exc}"
            failures.append(f"  {url}: {reason}")
    raise DownloadError(
        f"could not download {filename} (expected MD5 {md5}) from any mirror:\n"
        + "\n".join(failures)
        + f"\nCheck the mirrors in params.yaml (fetch.mirrors) or ${MIRRORS_ENV_VAR}, "
        "or point them at a folder holding the original files."
    )


def download_mnist(root: Path, mirrors: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Download, verify and extract the four MNIST files into ``root/MNIST/raw``; return that folder.

    ``timeout`` bounds each connect and each read, in seconds, so no mirror can hang the stage."""
    raw_folder = Path(root) / MNIST.__name__ / "raw"
    order = list(mirrors)
    with atomic_dir(raw_folder) as staging:
        for filename, md5 in MNIST_RESOURCES:
            silent = _download_one(filename, md5, order, staging, timeout)
            # A mirror that kept silent once would cost the full timeout again for each file.
            order = [m for m in order if m not in silent] + [m for m in order if m in silent]
            extract_archive(str(staging / filename), str(staging))
    return raw_folder


def load_mnist_images(root: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """The 70,000 images as uint8 (n, 28, 28), their labels, and where the official test set starts."""
    train = MNIST(str(root), train=True, download=False)
    test = MNIST(str(root), train=False, download=False)
    images = np.concatenate([train.data.numpy(), test.data.numpy()])
    labels = np.concatenate([train.targets.numpy(), test.targets.numpy()]).astype(np.int64)
    return images, labels, len(train.data)
