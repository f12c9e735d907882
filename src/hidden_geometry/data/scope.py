"""SCOPe ASTRAL FASTA files: sccs labels, the remote-homology subset, and a checked download.

An ASTRAL header reads `>d1dlwa_ a.1.1.1 (A:) description`: the domain id, then its sccs
`class.fold.superfamily.family`. Labels: superfamily `a.1.1`, fold `a.1`, class `a`; the family `a.1.1.1` is the
`group` (the exclusion group for label overlap: neighbours from the same family are not counted as remote
homologs). SCOPe's true classes are a-g; h-l (coiled coil, low resolution, peptides, designed, non-protein) are
excluded by default.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError
from ..io import Record
from .fasta import FastaRecord, FastaStats, read_fasta
from .items import ItemTable

SCCS_PATTERN = re.compile(r"^([a-l])\.(\d+)\.(\d+)\.(\d+)$")
TRUE_CLASSES = "abcdefg"
LABEL_LEVELS = ("superfamily", "fold", "class", "family")


@dataclass(frozen=True)
class ScopeDomain:
    """One ASTRAL domain: id, sccs parts, sequence and the header's line number."""

    id: str
    sccs: str
    description: str
    sequence: str
    line: int

    @property
    def scop_class(self) -> str:
        return self.sccs.split(".")[0]

    @property
    def fold(self) -> str:
        return ".".join(self.sccs.split(".")[:2])

    @property
    def superfamily(self) -> str:
        return ".".join(self.sccs.split(".")[:3])

    @property
    def family(self) -> str:
        return self.sccs

    def level(self, name: str) -> str:
        """The label at `name` in LABEL_LEVELS."""
        if name == "class":
            return self.scop_class
        if name in ("fold", "superfamily", "family"):
            return getattr(self, name)
        raise InputError(f"SCOPe label level must be one of {LABEL_LEVELS}, got {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """Not the record of the fields (`io.as_record`): the sccs levels spelled out and the length in place of
        the sequence."""
        return {
            "id": self.id,
            "sccs": self.sccs,
            "class": self.scop_class,
            "fold": self.fold,
            "superfamily": self.superfamily,
            "family": self.family,
            "description": self.description,
            "length": len(self.sequence),
            "line": self.line,
        }


def parse_astral_header(record: FastaRecord, source: str | os.PathLike = "") -> ScopeDomain:
    """Read the sccs from an ASTRAL record's header; InputError naming the file and line when it has none."""
    words = record.description.split(None, 1)
    sccs = words[0] if words else ""
    if not SCCS_PATTERN.match(sccs):
        raise InputError(
            f"{source}:{record.line}: header of '{record.id}' has no SCOPe sccs (class.fold.superfamily.family), "
            f"found {sccs!r}"
        )
    rest = words[1] if len(words) > 1 else ""
    return ScopeDomain(record.id, sccs, rest, record.sequence, record.line)


def read_scope(path: str | os.PathLike, stats: FastaStats | None = None) -> list[ScopeDomain]:
    """All domains of an ASTRAL FASTA file (plain or gzip), sequences upper-cased."""
    return [parse_astral_header(r, path) for r in read_fasta(path, stats=stats)]


@dataclass(frozen=True)
class SubsetSummary(Record):
    """What `remote_homology_subset` kept and why the rest went."""

    n_in: int
    n_kept: int
    n_superfamilies: int
    n_families: int
    n_folds: int
    n_classes: int
    dropped: dict[str, int]
    parameters: dict[str, Any]


def remote_homology_subset(
    domains: Iterable[ScopeDomain],
    min_per_superfamily: int = 10,
    min_families: int = 2,
    min_length: int = 0,
    max_length: int | None = None,
    max_per_superfamily: int | None = None,
    classes: str = TRUE_CLASSES,
    seed: int = 0,
) -> tuple[list[ScopeDomain], SubsetSummary]:
    """The domains of superfamilies fit for remote-homology analysis, in input order.

    Steps, in order: keep classes in `classes`; keep lengths in [min_length, max_length] (before any cropping);
    keep superfamilies with at least `min_per_superfamily` members spread over at least `min_families` families;
    then cap each superfamily at `max_per_superfamily` members, drawn with `seed` (None: no cap).
    """
    params = {
        "min_per_superfamily": min_per_superfamily,
        "min_families": min_families,
        "min_length": min_length,
        "max_length": max_length,
        "max_per_superfamily": max_per_superfamily,
        "classes": classes,
        "seed": seed,
    }
    if min_per_superfamily < 1 or min_families < 1:
        raise InputError("min_per_superfamily and min_families must be at least 1")
    if max_per_superfamily is not None and max_per_superfamily < 1:
        raise InputError(f"max_per_superfamily must be at least 1, got {max_per_superfamily}")
    if max_length is not None and max_length < min_length:
        raise InputError(f"max_length ({max_length}) is below min_length ({min_length})")
    all_domains = list(domains)
    dropped: Counter[str] = Counter()
    in_class = [d for d in all_domains if d.scop_class in classes]
    dropped["class_excluded"] = len(all_domains) - len(in_class)
    in_length = [
        d for d in in_class if len(d.sequence) >= min_length and (max_length is None or len(d.sequence) <= max_length)
    ]
    dropped["length_out_of_bounds"] = len(in_class) - len(in_length)
    members: dict[str, list[int]] = defaultdict(list)
    for index, domain in enumerate(in_length):
        members[domain.superfamily].append(index)
    keep_sf = {
        sf
        for sf, idx in members.items()
        if len(idx) >= min_per_superfamily and len({in_length[i].family for i in idx}) >= min_families
    }
    dropped["superfamily_too_small_or_one_family"] = sum(len(members[sf]) for sf in members if sf not in keep_sf)
    chosen: set[int] = set()
    n_capped = 0
    rng = np.random.default_rng(seed)
    for sf in sorted(keep_sf):
        idx = members[sf]
        if max_per_superfamily is not None and len(idx) > max_per_superfamily:
            pick = rng.choice(len(idx), size=max_per_superfamily, replace=False)
            n_capped += len(idx) - max_per_superfamily
            idx = [idx[i] for i in sorted(pick)]
        chosen.update(idx)
    dropped["superfamily_cap"] = n_capped
    kept = [in_length[i] for i in sorted(chosen)]
    summary = SubsetSummary(
        n_in=len(all_domains),
        n_kept=len(kept),
        n_superfamilies=len({d.superfamily for d in kept}),
        n_families=len({d.family for d in kept}),
        n_folds=len({d.fold for d in kept}),
        n_classes=len({d.scop_class for d in kept}),
        dropped=dict(sorted(dropped.items())),
        parameters=params,
    )
    return kept, summary


def scope_items(
    domains: Iterable[ScopeDomain], label: str = "superfamily", sequences: list[str] | None = None
) -> ItemTable:
    """An items table: label at `label`, group = family, columns superfamily/fold/class/family/length, sequence.

    `sequences` (one per domain) replaces the domains' own sequences, e.g. after cleaning and cropping.
    """
    if label not in LABEL_LEVELS:
        raise InputError(f"SCOPe label must be one of {LABEL_LEVELS}, got {label!r}")
    domain_list = list(domains)
    seqs = [d.sequence for d in domain_list] if sequences is None else list(sequences)
    if len(seqs) != len(domain_list):
        raise ValueError("one sequence per domain expected")
    return ItemTable(
        ids=[d.id for d in domain_list],
        columns={
            "label": [d.level(label) for d in domain_list],
            "group": [d.family for d in domain_list],
            "superfamily": [d.superfamily for d in domain_list],
            "fold": [d.fold for d in domain_list],
            "class": [d.scop_class for d in domain_list],
            "family": [d.family for d in domain_list],
            "length": [str(len(s)) for s in seqs],
            "sequence": seqs,
        },
    )


def sha256_of(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_permanent(exc: BaseException) -> bool:
    """Errors that a retry cannot fix: HTTP 4xx other than 408/429, and missing local files."""
    if isinstance(exc, urllib.error.HTTPError):
        return 400 <= exc.code < 500 and exc.code not in (408, 429)
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, FileNotFoundError):
        return True
    return False


def download_with_retries(
    url: str,
    dest: str | os.PathLike,
    retries: int = 3,
    sha256: str | None = None,
    timeout: float = 60.0,
    backoff_s: float = 2.0,
) -> Path:
    """Download `url` to `dest` atomically, retrying transient failures `retries` times with growing waits.

    When `sha256` is given, a `dest` that already has it is kept without downloading, and a download whose
    checksum differs is retried and finally refused (InputError; nothing left at `dest`). HTTP 4xx errors
    (other than 408/429) are not retried.
    """
    target = Path(dest)
    expected = sha256.lower().strip() if sha256 else None
    if expected is not None and not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise InputError(f"sha256 for {url} must be 64 hex digits, got {sha256!r}")
    if expected is not None and target.is_file() and sha256_of(target) == expected:
        return target
    if retries < 0:
        raise InputError(f"retries must be >= 0, got {retries}")
    last_problem = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            with atomic_path(target) as tmp:
                with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                    shutil.copyfileobj(response, out, length=1 << 20)
                    declared = response.headers.get("Content-Length") if response.headers else None
                    # urllib does not notice a connection closed early: compare with the declared length.
                    if declared and declared.isdigit() and out.tell() != int(declared):
                        raise _ShortTransfer(f"short transfer: {out.tell()} of {declared} bytes")
                if expected is not None:
                    got = sha256_of(tmp)
                    if got != expected:
                        raise _ChecksumMismatch(got)
            return target
        except _ChecksumMismatch as exc:
            last_problem = f"checksum mismatch (sha256 {exc.args[0]}, expected {expected})"
        except _ShortTransfer as exc:
            last_problem = str(exc)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            if _is_permanent(exc):
                raise InputError(f"download of {url} failed: {_describe(exc)}") from exc
            last_problem = _describe(exc)
    raise InputError(f"download of {url} failed after {retries + 1} attempts: {last_problem}")


class _ChecksumMismatch(Exception):
    """Raised inside the download's atomic block so that the bad file is removed."""


class _ShortTransfer(Exception):
    """Fewer bytes arrived than the server declared (raised inside the atomic block: the file is removed)."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return f"{type(exc).__name__}: {exc}"
