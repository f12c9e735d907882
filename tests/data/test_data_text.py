"""Text TSV: SST-2, empty lines and texts, bad bytes, missing columns, long texts kept whole."""

from __future__ import annotations

import pytest

from hidden_geometry.data.text import read_text_tsv
from hidden_geometry.errors import InputError


def write(tmp_path, content: bytes | str, name: str = "texts.tsv"):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def test_real_sst2_dev(shared_data):
    table, summary = read_text_tsv(shared_data / "text" / "sst2-dev.tsv")
    assert len(table) == 872 and summary["n_read"] == 872
    assert set(table.labels()) == {"0", "1"}
    assert table.input_column == "text" and all(t == t.strip() and t for t in table.labels("text"))
    assert table.ids[0] == "line2"  # ids follow file lines (line 1 is the header)
    assert summary["n_lines_with_bad_bytes"] == 0 and summary["dropped"] == {"empty_text": 0}


def test_empty_lines_and_empty_texts_are_dropped_and_counted(tmp_path):
    path = write(tmp_path, "sentence\tlabel\nfirst one\t1\n\n   \nsecond\t0\n \t1\n\t0\nthird\t1\n")
    table, summary = read_text_tsv(path)
    assert table.labels("text") == ["first one", "second", "third"]
    assert table.ids == ["line2", "line5", "line8"]
    assert summary["n_empty_lines"] == 2
    assert summary["dropped"] == {"empty_text": 2} and summary["empty_text_lines"] == [6, 7]


def test_non_utf8_bytes_replaced_and_lines_listed(tmp_path):
    path = write(tmp_path, b"sentence\tlabel\ncaf\xe9 au lait\t1\nfine\t0\nbad \xff\xfe end\t0\n")
    table, summary = read_text_tsv(path)
    assert table.labels("text")[0] == "caf\ufffd au lait"
    assert summary["bad_byte_lines"] == [2, 4] and summary["n_lines_with_bad_bytes"] == 2


def test_non_utf8_bytes_error_by_policy(tmp_path):
    path = write(tmp_path, b"sentence\tlabel\nok\t1\ncaf\xe9\t1\n")
    with pytest.raises(InputError, match=r"texts.tsv:3: not UTF-8 \(byte 0xe9 at column 4\)"):
        read_text_tsv(path, bad_bytes="error")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"text_column": "text"},
            r"texts.tsv: no column 'text' \(set by text_column\); the header has: sentence, label",
        ),
        ({"label_column": "sentiment"}, r"no column 'sentiment' \(set by label_column\)"),
        ({"id_column": "uid"}, r"no column 'uid' \(set by id_column\)"),
    ],
)
def test_missing_column_names_column_and_file(tmp_path, kwargs, message):
    with pytest.raises(InputError, match=message):
        read_text_tsv(write(tmp_path, "sentence\tlabel\nhello\t1\n"), **kwargs)


def test_wrong_number_of_fields_names_the_line(tmp_path):
    with pytest.raises(InputError, match=r"texts.tsv:3: 3 fields where the header has 2"):
        read_text_tsv(write(tmp_path, "sentence\tlabel\nok\t1\nhas\ta tab\t0\n"))


def test_very_long_text_is_kept_whole(tmp_path):
    long_text = " ".join(["word"] * 20000)
    table, summary = read_text_tsv(write(tmp_path, f"sentence\tlabel\n{long_text}\t1\nshort\t0\n"))
    assert table.labels("text")[0] == long_text
    assert summary["max_length_chars"] == len(long_text)
    assert table.labels("length")[0] == str(len(long_text))


def test_id_group_and_no_label_columns(tmp_path):
    path = write(tmp_path, "uid\ttopic\ttext\tsource\nA\tx\thello\ts1\nB\t\tworld\ts2\n")
    table, summary = read_text_tsv(
        path, text_column="text", label_column="topic", id_column="uid", group_column="source"
    )
    assert table.ids == ["A", "B"] and table.labels() == ["x", ""] and table.labels("group") == ["s1", "s2"]
    assert summary["empty_label_lines"] == [3]
    unlabelled, _ = read_text_tsv(path, text_column="text", label_column=None)
    assert unlabelled.labels() == ["", ""]


def test_duplicate_ids_and_empty_files(tmp_path):
    with pytest.raises(InputError, match=r"texts.tsv:3: duplicate id 'A' \(first at line 2\)"):
        read_text_tsv(write(tmp_path, "uid\tsentence\tlabel\nA\tx\t1\nA\ty\t0\n"), id_column="uid")
    with pytest.raises(InputError, match="empty file"):
        read_text_tsv(write(tmp_path, "\n\n", name="empty.tsv"))
    with pytest.raises(InputError, match="no texts"):
        read_text_tsv(write(tmp_path, "sentence\tlabel\n", name="header_only.tsv"))


def test_crlf_and_gzip(tmp_path):
    import gzip

    content = "sentence\tlabel\r\nhello there\t1\r\n"
    table, _ = read_text_tsv(write(tmp_path, gzip.compress(content.encode()), name="t.tsv.gz"))
    assert table.labels("text") == ["hello there"] and table.labels() == ["1"]
