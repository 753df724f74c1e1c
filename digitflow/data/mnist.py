"""MNIST download through torchvision, from its upstream mirrors or any HTTP mirror or local folder.

torchvision supplies the file list, the MD5 checksums and the extraction; this module adds what a pipeline
stage needs on top: mirrors chosen by the user, one error that names the file, each mirror tried and the
expected checksum, and no partial file left behind (everything is downloaded into a staging folder that
replaces the output folder only when complete). The download itself is a short loop of our own, with
torchvision's progress bar and user agent, because ``download_url`` bounds nothing: here each connect or
read waits at most ``fetch.timeout`` seconds (a mirror that accepts the connection and never answers fails
after that long and the next is tried), no file may grow past ``MAX_FILE_BYTES`` (the largest MNIST file is
9.9 MB; a mirror streaming without end is cut off), and the whole download ends by ``fetch.deadline``
seconds (a mirror trickling a byte at a time, never silent long enough to time out, cannot hold the stage).
The result is torchvision's own layout, so ``torchvision.datasets.MNIST(root)`` loads it as is.
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
from torchvision.datasets import MNIST
from torchvision.datasets.utils import USER_AGENT, calculate_md5, check_integrity, extract_archive
from tqdm.auto import tqdm

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
DEFAULT_DEADLINE = 600.0
# Six times the largest of the four files (train-images-idx3-ubyte.gz, 9,912,422 bytes).
MAX_FILE_BYTES = 64 * 1024 * 1024


class _Refused(Exception):
    """A download stopped on purpose: too large, or past the deadline (the message says which)."""


def _download_http(url: str, target: Path, timeout: float, deadline: float, max_bytes: int) -> None:
    """Stream ``url`` into ``target``: ``timeout`` per connect or read, at most ``max_bytes``, done by the
    ``time.monotonic()`` instant ``deadline``."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.length
        if length is not None and length > max_bytes:
            raise _Refused(f"the mirror announces {length:,} bytes, more than the {max_bytes:,} an MNIST file can be")
        received = 0
        with target.open("wb") as out, tqdm(total=length, unit="B", unit_scale=True, desc=target.name) as bar:
            while chunk := response.read(64 * 1024):
                received += len(chunk)
                if received > max_bytes:
                    raise _Refused(f"more than {max_bytes:,} bytes arrived, more than an MNIST file can be")
                if time.monotonic() > deadline:
                    raise _Refused("the download did not finish in time (fetch.deadline in params.yaml)")
                out.write(chunk)
                bar.update(len(chunk))


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError)


def _download_one(
    filename: str, md5: str, mirrors: Sequence[str], folder: Path, timeout: float, deadline: float, max_bytes: int
) -> list[str]:
    """Try each mirror in turn; return the mirrors that timed out, so later files try them last."""
    failures = []
    silent: list[str] = []
    for mirror in mirrors:
        url = f"{mirror}{filename}"
        target = folder / filename
        if time.monotonic() > deadline:
            failures.append(f"  {url}: not tried, the download's time was up (fetch.deadline in params.yaml)")
            continue
        try:
            if url.startswith("file:"):
                # A local folder: copy, then the same checksum check as a download.
                shutil.copyfile(url2pathname(urlparse(url).path), target)
                if not check_integrity(str(target), md5):
                    raise RuntimeError("File not found or corrupted.")
            else:
                _download_http(url, target, timeout, deadline, max_bytes)
                if not check_integrity(str(target), md5):
                    raise RuntimeError("File not found or corrupted.")
            return silent
        except _Refused as exc:
            target.unlink(missing_ok=True)
            failures.append(f"  {url}: {exc}")
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


def download_mnist(
    root: Path,
    mirrors: Sequence[str],
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float = DEFAULT_DEADLINE,
    max_bytes: int = MAX_FILE_BYTES,
) -> Path:
    """Download, verify and extract the four MNIST files into ``root/MNIST/raw``; return that folder.

    ``timeout`` bounds each connect and each read, ``deadline`` the whole download, in seconds, and
    ``max_bytes`` each file, so no mirror can hang the stage or fill the disk."""
    raw_folder = Path(root) / MNIST.__name__ / "raw"
    order = list(mirrors)
    ends_at = time.monotonic() + deadline
    with atomic_dir(raw_folder) as staging:
        for filename, md5 in MNIST_RESOURCES:
            silent = _download_one(filename, md5, order, staging, timeout, ends_at, max_bytes)
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
