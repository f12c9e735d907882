"""Line-by-line reading shared by the text-format readers: gzip by magic bytes, line numbers, strict UTF-8.

Lines are read as bytes and decoded one at a time, so a bad byte is reported with its line number and a
huge file is never held in memory.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

from ..errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
DECODE_POLICIES = ("error", "replace")


def open_binary(path: str | os.PathLike) -> BinaryIO:
    """Open `path` for reading bytes, through gzip when its first two bytes are gzip's magic number."""
    source = Path(path)
    if not source.exists():
        raise InputError(f"{source}: file not found")
    if source.is_dir():
        raise InputError(f"{source}: is a folder, expected a file")
    try:
        with open(source, "rb") as probe:
            magic = probe.read(2)
        if magic == GZIP_MAGIC:
            return gzip.open(source, "rb")  # type: ignore[return-value]
        return open(source, "rb")
    except PermissionError as exc:
        raise InputError(f"{source}: permission denied") from exc


def _split_lines(handle: BinaryIO) -> Iterator[bytes]:
    """The lines of a binary file without their ends: LF, CRLF, and lone CR (old Mac files) all end a line."""
    for raw in handle:
        raw = raw.rstrip(b"\n")
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if b"\r" in raw:
            yield from raw.split(b"\r")
        else:
            yield raw


def iter_lines(path: str | os.PathLike, decode: str = "error", counts: dict | None = None) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text without its line end) for every line of `path`.

    Windows (CRLF) and old Mac (CR) line ends and a leading UTF-8 byte-order mark are removed. `decode` is 'error' (a
    line that is not UTF-8 raises InputError naming the file and line) or 'replace' (bad bytes become U+FFFD; the line
    numbers are appended to `counts['replaced_lines']`).
    """
    if decode not in DECODE_POLICIES:
        raise InputError(f"decode policy must be one of {DECODE_POLICIES}, got {decode!r}")
    source = Path(path)
    with open_binary(source) as handle:
        try:
            for number, raw in enumerate(_split_lines(handle), start=1):
                if number == 1 and raw.startswith(UTF8_BOM):
                    raw = raw[len(UTF8_BOM) :]
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    if decode == "error":
                        raise InputError(
                            f"{source}:{number}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
                        ) from exc
                    text = raw.decode("utf-8", errors="replace")
                    if counts is not None:
                        counts.setdefault("replaced_lines", []).append(number)
                yield number, text
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise InputError(f"{source}: truncated or corrupt gzip file ({exc})") from exc
