"""Image files no one should have to open: made byte for byte, small on disk, for the tests of every command
that reads pictures (``digitflow.data.image_files.open_image``)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from PIL import Image, ImageDraw

EPS = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 28 28
%%EndComments
newpath 4 4 moveto 24 24 lineto 4 setlinewidth stroke
showpage
%%EOF
"""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, side: int = 30_000) -> Path:
    """A real, complete 1-bit PNG of ``side`` x ``side`` white pixels (900 million at the default): a few
    hundred kilobytes on disk, gigabytes once decoded."""
    row = b"\x00" + b"\xff" * ((side + 7) // 8)  # filter byte "none", then the row's bits
    compressor = zlib.compressobj(9)
    rows_per_block = max(1, (1 << 22) // len(row))
    data = bytearray()
    for start in range(0, side, rows_per_block):
        data += compressor.compress(row * min(rows_per_block, side - start))
    data += compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1 bit per pixel, greyscale
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", bytes(data)) + _chunk(b"IEND", b"")
    )
    return path


def truncated_jpeg(path: Path) -> Path:
    """A photo-like JPEG cut off after its first 400 bytes: Pillow reads its header, then fails on the pixels."""
    picture = Image.new("RGB", (96, 96), (236, 232, 221))
    ImageDraw.Draw(picture).line([(20, 20), (70, 80)], fill=(40, 38, 52), width=9)
    picture.save(path, format="JPEG", quality=90)
    path.write_bytes(path.read_bytes()[:400])
    return path


def eps(path: Path) -> Path:
    """An Encapsulated PostScript picture (Pillow would hand it to Ghostscript)."""
    path.write_bytes(EPS)
    return path
