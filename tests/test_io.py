"""hidden_geometry.io: stable JSON and TSV (byte-identical reruns), one-line errors for unreadable files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hidden_geometry import io
from hidden_geometry.errors import InputError


def test_tidy_rounds_floats_and_turns_undefined_into_null() -> None:
    data = {"b": np.float32(0.1), "a": [1.23456789012, math.nan, np.inf], "n": np.int64(3), "flag": np.bool_(True)}
    tidy = io.json_ready(data, io.FLOAT_DIGITS)
    assert tidy == {"b": 0.1, "a": [1.23457, None, None], "n": 3, "flag": True}
    assert type(tidy["n"]) is int and type(tidy["flag"]) is bool


def test_write_json_is_sorted_and_stable(tmp_path: Path) -> None:
    io.write_json(tmp_path / "a.json", {"z": 1.0000001, "a": {"y": 2, "x": float("nan")}})
    io.write_json(tmp_path / "b.json", {"a": {"x": float("nan"), "y": 2}, "z": 1.0000001})
    text = (tmp_path / "a.json").read_text()
    assert text == (tmp_path / "b.json").read_text()
    assert json.loads(text) == {"a": {"x": None, "y": 2}, "z": 1.0}
    assert list(tmp_path.iterdir()) and not list(tmp_path.glob(".*tmp*"))  # no temporary file left


def test_write_table_has_exact_columns_and_na(tmp_path: Path) -> None:
    rows = [{"layer": 0, "x": 0.123456789, "ok": True}, {"layer": 1, "x": math.nan, "ok": False, "extra": 5}]
    assert io.write_table(tmp_path / "t.tsv", rows, ["layer", "x", "ok"]) == tmp_path / "t.tsv"
    assert (tmp_path / "t.tsv").read_text() == "layer\tx\tok\n0\t0.123457\ttrue\n1\tNA\tfalse\n"
    table = io.read_table(tmp_path / "t.tsv")
    assert list(table.columns) == ["layer", "x", "ok"] and table.index.tolist() == [2, 3]
    assert table.loc[3].to_dict() == {"layer": "1", "x": "NA", "ok": "false"}
    # a DataFrame is written the same way (its own columns, or the ones named; a missing column is NA)
    frame = pd.DataFrame({"layer": [0, 1], "x": [0.123456789, math.nan], "ok": [True, False]})
    io.write_table(tmp_path / "f.tsv", frame)
    assert (tmp_path / "f.tsv").read_bytes() == (tmp_path / "t.tsv").read_bytes()
    io.write_table(tmp_path / "g.tsv", frame, ["layer", "y"])
    assert (tmp_path / "g.tsv").read_text() == "layer\ty\n0\tNA\n1\tNA\n"
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically: no temporary file left


def test_write_table_writes_the_bytes_of_the_former_writer(tmp_path: Path) -> None:
    # the line the workflow's tables were written with before pandas: tab-joined format_cell, one line per row
    rows = [{"a": 1234567, "b": -0.0, "c": "x\"y", "d": None, "e": np.float32(1 / 3), "f": "t\tab\u2028"},
            {"a": np.int64(-3), "b": 1e-300, "c": "", "d": np.inf, "e": np.nan, "f": "\\n"}]
    columns = list("abcdef")
    expected = "\n".join(["\t".join(columns)] + ["\t".join(io.format_cell(row.get(c)) for c in columns)
                                                    for row in rows]) + "\n"
    io.write_table(tmp_path / "t.tsv", rows, columns)
    assert (tmp_path / "t.tsv").read_text(encoding="utf-8") == expected
    assert expected.splitlines()[1] == "1234567\t-0\tx\"y\tNA\t0.333333\tt\\tab\\u2028"


@pytest.mark.parametrize("content, message", [
    ("layer\tx\n0\t0.5\n1\n", r"t.tsv:3: 1 fields where the header has 2"),
    ("layer\tx\n\n0\t0.5\t7\n", r"t.tsv:3: 3 fields where the header has 2"),
    ("layer\tlayer\n0\t1\n", r"t.tsv:1: the header has empty or repeated column names"),
    ("", r"t.tsv: empty table \(no header line\)"),
])
def test_read_table_names_the_line_of_a_bad_row(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "t.tsv"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        io.read_table(path)


def test_read_table_reads_quoted_cells_and_counts_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "q.tsv"
    rows = [{"id": "a", "text": 'two\nlines, a "quote" and a\ttab'}, {"id": "b", "text": "plain"}]
    io.write_table(path, rows, ["id", "text"], quoted=True)
    assert path.read_text() == 'id\ttext\na\t"two\nlines, a ""quote"" and a\ttab"\nb\tplain\n'
    table = io.read_table(path, quoted=True)
    assert table["text"].tolist() == [rows[0]["text"], "plain"] and table.index.tolist() == [2, 4]
    path.write_text('id\ttext\na\t"two\nlines"\nb\n')
    with pytest.raises(InputError, match=r"q.tsv:4: 1 fields"):
        io.read_table(path, quoted=True)
    path.write_text('id\ttext\na\t"never closed\nb\tc\n')
    with pytest.raises(InputError, match="a quote is never closed"):
        io.read_table(path, quoted=True)


def test_read_table_skips_comments_and_keeps_the_file_s_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv"
    path.write_text("# a comment\n\nmodel\tscore\n# another\nbert\t1 # not a comment\n")
    table = io.read_table(path, comment="#")
    assert table.index.tolist() == [5] and table.loc[5, "score"] == "1 # not a comment"
    path.write_bytes(b"model\tscore\nbert\t1\nx\t\xff\n")
    with pytest.raises(InputError, match=r"c.tsv:3: not UTF-8"):
        io.read_table(path)


def test_json_ready_without_digits_keeps_floats_and_converts_results() -> None:
    from hidden_geometry.probes import ProbeResult

    value = io.json_ready({"r": ProbeResult(0.123456789, math.nan, 3), "t": (np.float64(2.5), np.str_("a")),
                           "s": {"b", "a"}, "p": Path("x") / "y"})
    assert value == {"r": {"mean": 0.123456789, "std": None, "n_folds": 3, "reason": "", "n": 0, "n_classes": 0},
                     "t": [2.5, "a"], "s": ["a", "b"], "p": "x/y"}
    assert type(value["t"][1]) is str


def test_unreadable_files_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="bad.json: not JSON"):
        io.read_json(tmp_path / "bad.json")


def test_read_table_columns_gives_floats_and_names_bad_cells(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("layer\tx\n0\t0.5\n1\tNA\n")
    columns = io.read_table_columns(path)
    assert columns["layer"].tolist() == [0.0, 1.0] and columns["x"][0] == 0.5 and math.isnan(columns["x"][1])
    path.write_text("layer\tx\n0\t0.5\n1\tabc\n")
    with pytest.raises(InputError, match="t.tsv:3: column x: 'abc' is not a number"):
        io.read_table_columns(path)


def test_as_record_is_the_fields_through_json_ready() -> None:
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Inner(io.Record):
        value: float = dataclasses.field(metadata={io.RECORD_KEY: "overlap"})
        n: int = 0

    @dataclasses.dataclass(frozen=True)
    class Outer(io.Record):
        name: str
        inner: Inner
        values: tuple = ()

    record = Outer("a", Inner(math.nan, np.int64(2)), (np.float64(0.5), math.inf)).to_dict()
    assert record == {"name": "a", "inner": {"overlap": None, "n": 2}, "values": [0.5, None]}
    assert list(record) == ["name", "inner", "values"] and type(record["inner"]["n"]) is int
