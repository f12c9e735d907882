"""FASTA reading and sequence cleaning: every FASTA case of issue 5."""

from __future__ import annotations

import gzip

import pytest

from hidden_geometry.data.fasta import (
    ALPHABETS,
    FastaStats,
    clean_sequence,
    fit_length,
    item_rng,
    prepare_records,
    read_fasta,
)
from hidden_geometry.errors import InputError


def write(tmp_path, content: bytes | str, name: str = "in.fa"):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def test_reads_multiline_records_with_descriptions(tmp_path):
    path = write(tmp_path, ">p1 first protein\nMKV\nLLA\n\n>p2\nGG\n")
    records = list(read_fasta(path))
    assert [(r.id, r.description, r.sequence, r.line) for r in records] == [
        ("p1", "first protein", "MKVLLA", 1),
        ("p2", "", "GG", 5),
    ]


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file_is_an_error(tmp_path, content):
    with pytest.raises(InputError, match=r"in.fa: empty FASTA file"):
        list(read_fasta(write(tmp_path, content)))


def test_sequence_before_header_names_the_line(tmp_path):
    with pytest.raises(InputError, match=r"in.fa:2: sequence line before any '>' header"):
        list(read_fasta(write(tmp_path, "\nMKV\n>p1\nMK\n")))


def test_header_without_sequence_is_dropped_and_counted(tmp_path):
    path = write(tmp_path, ">a\n>b\nMK\n>c\n")
    stats = FastaStats()
    records = list(read_fasta(path, stats=stats))
    assert [r.id for r in records] == ["b"]
    assert stats.empty_ids == ["a", "c"]
    assert stats.to_dict()["n_empty_dropped"] == 2 and stats.n_headers == 3


def test_header_without_sequence_is_an_error_by_policy(tmp_path):
    with pytest.raises(InputError, match=r"in.fa:1: header 'a' has no sequence"):
        list(read_fasta(write(tmp_path, ">a\n>b\nMK\n"), empty_sequences="error"))


def test_only_empty_records_is_an_error(tmp_path):
    with pytest.raises(InputError, match="no sequences"):
        list(read_fasta(write(tmp_path, ">a\n>b\n")))


def test_header_without_id(tmp_path):
    with pytest.raises(InputError, match=r"in.fa:3: header without an id"):
        list(read_fasta(write(tmp_path, ">a\nMK\n>  \nMK\n")))


def test_duplicate_ids_name_both_lines(tmp_path):
    with pytest.raises(InputError, match=r"in.fa:5: duplicate id 'a' \(first at line 1\)"):
        list(read_fasta(write(tmp_path, ">a\nMK\n>b\nLL\n>a x\nGG\n")))


def test_duplicate_ids_keep_first_by_policy(tmp_path):
    stats = FastaStats()
    records = list(read_fasta(write(tmp_path, ">a\nMK\n>b\nLL\n>a x\nGG\n"), duplicate_ids="first", stats=stats))
    assert [(r.id, r.sequence) for r in records] == [("a", "MK"), ("b", "LL")]
    assert stats.duplicate_ids == ["a"]


def test_lower_case_is_upper_cased_and_counted(tmp_path):
    stats = FastaStats()
    records = list(read_fasta(write(tmp_path, ">a\nmkv\n>b\nMKV\n"), stats=stats))
    assert [r.sequence for r in records] == ["MKV", "MKV"]
    assert stats.n_lowercase_records == 1


def test_windows_line_ends_and_bom(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbf>a desc\r\nMK\r\nLV\r\n>b\r\nGG\r\n")
    records = list(read_fasta(path))
    assert [(r.id, r.description, r.sequence) for r in records] == [("a", "desc", "MKLV"), ("b", "", "GG")]


def test_gzip_detected_by_magic_bytes_not_name(tmp_path):
    plain = ">a\nMKV\n>b\nGG\n"
    named_plain = write(tmp_path, gzip.compress(plain.encode()), name="no_gz_suffix.fa")
    assert [r.sequence for r in read_fasta(named_plain)] == ["MKV", "GG"]
    # A plain file named .gz is read as plain text.
    assert [r.sequence for r in read_fasta(write(tmp_path, plain, name="plain.fa.gz"))] == ["MKV", "GG"]


def test_truncated_gzip_is_an_input_error(tmp_path):
    data = gzip.compress((">a\n" + "MKV" * 2000 + "\n").encode())
    with pytest.raises(InputError, match="gzip"):
        list(read_fasta(write(tmp_path, data[: len(data) // 2], name="cut.fa.gz")))


def test_non_utf8_bytes_name_the_line(tmp_path):
    with pytest.raises(InputError, match=r"in.fa:3: not UTF-8 \(byte 0xe9"):
        list(read_fasta(write(tmp_path, b">a\nMK\n>b caf\xe9\nLL\n")))


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        list(read_fasta(tmp_path / "nope.fa"))


def test_esm2_alphabet_matches_fair_esm_vocabulary():
    esm_constants = pytest.importorskip("esm.constants")
    vocabulary = set(esm_constants.proteinseq_toks["toks"])
    letters = {t for t in vocabulary if t.isalpha()}
    assert set(ALPHABETS["esm2"]) == letters
    # The gap tokens are in the vocabulary but are not residues: the alphabet leaves them out on purpose.
    assert {"-", "."} <= vocabulary and not {"-", "."} & set(ALPHABETS["esm2"])


def test_map_policy_maps_letters_to_x_and_removes_gaps_stops_digits():
    result = clean_sequence("MKJ-V*1B", alphabet="esm2", unknown_residues="map")
    assert result.sequence == "MKXVB"
    assert result.mapped == {"J": 1}
    assert result.removed == {"*": 1, "-": 1, "1": 1}
    standard = clean_sequence("BZOUXM", alphabet="standard", unknown_residues="map")
    assert standard.sequence == "XXXXXM"
    assert standard.mapped == {"B": 1, "O": 1, "U": 1, "Z": 1}


def test_reject_policy_names_where_and_residue():
    with pytest.raises(InputError, match=r"f.fa:7 \(p1\): residue '\*' at position 3"):
        clean_sequence("MK*", unknown_residues="reject", where="f.fa:7 (p1)")
    assert clean_sequence("MKB", unknown_residues="reject").sequence == "MKB"


def test_drop_policy_drops_with_reason():
    result = clean_sequence("MK-J", unknown_residues="drop")
    assert result.sequence is None and result.dropped_reason == "residue outside alphabet: -J"


def test_length_zero_after_cleaning_is_dropped():
    assert clean_sequence("--**", unknown_residues="map").sequence is None
    assert clean_sequence("--**", unknown_residues="map").dropped_reason == "empty"
    assert clean_sequence("", unknown_residues="map").dropped_reason == "empty"


def test_fit_length_centre_random_drop():
    seq = "".join("ACDEFGHIKLMNPQRSTVWY"[i % 20] for i in range(30))
    assert fit_length(seq, 30) == seq
    assert fit_length(seq, 10, "crop_centre") == seq[10:20]
    assert fit_length(seq, 10, "drop") is None
    windows = {fit_length(seq, 10, "crop_random", item_rng(s, "x")) for s in range(20)}
    assert all(w is not None and len(w) == 10 and w in seq for w in windows)
    assert len(windows) > 1
    assert fit_length(seq, 10, "crop_random", item_rng(3, "x")) == fit_length(seq, 10, "crop_random", item_rng(3, "x"))


def test_prepare_records_counts_every_change(tmp_path):
    path = write(tmp_path, ">ok\nMKV\n>odd\nMKBJ*\n>gaps\n---\n>long\n" + "A" * 12 + "\n")
    kept, stats = prepare_records(read_fasta(path), path, max_residues=10, too_long="crop_centre")
    assert [(r.id, r.sequence) for r in kept] == [("ok", "MKV"), ("odd", "MKBX"), ("long", "A" * 10)]
    summary = stats.to_dict()
    assert summary["residues_mapped_to_X"] == {"J": 1}
    assert summary["characters_removed"] == {"*": 1, "-": 3}
    assert summary["dropped"] == {"empty_after_cleaning": 1}
    assert summary["dropped_ids"] == {"empty_after_cleaning": ["gaps"]}
    assert summary["cropped_ids"] == ["long"] and summary["n_kept"] == 3 and summary["n_in"] == 4


def test_prepare_records_too_long_dropped_and_reject_names_file_line(tmp_path):
    path = write(tmp_path, ">a\nMKV\n>b\nMKVLL\n>c\nMK1\n")
    kept, stats = prepare_records(list(read_fasta(path))[:2], path, max_residues=4, too_long="drop")
    assert [r.id for r in kept] == ["a"] and stats.dropped == {"too_long": ["b"]}
    with pytest.raises(InputError, match=r"in.fa:5 \(c\): residue '1'"):
        prepare_records(read_fasta(path), path, unknown_residues="reject")


def test_random_crop_depends_on_id_not_order(tmp_path):
    records = list(read_fasta(write(tmp_path, ">a\n" + "ACDEFGHIKL" * 5 + "\n>b\n" + "MNPQRSTVWY" * 5 + "\n")))
    forward, _ = prepare_records(records, max_residues=7, too_long="crop_random", seed=5)
    backward, _ = prepare_records(records[::-1], max_residues=7, too_long="crop_random", seed=5)
    assert {r.id: r.sequence for r in forward} == {r.id: r.sequence for r in backward}


@pytest.mark.parametrize("bad", [{"unknown_residues": "keep"}, {"alphabet": "dna!"}])
def test_bad_policy_or_alphabet(bad):
    with pytest.raises(InputError):
        clean_sequence("MK", **bad)


def test_crlf_and_gzip_fasta_read_the_same_records_as_the_plain_file(tmp_path, shared_data):
    import gzip as gz

    plain_path = next(p for p in sorted((shared_data / "scope").iterdir()) if p.suffix == ".fa")
    text = plain_path.read_bytes()
    assert b"\r\n" not in text
    plain = [r.to_dict() for r in read_fasta(plain_path)]
    assert len(plain) > 100
    variants = {
        "crlf.fa": text.replace(b"\n", b"\r\n"),
        "plain.fa.gz": gz.compress(text),
        "crlf.fa.gz": gz.compress(text.replace(b"\n", b"\r\n")),
    }
    for name, data in variants.items():
        (tmp_path / name).write_bytes(data)
        assert [r.to_dict() for r in read_fasta(tmp_path / name)] == plain, name


def test_comments_blank_lines_and_tabs_inside_sequences(tmp_path):
    path = write(tmp_path, "; old comment\n\n>p1 first one\nMK\tV\n\n; note\nLL\n>p2\r\nGG \n")
    records = list(read_fasta(path))
    assert [(r.id, r.description, r.sequence, r.line) for r in records] == [
        ("p1", "first one", "MKVLL", 3),
        ("p2", "", "GG", 8),
    ]
