"""Loading a user's embedding file (.npy, or .npz with a key) and per-row text files (labels, groups) for the CLI.

Every problem a user can fix raises InputError with one line naming the file and the problem: not found or
unreadable, empty, not 2-D, not numbers, NaN or inf rows (named), an .npz without the key asked for (keys listed),
a text file whose line count is not the number of rows, or that is not UTF-8 (line named).
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import numpy as np

from .errors import InputError


def _describe_rows(rows: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in rows[:5])
    return f"{shown}{', ...' if rows.size > 5 else ''}"


def check_embeddings(X: np.ndarray, source: str) -> np.ndarray:
    """Return X as float32/float64 [N, D] or raise InputError naming `source` and the problem."""
    if X.dtype.kind not in "fiub":
        raise InputError(f"{source}: expected numbers, got dtype {X.dtype}")
    if X.ndim != 2:
        raise InputError(f"{source}: expected a 2-D array (points x features), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise InputError(f"{source}: empty array of shape {X.shape}")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if bad.size:
        raise InputError(f"{source}: {bad.size} row(s) contain NaN or inf (rows {_describe_rows(bad)})")
    return X


def load_embeddings(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """Read an N x D float array from `.npy`, or from `.npz` (the array `key`, or the only array there)."""
    source = Path(path)
    if not source.is_file():
        raise InputError(f"{source}: no such file")
    if source.stat().st_size == 0:
        raise InputError(f"{source}: empty file")
    try:
        loaded = np.load(source, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{source}: not a readable .npy/.npz file ({exc})") from exc
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            names = list(loaded.files)
            if key is None:
                if len(names) != 1:
                    raise InputError(
                        f"{source}: .npz holds {len(names)} arrays ({', '.join(names) or 'none'}); pass --key NAME"
                    )
                key = names[0]
            if key not in names:
                raise InputError(f"{source}: no array named {key!r} (arrays: {', '.join(names) or 'none'})")
            try:
                X = loaded[key]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                raise InputError(f"{source}: array {key!r} is not readable ({exc})") from exc
        return check_embeddings(np.asarray(X), f"{source}[{key}]")
    if key is not None:
        raise InputError(f"{source}: --key is only for .npz files")
    return check_embeddings(np.asarray(loaded), str(source))


def load_row_values(path: str | os.PathLike, n_rows: int, what: str = "labels", allow_empty: bool = False) -> list[str]:
    """One value per line (UTF-8; normalised by `hidden_geometry.data.labels.normalise_label` as in the workflow:
    surrounding whitespace, byte-order mark and zero-width characters removed); the line count must equal `n_rows`.
    Lines end at LF, CRLF or CR only (a U+2028 inside a label is part of the label).

    An empty line is an error unless `allow_empty` (for groups, where empty means "no group").
    """
    source = Path(path)
    if not source.is_file():
        raise InputError(f"{source}: no such file")
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise InputError(f"{source}: cannot read ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"{source}:{line}: not UTF-8 text") from exc
    from .data.labels import normalise_label

    lines = re.split(r"\r\n|\r|\n", text)
    if lines and lines[-1] == "":
        lines.pop()  # the newline ending the last line
    values = [normalise_label(line) for line in lines]
    if len(values) == 0:
        raise InputError(f"{source}: empty file, expected {n_rows} {what} (one per line)")
    if len(values) != n_rows:
        raise InputError(f"{source}: {len(values)} {what} for {n_rows} rows (one per line, in row order)")
    if not allow_empty and "" in values:
        raise InputError(f"{source}:{values.index('') + 1}: empty line (every row needs one of the {what})")
    return values


# An extraction folder's seeded sample of token states (models.token_sample writes it): one file per layer.
KEYS_FILE = "tokens_keys.npy"


def token_file(layer: int) -> str:
    return f"tokens_{layer:03d}.npy"


def load_token_sample(folder: str | os.PathLike, layer: int) -> np.ndarray | None:
    """The layer's token sample in an extraction folder, or None when the folder has none."""
    path = Path(folder) / token_file(layer)
    return np.load(path) if path.is_file() else None
