"""The items table, images and dataset.json: round trips, column order, atomic writes, bad tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hidden_geometry.data.items import (
    ItemTable,
    read_images,
    read_items,
    write_dataset,
    write_dataset_summary,
    write_images,
    write_items,
)
from hidden_geometry.errors import InputError


def test_round_trip_keeps_awkward_texts_exactly(tmp_path):
    texts = ["plain", "a\ttab", "two\nlines", 'say "hi"', "crlf\r\nend", "  spaces  ", "ünïcödé ✓", ""]
    table = ItemTable(ids=[f"t{i}" for i in range(len(texts))], columns={"label": ["x"] * len(texts), "text": texts})
    path = write_items(table, tmp_path / "items.tsv")
    back = read_items(path)
    assert back.ids == table.ids
    assert back.columns["text"] == texts
    assert back.columns["label"] == ["x"] * len(texts)
    assert back.columns["group"] == [""] * len(texts)


def test_column_order_is_id_label_group_extras_input(tmp_path):
    table = ItemTable(
        ids=["a", "b"],
        columns={"sequence": ["MK", "LV"], "length": ["2", "2"], "group": ["g", "g"], "label": ["x", "y"]},
    )
    path = write_items(table, tmp_path / "items.tsv")
    header = path.read_text(encoding="utf-8").splitlines()[0].split("\t")
    assert header == ["id", "label", "group", "length", "sequence"]
    assert table.input_column == "sequence"
    # Protein tables need no quoting: every line splits into the header's number of fields.
    assert all(len(line.split("\t")) == 5 for line in path.read_text().splitlines())


def test_same_table_same_bytes(tmp_path):
    table = ItemTable(ids=["b", "a"], columns={"label": ["1", "2"], "text": ["x\ty", "z"]})
    write_items(table, tmp_path / "one.tsv")
    write_items(ItemTable(ids=list(table.ids), columns=dict(table.columns)), tmp_path / "two.tsv")
    assert (tmp_path / "one.tsv").read_bytes() == (tmp_path / "two.tsv").read_bytes()


def test_labels_subset_and_len():
    table = ItemTable(ids=["a", "b", "c"], columns={"label": ["x", "y", "z"], "fold": ["1", "2", "3"]})
    assert len(table) == 3
    assert table.labels() == ["x", "y", "z"]
    assert table.labels("fold") == ["1", "2", "3"]
    sub = table.subset([2, 0])
    assert sub.ids == ["c", "a"] and sub.labels() == ["z", "x"] and sub.labels("fold") == ["3", "1"]
    with pytest.raises(InputError, match="no column 'family'"):
        table.labels("family")
    with pytest.raises(IndexError):
        table.subset([3])


@pytest.mark.parametrize(
    "ids, columns, message",
    [
        (["a", "a"], {}, "duplicate id 'a'"),
        (["a", ""], {}, "empty id"),
        (["a\tb"], {}, "tab/newline"),
        (["a"], {"label": ["x", "y"]}, "column 'label' has 2 values"),
        (["a"], {"sequence": ["M"], "text": ["t"]}, "both a 'sequence' and a 'text'"),
    ],
)
def test_bad_tables_are_refused(ids, columns, message):
    with pytest.raises(InputError, match=message):
        ItemTable(ids=ids, columns=columns)


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "items.tsv: empty table"),
        ("name\tlabel\nx\ty\n", "must start with 'id'"),
        ("id\tlabel\na\tx\tEXTRA\n", ":2: 3 fields"),
        ("id\tlabel\na\tx\na\ty\n", r"items.tsv: items table: duplicate id 'a' \(items 0 and 1\)"),
    ],
)
def test_bad_items_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "items.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_items(path)


def test_non_utf8_items_file_names_the_line(tmp_path):
    path = tmp_path / "items.tsv"
    path.write_bytes(b"id\tlabel\na\tx\nb\t\xff\n")
    with pytest.raises(InputError, match=r"items.tsv:3: not UTF-8"):
        read_items(path)


def test_images_round_trip_and_shape_checks(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(3, 4, 5, 3), dtype=np.uint8)
    path = write_images(images, tmp_path / "images.npy")
    assert np.array_equal(read_images(path), images)
    with pytest.raises(InputError, match="uint8"):
        write_images(images.astype(np.float32), tmp_path / "bad.npy")
    with pytest.raises(InputError, match="uint8"):
        write_images(images[..., :1], tmp_path / "bad.npy")
    assert not (tmp_path / "bad.npy").exists()


def test_summary_is_sorted_json_with_nan_as_null(tmp_path):
    path = write_dataset_summary(
        tmp_path / "dataset.json", {"b": float("nan"), "a": np.int64(3), "c": (1, 2), "d": {"z": math.inf}}
    )
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == {"a": 3, "b": None, "c": [1, 2], "d": {"z": None}}
    assert text.index('"a"') < text.index('"b"') < text.index('"c"')


def test_failed_write_leaves_no_file_and_no_temporary(tmp_path):
    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        write_dataset_summary(tmp_path / "dataset.json", {"x": Unserialisable()})
    assert list(tmp_path.iterdir()) == []


def test_write_dataset_writes_all_three_and_checks_rows(tmp_path):
    table = ItemTable(ids=["a", "b"], columns={"label": ["0", "1"]})
    images = np.zeros((2, 2, 2, 3), dtype=np.uint8)
    written = write_dataset(tmp_path / "ds", table, images, {"n_items": 2})
    assert sorted(p.name for p in written.values()) == ["dataset.json", "images.npy", "items.tsv"]
    assert read_items(written["items"]).ids == ["a", "b"]
    with pytest.raises(InputError, match="3 images for 2 items"):
        write_dataset(tmp_path / "bad", table, np.zeros((3, 2, 2, 3), dtype=np.uint8), {})
    assert not (tmp_path / "bad").exists()
