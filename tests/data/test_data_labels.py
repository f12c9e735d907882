"""Labels from a separate table: missing and extra ids, one-member classes, a single class."""

from __future__ import annotations

import pytest

from hidden_geometry.data.labels import align_labels, label_summary
from hidden_geometry.errors import InputError


def labels_file(tmp_path, rows: list[tuple[str, str]], header: str = "id\tlabel"):
    path = tmp_path / "labels.tsv"
    path.write_text(header + "\n" + "".join(f"{a}\t{b}\n" for a, b in rows))
    return path


def test_aligns_in_item_order_and_counts_extra_ids(tmp_path):
    path = labels_file(tmp_path, [("c", "y"), ("a", "x"), ("b", "x"), ("z", "q"), ("w", "q")])
    aligned = align_labels(["a", "b", "c"], path)
    assert aligned.ids == ["a", "b", "c"] and aligned.labels == ["x", "x", "y"] and aligned.keep == [0, 1, 2]
    assert aligned.n_extra == 2 and aligned.to_dict()["n_extra_in_table"] == 2


def test_missing_ids_error_names_the_first_few(tmp_path):
    path = labels_file(tmp_path, [("a", "x")])
    ids = ["a"] + [f"m{i}" for i in range(8)]
    with pytest.raises(
        InputError, match=r"labels.tsv: 8 id\(s\) have no label in column 'label': m0, m1, m2, m3, m4 and 3 more"
    ):
        align_labels(ids, path)


def test_missing_ids_dropped_by_policy(tmp_path):
    path = labels_file(tmp_path, [("a", "x"), ("c", "y")])
    aligned = align_labels(["a", "b", "c", "d"], path, missing_labels="drop")
    assert aligned.keep == [0, 2] and aligned.ids == ["a", "c"] and aligned.missing_ids == ["b", "d"]
    assert aligned.to_dict()["n_missing"] == 2
    with pytest.raises(InputError, match="none of the 2 ids"):
        align_labels(["q", "r"], path, missing_labels="drop")


def test_one_member_class_is_kept_and_flagged(tmp_path):
    path = labels_file(tmp_path, [("a", "x"), ("b", "x"), ("c", "lonely")])
    aligned = align_labels(["a", "b", "c"], path)
    assert aligned.labels == ["x", "x", "lonely"]
    assert aligned.singleton_classes == ["lonely"] and not aligned.single_class
    assert aligned.to_dict()["class_sizes_min"] == 1


def test_single_class_is_flagged_not_an_error(tmp_path):
    aligned = align_labels(["a", "b"], labels_file(tmp_path, [("a", "x"), ("b", "x")]))
    assert aligned.single_class and aligned.n_classes == 1 and aligned.to_dict()["single_class"] is True


def test_labels_table_errors(tmp_path):
    with pytest.raises(InputError, match=r"labels.tsv:3: duplicate id 'a' \(first at line 2\)"):
        align_labels(["a"], labels_file(tmp_path, [("a", "x"), ("a", "y")]))
    with pytest.raises(InputError, match=r"no column 'superfamily' \(set by label_column\)"):
        align_labels(["a"], labels_file(tmp_path, [("a", "x")]), label_column="superfamily")
    with pytest.raises(InputError, match="file not found"):
        align_labels(["a"], tmp_path / "none.tsv")
    with pytest.raises(InputError, match="missing_labels must be one of"):
        align_labels(["a"], labels_file(tmp_path, [("a", "x")]), missing_labels="ignore")


def test_group_column(tmp_path):
    path = tmp_path / "labels.tsv"
    path.write_text("name\tsf\tfam\np1\ta.1.1\ta.1.1.1\np2\ta.1.1\ta.1.1.2\n")
    aligned = align_labels(["p2", "p1"], path, id_column="name", label_column="sf", group_column="fam")
    assert aligned.labels == ["a.1.1", "a.1.1"] and aligned.groups == ["a.1.1.2", "a.1.1.1"]


def test_label_summary():
    summary = label_summary(["a", "a", "b", ""])
    assert summary == {
        "n_classes": 2,
        "singleton_classes": ["b"],
        "n_singleton_classes": 1,
        "single_class": False,
        "n_unlabelled": 1,
    }
    assert label_summary(["a", "a"])["single_class"] is True
