"""MNIST download through torchvision, from its upstream mirrors or any HTTP mirror or local folder.

torchvision supplies the file list, the MD5 checksums, the download with a progress bar and the
extraction; this module adds what a pipeline stage needs on top: mirrors chosen by the user, one error
that names the file, each mirror tried and the expected checksum, and no partial file left behind
(everything is downloaded into a staging folder that replaces the output folder only when complete).
The result is torchvision's own layout, so ``torchvision.datasets.MNIST(root)`` loads it as is.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
from torchvision.datasets import MNIST
from torchvision.datasets.utils import calculate_md5, check_integrity, download_url, extract_archive

from digitflow.errors import DownloadError
from digitflow.io import atomic_dir

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


def _download_one(filename: str, md5: str, mirrors: Sequence[str], folder: Path) -> None:
    failures = []
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
                download_url(url, root=str(folder), filename=filename, md5=md5)
            return
        except (urllib.error.URLError, OSError, RuntimeError, ValueError) as exc:
            if target.exists():
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


def download_mnist(root: Path, mirrors: Sequence[str]) -> Path:
    """Download, verify and extract the four MNIST files into ``root/MNIST/raw``; return that folder."""
    raw_folder = Path(root) / MNIST.__name__ / "raw"
    with atomic_dir(raw_folder) as staging:
        for filename, md5 in MNIST_RESOURCES:
            _download_one(filename, md5, mirrors, staging)
            extract_archive(str(staging / filename), str(staging))
    return raw_folder


def load_mnist_images(root: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """The 70,000 images as uint8 (n, 28, 28), their labels, and where the official test set starts."""
    train = MNIST(str(root), train=True, download=False)
    test = MNIST(str(root), train=False, download=False)
    images = np.concatenate([train.data.numpy(), test.data.numpy()])
    labels = np.concatenate([train.targets.numpy(), test.targets.numpy()]).astype(np.int64)
    return images, labels, len(train.data)
