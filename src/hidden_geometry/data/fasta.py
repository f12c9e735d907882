"""FASTA reading and protein sequence cleaning.

`read_fasta` streams records through Biopython's `SimpleFastaParser` (fed by `_lines.iter_lines`: gzip detected by
magic bytes, CRLF line ends, strict UTF-8 with line numbers), upper-cases lower case, and raises
`InputError` naming the file and line for: an empty file, a sequence line before any header, an empty id,
duplicate ids (both line numbers; or keep the first with policy 'first'), bytes that are not UTF-8. A header
without a sequence is dropped and counted by default (policy 'drop'), or an error (policy 'error').

`clean_sequence` fits one sequence to a model's alphabet. ESM-2's vocabulary (fair-esm `proteinseq_toks`) holds
the 20 standard residues plus X (unknown), B, U, Z, O, and the gap/insertion tokens '.' and '-'. Gaps, stops
('*'), digits and other symbols are not residues of the protein, so they are never passed on as letters:

| character | policy "map" (default) | "reject" | "drop" |
| --- | --- | --- | --- |
| letter in the alphabet | kept | kept | kept |
| other letter (e.g. J, or B/Z/O/U for the "standard" alphabet) | -> X, counted per letter | InputError (file, line, residue) | sequence dropped, counted |
| '*', '-', '.', digit, other symbol | removed, counted per character | InputError | sequence dropped, counted |

A sequence left empty is dropped and counted. `fit_length` crops a sequence longer than the model's limit
(ESM-2: 1,022 residues) to its centre window or a seeded random window, or drops it.
"""

from __future__ import annotations

import os
import zlib
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
from Bio.SeqIO.FastaIO import SimpleFastaParser

from ..errors import InputError
from ..io import Record
from ._lines import iter_lines

STANDARD_RESIDUES = "ACDEFGHIKLMNPQRSTVWY"
# Alphabets a model takes, as letters. "esm2" = fair-esm's proteinseq_toks without the gap tokens '.' and '-'.
ALPHABETS: dict[str, str] = {
    "esm2": STANDARD_RESIDUES + "XBUZO",
    "standard": STANDARD_RESIDUES + "X",
}
UNKNOWN_RESIDUE = "X"
ESM2_MAX_RESIDUES = 1022
RESIDUE_POLICIES = ("map", "reject", "drop")
LENGTH_POLICIES = ("crop_centre", "crop_random", "drop")
EMPTY_POLICIES = ("drop", "error")
DUPLICATE_POLICIES = ("error", "first")


@dataclass(frozen=True)
class FastaRecord(Record):
    """One FASTA record: id (first word of the header), the rest of the header, the sequence, header line."""

    id: str
    description: str
    sequence: str
    line: int


@dataclass
class FastaStats:
    """Counts filled in while `read_fasta` streams (a mutable accumulator; read it after the loop)."""

    n_headers: int = 0
    n_records: int = 0
    empty_ids: list[str] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)
    n_lowercase_records: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Not the record of the fields (`io.as_record`): the dropped ids with their counts."""
        return {
            "n_headers": self.n_headers,
            "n_records": self.n_records,
            "n_empty_dropped": len(self.empty_ids),
            "empty_ids": list(self.empty_ids),
            "n_duplicates_dropped": len(self.duplicate_ids),
            "duplicate_ids": list(self.duplicate_ids),
            "n_lowercase_records": self.n_lowercase_records,
        }


def read_fasta(
    path: str | os.PathLike,
    empty_sequences: str = "drop",
    duplicate_ids: str = "error",
    stats: FastaStats | None = None,
) -> Iterator[FastaRecord]:
    """Stream the records of a FASTA file (plain or gzip), upper-cased, whitespace removed from sequences.

    `empty_sequences`: 'drop' (a header without sequence is skipped, its id listed in `stats.empty_ids`) or
    'error'. `duplicate_ids`: 'error' (names both lines) or 'first' (later copies skipped, listed in
    `stats.duplicate_ids`). Raises InputError when the file holds no record at all.
    """
    if empty_sequences not in EMPTY_POLICIES:
        raise InputError(f"empty_sequences must be one of {EMPTY_POLICIES}, got {empty_sequences!r}")
    if duplicate_ids not in DUPLICATE_POLICIES:
        raise InputError(f"duplicate_ids must be one of {DUPLICATE_POLICIES}, got {duplicate_ids!r}")
    source = Path(path)
    counts = stats if stats is not None else FastaStats()
    seen: dict[str, int] = {}
    lines = _NumberedLines(source)
    for title, raw in SimpleFastaParser(lines):
        line = lines.headers.popleft()
        counts.n_headers += 1
        words = title.strip().split(None, 1)
        if not words:
            raise InputError(f"{source}:{line}: header without an id")
        record_id, description = words[0], words[1] if len(words) > 1 else ""
        if raw == "":
            if empty_sequences == "error":
                raise InputError(f"{source}:{line}: header '{record_id}' has no sequence")
            counts.empty_ids.append(record_id)
            continue
        if record_id in seen:
            if duplicate_ids == "error":
                raise InputError(f"{source}:{line}: duplicate id '{record_id}' (first at line {seen[record_id]})")
            counts.duplicate_ids.append(record_id)
            continue
        seen[record_id] = line
        if any(c.islower() for c in raw):
            counts.n_lowercase_records += 1
        counts.n_records += 1
        yield FastaRecord(record_id, description, raw.upper(), line)
    if not lines.any_line:
        raise InputError(f"{source}: empty FASTA file")
    if counts.n_records == 0:
        raise InputError(f"{source}: no sequences ({counts.n_headers} headers, none with a sequence)")


class _NumberedLines:
    """The lines Biopython's SimpleFastaParser reads, from `iter_lines` (gzip, CRLF, strict UTF-8 with line
    numbers): blank lines and old-style ';' comments left out, whitespace removed inside sequence lines, and the
    line number of every header kept in `headers` (the parser reads one header ahead, hence a queue)."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.headers: deque[int] = deque()
        self.any_line = False
        self._lines = self._read()

    def __iter__(self) -> Iterator[str]:
        return self  # one pass: the parser loops over the handle twice and must continue where it stopped

    def __next__(self) -> str:
        return next(self._lines)

    def _read(self) -> Iterator[str]:
        seen_header = False
        for number, text in iter_lines(self.source, decode="error"):
            stripped = text.strip()
            if not stripped:
                continue
            self.any_line = True
            if stripped.startswith(">"):
                seen_header = True
                self.headers.append(number)
                yield stripped + "\n"
            elif stripped.startswith(";"):
                continue
            elif not seen_header:
                raise InputError(f"{self.source}:{number}: sequence line before any '>' header")
            else:
                yield "".join(stripped.split()) + "\n"


@dataclass(frozen=True)
class CleanedSequence(Record):
    """The result of fitting one sequence to an alphabet; `sequence` is None when the sequence was dropped."""

    sequence: str | None
    mapped: dict[str, int]
    removed: dict[str, int]
    dropped_reason: str | None = None


def resolve_alphabet(alphabet: str) -> str:
    """The letters of a named alphabet ('esm2', 'standard'), or `alphabet` itself as a string of letters."""
    letters = ALPHABETS.get(alphabet, alphabet)
    if not letters or not all(c.isalpha() and c.isupper() for c in letters):
        raise InputError(
            f"alphabet must be one of {sorted(ALPHABETS)} or a string of upper-case letters, got {alphabet!r}"
        )
    return letters


def clean_sequence(seq: str, alphabet: str = "esm2", unknown_residues: str = "map", where: str = "") -> CleanedSequence:
    """Fit `seq` (upper case) to `alphabet` per `unknown_residues` ('map', 'reject', 'drop'; see the module table).

    `where` ("file:line (id)") prefixes the InputError raised by 'reject'.
    """
    if unknown_residues not in RESIDUE_POLICIES:
        raise InputError(f"unknown_residues must be one of {RESIDUE_POLICIES}, got {unknown_residues!r}")
    letters = set(resolve_alphabet(alphabet))
    seq = seq.upper()
    outside = [c for c in seq if c not in letters]
    if not outside:
        if not seq:
            return CleanedSequence(None, {}, {}, "empty")
        return CleanedSequence(seq, {}, {}, None)
    if unknown_residues == "reject":
        first = next(i for i, c in enumerate(seq) if c not in letters)
        prefix = f"{where}: " if where else ""
        raise InputError(
            f"{prefix}residue {seq[first]!r} at position {first + 1} is not in the alphabet {''.join(sorted(letters))}"
        )
    if unknown_residues == "drop":
        counted = dict(sorted(Counter(outside).items()))
        return CleanedSequence(None, {}, {}, "residue outside alphabet: " + "".join(sorted(counted)))
    if UNKNOWN_RESIDUE not in letters:
        raise InputError(f"alphabet {alphabet!r} has no {UNKNOWN_RESIDUE!r} to map unknown residues to")
    mapped: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    kept: list[str] = []
    for c in seq:
        if c in letters:
            kept.append(c)
        elif c.isalpha() and c.isascii():
            mapped[c] += 1
            kept.append(UNKNOWN_RESIDUE)
        else:
            # Gaps, stops, digits, symbols and non-ASCII characters are not residues: remove them.
            removed[c] += 1
    cleaned = "".join(kept)
    result_mapped = dict(sorted(mapped.items()))
    result_removed = dict(sorted(removed.items()))
    if not cleaned:
        return CleanedSequence(None, result_mapped, result_removed, "empty")
    return CleanedSequence(cleaned, result_mapped, result_removed, None)


def item_rng(seed: int, item_id: str) -> np.random.Generator:
    """A generator that depends only on (seed, id): an item gets the same draw whatever the file order."""
    return np.random.default_rng([int(seed), zlib.crc32(item_id.encode("utf-8"))])


def fit_length(
    seq: str, max_residues: int | None, too_long: str = "crop_centre", rng: np.random.Generator | None = None
) -> str | None:
    """Crop `seq` to `max_residues` (centre window, or a random window drawn from `rng`), or None for 'drop'."""
    if too_long not in LENGTH_POLICIES:
        raise InputError(f"too_long must be one of {LENGTH_POLICIES}, got {too_long!r}")
    if max_residues is None or len(seq) <= max_residues:
        return seq
    if max_residues < 1:
        raise InputError(f"max_residues must be at least 1, got {max_residues}")
    if too_long == "drop":
        return None
    excess = len(seq) - max_residues
    if too_long == "crop_centre":
        start = excess // 2
    else:
        if rng is None:
            raise InputError("a random crop needs a seeded generator")
        start = int(rng.integers(0, excess + 1))
    return seq[start : start + max_residues]


@dataclass
class SequenceStats:
    """Counts of what `prepare_sequences` changed or dropped (mutable accumulator)."""

    n_in: int = 0
    n_kept: int = 0
    mapped: Counter = field(default_factory=Counter)
    removed: Counter = field(default_factory=Counter)
    n_sequences_mapped: int = 0
    n_sequences_stripped: int = 0
    dropped: dict[str, list[str]] = field(default_factory=dict)
    cropped_ids: list[str] = field(default_factory=list)

    def drop(self, reason: str, item_id: str) -> None:
        self.dropped.setdefault(reason, []).append(item_id)

    def to_dict(self, max_ids: int = 50) -> dict[str, Any]:
        """Not the record of the fields (`io.as_record`): counts per reason, at most `max_ids` ids of each, sorted
        keys."""
        return {
            "n_in": self.n_in,
            "n_kept": self.n_kept,
            "residues_mapped_to_X": dict(sorted(self.mapped.items())),
            "characters_removed": dict(sorted(self.removed.items())),
            "n_sequences_mapped": self.n_sequences_mapped,
            "n_sequences_stripped": self.n_sequences_stripped,
            "dropped": {reason: len(ids) for reason, ids in sorted(self.dropped.items())},
            "dropped_ids": {reason: ids[:max_ids] for reason, ids in sorted(self.dropped.items())},
            "n_cropped": len(self.cropped_ids),
            "cropped_ids": self.cropped_ids[:max_ids],
        }


def prepare_sequence(
    item_id: str,
    seq: str,
    stats: SequenceStats,
    alphabet: str = "esm2",
    unknown_residues: str = "map",
    max_residues: int | None = ESM2_MAX_RESIDUES,
    too_long: str = "crop_centre",
    seed: int = 0,
    where: str = "",
) -> str | None:
    """Clean one sequence and fit it to `max_residues`, counting into `stats`; None when it is dropped."""
    stats.n_in += 1
    cleaned = clean_sequence(seq, alphabet, unknown_residues, where=where or item_id)
    stats.mapped.update(cleaned.mapped)
    stats.removed.update(cleaned.removed)
    stats.n_sequences_mapped += bool(cleaned.mapped)
    stats.n_sequences_stripped += bool(cleaned.removed)
    if cleaned.sequence is None:
        reason = "empty_after_cleaning" if cleaned.dropped_reason == "empty" else "residue_outside_alphabet"
        stats.drop(reason, item_id)
        return None
    fitted = fit_length(cleaned.sequence, max_residues, too_long, item_rng(seed, item_id))
    if fitted is None:
        stats.drop("too_long", item_id)
        return None
    if len(fitted) < len(cleaned.sequence):
        stats.cropped_ids.append(item_id)
    stats.n_kept += 1
    return fitted


def prepare_records(
    records: Iterable[FastaRecord],
    source: str | os.PathLike = "",
    alphabet: str = "esm2",
    unknown_residues: str = "map",
    max_residues: int | None = ESM2_MAX_RESIDUES,
    too_long: str = "crop_centre",
    seed: int = 0,
) -> tuple[list[FastaRecord], SequenceStats]:
    """Clean and length-fit FASTA records; returns the kept records (sequence replaced) and the counts."""
    stats = SequenceStats()
    kept: list[FastaRecord] = []
    for record in records:
        where = f"{source}:{record.line} ({record.id})" if source else f"line {record.line} ({record.id})"
        fitted = prepare_sequence(
            record.id, record.sequence, stats, alphabet, unknown_residues, max_residues, too_long, seed, where
        )
        if fitted is not None:
            kept.append(FastaRecord(record.id, record.description, fitted, record.line))
    return kept, stats
