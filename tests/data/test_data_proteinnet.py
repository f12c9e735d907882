"""ProteinNet text records: the real CASP7 sample, malformed records with line numbers, subsampling."""

from __future__ import annotations

import gzip

import pytest

from hidden_geometry.data.proteinnet import read_proteinnet, subsample
from hidden_geometry.errors import InputError


def record(rid: str, seq: str, evo_rows: int = 21, tertiary_fields: int | None = None, mask: str | None = None) -> str:
    """One record in ProteinNet's text layout."""
    n = len(seq)
    tertiary = 3 * n if tertiary_fields is None else tertiary_fields
    lines = ["[ID]", rid, "[PRIMARY]", seq, "[EVOLUTIONARY]"]
    lines += ["\t".join(["0.5"] * n) for _ in range(evo_rows)]
    lines += ["[TERTIARY]"] + ["\t".join(["1.0"] * tertiary) for _ in range(3)]
    lines += ["[MASK]", mask if mask is not None else "+" * n, ""]
    return "\n".join(lines) + "\n"


def write(tmp_path, text: str, name: str = "pn.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_real_casp7_sample(shared_data):
    records = list(read_proteinnet(shared_data / "proteinnet" / "casp7-testing-sample.txt"))
    assert len(records) == 6  # the README's count
    assert len({r.id for r in records}) == 6
    assert all(r.sequence.isalpha() and r.sequence.isupper() for r in records)
    assert records[0].line == 1 and all(a.line < b.line for a, b in zip(records, records[1:]))


def test_records_with_and_without_blank_separators_and_gzip(tmp_path):
    text = record("A#1", "MKV") + record("B#2", "lvgg").rstrip("\n") + "\n"
    records = list(read_proteinnet(write(tmp_path, text)))
    assert [(r.id, r.sequence) for r in records] == [("A#1", "MKV"), ("B#2", "LVGG")]
    packed = tmp_path / "pn.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    assert [r.id for r in read_proteinnet(packed)] == ["A#1", "B#2"]


def test_primary_only_records_are_accepted(tmp_path):
    records = list(read_proteinnet(write(tmp_path, "[ID]\nx\n[PRIMARY]\nMK\n[ID]\ny\n[PRIMARY]\nLL\n")))
    assert [(r.id, r.sequence, r.line) for r in records] == [("x", "MK", 1), ("y", "LL", 5)]


@pytest.mark.parametrize(
    "text, message",
    [
        (record("a", "MKV", evo_rows=20), r"pn.txt:5: \[EVOLUTIONARY\] has 20 rows, expected 21"),
        (record("a", "MKV", evo_rows=22), r"pn.txt:27: \[EVOLUTIONARY\] has more than 21 rows"),
        (record("a", "MKV", tertiary_fields=8), r"pn.txt:28: \[TERTIARY\] row has 8 values, expected 9"),
        (record("a", "MKV", mask="++"), r"pn.txt:\d+: \[MASK\] must be 3"),
        ("[ID]\na\n[SEQUENCE]\nMK\n", r"pn.txt:1: record without \[PRIMARY\]"),  # [SEQUENCE] is skipped
        ("MKV\n[ID]\na\n", r"pn.txt:1: data line outside any \[SECTION\]"),
        ("[PRIMARY]\nMK\n", r"pn.txt:1: \[PRIMARY\] before any \[ID\]"),
        ("[ID]\na\n[MASK]\n++\n", r"pn.txt:3: \[MASK\] before \[PRIMARY\]"),
        ("[ID]\na\n[ID]\nb\n[PRIMARY]\nM\n", r"pn.txt:1: record without \[PRIMARY\]"),
        ("[ID]\na\n[PRIMARY]\nMK\n[PRIMARY]\nLL\n", r"pn.txt:5: second \[PRIMARY\]"),
        (record("a", "MK") + record("a", "LL"), r"pn.txt:\d+: duplicate id 'a' \(first at line 1\)"),
        ("", r"no ProteinNet records"),
    ],
)
def test_malformed_records_name_the_line(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        list(read_proteinnet(write(tmp_path, text)))


def test_non_numeric_evolutionary_row(tmp_path):
    text = record("a", "MK").replace("0.5\t0.5", "0.5\tabc", 1)
    with pytest.raises(InputError, match=r"pn.txt:6: \[EVOLUTIONARY\] row is not numeric"):
        list(read_proteinnet(write(tmp_path, text)))


def test_subsample_is_seeded_and_keeps_order():
    items = [f"p{i}" for i in range(100)]
    first = subsample(items, 10, seed=3)
    assert first == subsample(items, 10, seed=3)
    assert first != subsample(items, 10, seed=4)
    assert len(set(first)) == 10 and first == sorted(first, key=items.index)
    assert subsample(items, 1000, seed=0) == items and subsample(items, None) == items
    with pytest.raises(InputError):
        subsample(items, -1)


def _proteinnetpy_style(text: str) -> str:
    """The same records with the extra sections proteinnetpy writes ([RAMA]: 3 rows, [CHI]: 1 row per record)."""
    out = []
    for line in text.splitlines():
        out.append(line)
        if line == "[MASK]":
            out.insert(len(out) - 1, "[RAMA]\n0.1\t0.2\n0.3\t0.4\n0.5\t0.6\n[CHI]\n1.0\t2.0")
    return "\n".join(out) + "\n"


def test_variants_read_the_same_records_as_the_plain_file(tmp_path, shared_data):
    plain_text = (shared_data / "proteinnet" / "casp7-testing-sample.txt").read_text()
    plain = [r.to_dict() for r in read_proteinnet(write(tmp_path, plain_text, "plain.txt"))]
    extra_text = _proteinnetpy_style(plain_text)
    assert extra_text.count("[RAMA]") == len(plain)
    stats: dict = {}
    extra = list(read_proteinnet(write(tmp_path, extra_text, "extra.txt"), stats=stats))
    assert [(r.id, r.sequence) for r in extra] == [(r["id"], r["sequence"]) for r in plain]
    assert stats["skipped_sections"] == {"RAMA": len(plain), "CHI": len(plain)}
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(plain_text.replace("\n", "\r\n").encode())
    assert [r.to_dict() for r in read_proteinnet(crlf)] == plain
    packed = tmp_path / "extra_crlf.txt.gz"
    packed.write_bytes(gzip.compress(extra_text.replace("\n", "\r\n").encode()))
    assert [(r.id, r.sequence) for r in read_proteinnet(packed)] == [(r["id"], r["sequence"]) for r in plain]


def test_unknown_sections_before_any_record_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"pn\.txt:1: \[RAMA\] before any \[ID\]"):
        list(read_proteinnet(write(tmp_path, "[RAMA]\n0.1\n" + record("A", "MKV"))))


def test_dataset_summary_counts_skipped_sections(tmp_path):
    from hidden_geometry.data.dataset import load_dataset

    path = write(tmp_path, _proteinnetpy_style(record("A#1", "MKV") + record("B#2", "LVGG")))
    table, _, summary = load_dataset({"kind": "proteinnet", "path": str(path)}, tmp_path)
    assert table.ids == ["A#1", "B#2"]
    assert summary["details"]["reading"]["skipped_sections"] == {"RAMA": 2, "CHI": 2}
