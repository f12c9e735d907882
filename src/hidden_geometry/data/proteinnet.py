"""ProteinNet text records, streamed: id and primary sequence, with the record's shape checked.

A record is a run of sections, each a `[NAME]` line followed by its rows:
`[ID]` (1 row), `[PRIMARY]` (1 row, the sequence), `[EVOLUTIONARY]` (21 rows of L numbers),
`[TERTIARY]` (3 rows of 3L numbers), `[MASK]` (1 row of L '+'/'-'). Records are separated by blank lines or
simply follow each other. Sections other tools add (proteinnetpy's `[RAMA]`, `[CHI]`, ...) are skipped with
their rows and counted per name in `stats["skipped_sections"]`. Windows line ends and gzip are read as plain
files. A malformed record raises InputError naming the file and line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence, TypeVar

import numpy as np

from ..errors import InputError
from ..io import Record
from ._lines import iter_lines

# Rows per section, and the number of fields each row has in units of the sequence length L.
SECTION_ROWS = {"ID": 1, "PRIMARY": 1, "EVOLUTIONARY": 21, "TERTIARY": 3, "MASK": 1}
FIELDS_PER_RESIDUE = {"EVOLUTIONARY": 1, "TERTIARY": 3}

T = TypeVar("T")


@dataclass(frozen=True)
class ProteinNetRecord(Record):
    """One record's id, primary sequence and the line of its [ID] section."""

    id: str
    sequence: str
    line: int


def _check_section(source: Path, name: str, rows: list[tuple[int, str]], length: int | None, start: int) -> None:
    """Check the rows of one numeric/mask section against the sequence length."""
    if length is None:
        raise InputError(f"{source}:{start}: [{name}] before [PRIMARY]")
    if name == "MASK":
        number, text = rows[0]
        if len(text.strip()) != length or set(text.strip()) - {"+", "-"}:
            raise InputError(
                f"{source}:{number}: [MASK] must be {length} '+'/'-' characters, found {len(text.strip())}"
            )
        return
    expected = FIELDS_PER_RESIDUE[name] * length
    for number, text in rows:
        fields = text.split()
        if len(fields) != expected:
            raise InputError(f"{source}:{number}: [{name}] row has {len(fields)} values, expected {expected}")
        try:
            # Parse only the first and last values: enough to catch a text line in a numeric block, cheap on big files.
            float(fields[0]), float(fields[-1])
        except ValueError as exc:
            raise InputError(f"{source}:{number}: [{name}] row is not numeric ({exc})") from exc


def read_proteinnet(path: str | os.PathLike, stats: dict | None = None) -> Iterator[ProteinNetRecord]:
    """Stream (id, sequence) records from a ProteinNet text file (plain or gzip); sequences upper-cased.

    `stats`, when given, gets `skipped_sections`: {section name: number of sections skipped} (unknown names).
    """
    source = Path(path)
    skipped = (stats if stats is not None else {}).setdefault("skipped_sections", {})
    skipping = False
    record: dict[str, Any] = {}
    section: str | None = None
    section_start = 0
    rows: list[tuple[int, str]] = []
    seen_ids: dict[str, int] = {}
    n_records = 0

    def close_section() -> None:
        nonlocal section, rows
        if section is None:
            return
        want = SECTION_ROWS[section]
        if len(rows) != want:
            raise InputError(f"{source}:{section_start}: [{section}] has {len(rows)} rows, expected {want}")
        if section == "ID":
            record["id"] = rows[0][1].strip()
            if not record["id"]:
                raise InputError(f"{source}:{rows[0][0]}: empty [ID]")
        elif section == "PRIMARY":
            seq = rows[0][1].strip().upper()
            if not seq:
                raise InputError(f"{source}:{rows[0][0]}: empty [PRIMARY] sequence")
            record["sequence"] = seq
        else:
            length = len(record["sequence"]) if "sequence" in record else None
            _check_section(source, section, rows, length, section_start)
        section, rows = None, []

    def finish_record() -> ProteinNetRecord | None:
        nonlocal record
        if not record:
            return None
        if "id" not in record or "sequence" not in record:
            missing = "[ID]" if "id" not in record else "[PRIMARY]"
            raise InputError(f"{source}:{record['line']}: record without {missing}")
        if record["id"] in seen_ids:
            raise InputError(
                f"{source}:{record['line']}: duplicate id '{record['id']}' (first at line {seen_ids[record['id']]})"
            )
        seen_ids[record["id"]] = record["line"]
        done = ProteinNetRecord(record["id"], record["sequence"], record["line"])
        record = {}
        return done

    for number, text in iter_lines(source, decode="error"):
        stripped = text.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            close_section()
            name = stripped[1:-1].upper()
            skipping = name not in SECTION_ROWS
            if skipping:
                if not record:
                    raise InputError(f"{source}:{number}: [{stripped[1:-1]}] before any [ID]")
                skipped[name] = skipped.get(name, 0) + 1
                continue
            if name == "ID":
                done = finish_record()
                if done is not None:
                    n_records += 1
                    yield done
                record = {"line": number}
            elif not record:
                raise InputError(f"{source}:{number}: [{name}] before any [ID]")
            elif name in record.get("sections", ()):
                raise InputError(f"{source}:{number}: second [{name}] in the record starting at line {record['line']}")
            record.setdefault("sections", set()).add(name)
            section, section_start, rows = name, number, []
        elif not stripped:
            close_section()
        elif skipping:
            continue
        else:
            if section is None:
                raise InputError(f"{source}:{number}: data line outside any [SECTION]")
            if len(rows) >= SECTION_ROWS[section]:
                raise InputError(f"{source}:{number}: [{section}] has more than {SECTION_ROWS[section]} rows")
            rows.append((number, text))
    close_section()
    done = finish_record()
    if done is not None:
        n_records += 1
        yield done
    if n_records == 0:
        raise InputError(f"{source}: no ProteinNet records (empty file?)")


def subsample(items: Sequence[T], n: int | None, seed: int = 0) -> list[T]:
    """`n` items drawn without replacement with `seed`, kept in input order; all items when n is None or >= len."""
    if n is None or n >= len(items):
        return list(items)
    if n < 0:
        raise InputError(f"n must be >= 0, got {n}")
    chosen = np.sort(np.random.default_rng(seed).choice(len(items), size=n, replace=False))
    return [items[int(i)] for i in chosen]


def subsample_indices(n_items: int, n: int | None, seed: int = 0) -> list[int]:
    """The indices `subsample` would keep."""
    return subsample(list(range(n_items)), n, seed)
