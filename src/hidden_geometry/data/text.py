"""Labelled texts from a TSV file (SST-2 style: a header, then one text per line).

Fields are split on tabs only, with no quoting (GLUE files contain bare double quotes), and stripped of
surrounding whitespace. Empty lines and rows whose text is empty are dropped and counted; bytes that are not UTF-8
become U+FFFD and the line numbers are listed
(policy 'replace'), or raise InputError naming the line (policy 'error'); a column named but absent raises
InputError naming the column and the file. Texts are kept whole: truncation to the model's token limit happens
at tokenization (models stage), which counts it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import InputError
from ._lines import DECODE_POLICIES, iter_lines
from .items import ItemTable


@dataclass(frozen=True)
class TsvRow:
    """One data row of a TSV file: its line number and fields by column name."""

    line: int
    fields: dict[str, str]


def read_tsv_rows(
    path: str | os.PathLike,
    decode: str = "error",
    counts: dict | None = None,
    delimiter: str = "\t",
) -> tuple[list[str], Iterator[TsvRow]]:
    """The header of a TSV file and an iterator over its non-empty rows.

    A row with a different number of fields than the header raises InputError (file:line); empty lines are
    skipped and counted in `counts['empty_lines']`.
    """
    source = Path(path)
    lines = iter_lines(source, decode=decode, counts=counts)
    header: list[str] | None = None
    for number, text in lines:
        if text.strip():
            header = [h.strip() for h in text.split(delimiter)]
            break
    if header is None:
        raise InputError(f"{source}: empty file (no header line)")
    if len(set(header)) != len(header) or "" in header:
        raise InputError(f"{source}:{number}: header has empty or duplicate column names: {header}")

    def rows() -> Iterator[TsvRow]:
        for line, text in lines:
            if not text.strip():
                if counts is not None:
                    counts["empty_lines"] = counts.get("empty_lines", 0) + 1
                continue
            values = text.split(delimiter)
            if len(values) != len(header):
                raise InputError(f"{source}:{line}: {len(values)} fields where the header has {len(header)}")
            yield TsvRow(line, dict(zip(header, values)))

    return header, rows()


def require_columns(source: str | os.PathLike, header: list[str], columns: dict[str, str | None]) -> None:
    """InputError naming the first setting whose column the header lacks; `columns` maps setting -> column."""
    for setting, column in columns.items():
        if column is not None and column not in header:
            raise InputError(f"{source}: no column '{column}' (set by {setting}); the header has: {', '.join(header)}")


def read_text_tsv(
    path: str | os.PathLike,
    text_column: str = "sentence",
    label_column: str | None = "label",
    group_column: str | None = None,
    id_column: str | None = None,
    bad_bytes: str = "replace",
) -> tuple[ItemTable, dict[str, Any]]:
    """Read labelled texts; returns (items with columns label, group, length, text; summary).

    Ids come from `id_column` (must be unique) or are `line<N>` after the file's line number, so they stay
    the same when other lines are edited. `length` is the text's length in characters.
    """
    if bad_bytes not in DECODE_POLICIES:
        raise InputError(f"bad_bytes must be one of {DECODE_POLICIES}, got {bad_bytes!r}")
    source = Path(path)
    counts: dict[str, Any] = {}
    header, rows = read_tsv_rows(source, decode=bad_bytes, counts=counts)
    require_columns(
        source,
        header,
        {
            "text_column": text_column,
            "label_column": label_column,
            "group_column": group_column,
            "id_column": id_column,
        },
    )
    from .labels import normalise_label  # here: labels.py reads its tables with read_tsv_rows from this module

    ids: list[str] = []
    labels: list[str] = []
    groups: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    empty_text_lines: list[int] = []
    empty_label_lines: list[int] = []
    n_rows = 0
    for row in rows:
        n_rows += 1
        text = normalise_label(row.fields[text_column])  # zero-width or BOM-only text is empty text
        if not text:
            empty_text_lines.append(row.line)
            continue
        item_id = normalise_label(row.fields[id_column]) if id_column else f"line{row.line}"
        if not item_id:
            raise InputError(f"{source}:{row.line}: empty id in column '{id_column}'")
        if item_id in seen:
            raise InputError(f"{source}:{row.line}: duplicate id '{item_id}' (first at line {seen[item_id]})")
        seen[item_id] = row.line
        label = normalise_label(row.fields[label_column]) if label_column else ""
        if label_column and not label:
            empty_label_lines.append(row.line)
        ids.append(item_id)
        labels.append(label)
        groups.append(normalise_label(row.fields[group_column]) if group_column else "")
        texts.append(text)
    if not ids:
        raise InputError(f"{source}: no texts (every row empty or only a header)")
    table = ItemTable(
        ids=ids, columns={"label": labels, "group": groups, "length": [str(len(t)) for t in texts], "text": texts}
    )
    replaced = counts.get("replaced_lines", [])
    summary = {
        "source": str(source),
        "n_read": n_rows,
        "n_kept": len(ids),
        "dropped": {"empty_text": len(empty_text_lines)},
        "empty_text_lines": empty_text_lines[:50],
        "n_empty_lines": counts.get("empty_lines", 0),
        "n_lines_with_bad_bytes": len(replaced),
        "bad_byte_lines": replaced[:50],
        "n_empty_labels": len(empty_label_lines),
        "empty_label_lines": empty_label_lines[:50],
        "max_length_chars": max(len(t) for t in texts),
    }
    return table, summary
