"""`load_dataset`: every kind, spec validation naming the key, defaults, downloads, byte-identical output."""

from __future__ import annotations

import hashlib
import json

import jsonschema
import numpy as np
import pytest
from PIL import Image

from hidden_geometry.data import DATASET_SCHEMAS, KINDS, load_dataset, validate_dataset_spec, write_dataset, write_items
from hidden_geometry.data import dataset as dataset_module
from hidden_geometry.data import scope as scope_module
from hidden_geometry.data.items import read_items
from hidden_geometry.errors import InputError

SCOPE_FILE = "scope/astral-scopedom-seqres-gd-sel-gs-bib-40-2.07.fa"


def assert_counts_add_up(summary):
    counts = summary["counts"]
    assert counts["kept"] == summary["n_items"]
    assert counts["read"] == counts["kept"] + sum(counts["dropped"].values()), counts


def items_bytes(tmp_path, spec, name="one"):
    table, images, summary = load_dataset(spec, tmp_path / "cache")
    assert_counts_add_up(summary)
    path = write_items(table, tmp_path / f"{name}.tsv")
    return path.read_bytes(), images, summary


def test_schemas_are_valid_and_cover_every_kind():
    assert set(DATASET_SCHEMAS) == set(KINDS)
    for kind, schema in DATASET_SCHEMAS.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["additionalProperties"] is False and "kind" in schema["required"]
        assert schema["properties"]["kind"] == {"type": "string", "const": kind}
        for key, prop in schema["properties"].items():
            if "default" in prop:  # every default is valid for its own key
                jsonschema.Draft202012Validator(prop).validate(prop["default"])


def test_module_docstring_documents_every_key():
    doc = dataset_module.__doc__
    for kind, schema in DATASET_SCHEMAS.items():
        assert f"| {kind} |" in doc
        for key in schema["properties"]:
            assert f"`{key}`" in doc, (kind, key)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"kind": "fasta", "path": "x.fa", "lables": "l.tsv"}, r"datasets.demo.lables: unknown key for kind 'fasta'"),
        ({"kind": "fasta", "path": "x.fa", "n": "10"}, r"datasets.demo.n: '10' is not of type 'integer', 'null'"),
        ({"kind": "fasta"}, r"datasets.demo: 'path' is a required property"),
        ({"kind": "scope"}, r"datasets.demo: kind 'scope' needs 'path' or 'url'"),
        ({"kind": "scope", "path": "x", "classes": "xyz"}, r"datasets.demo.classes: 'xyz' does not match"),
        (
            {"kind": "fasta", "path": "x", "unknown_residues": "ignore"},
            r"datasets.demo.unknown_residues: 'ignore' is not one of",
        ),
        ({"kind": "image", "path": "x"}, r"datasets.demo.kind: unknown kind 'image'"),
        ({"path": "x"}, r"datasets.demo.kind: unknown kind None"),
        ("scope", r"datasets.demo: must be a mapping"),
    ],
)
def test_bad_specs_name_the_key(spec, message):
    with pytest.raises(InputError, match=message):
        validate_dataset_spec(spec, "demo")


def test_defaults_are_filled_and_spec_not_modified():
    spec = {"kind": "scope", "path": "x"}
    filled = validate_dataset_spec(spec)
    assert spec == {"kind": "scope", "path": "x"}
    assert filled["min_per_superfamily"] == 10 and filled["max_residues"] == 1022 and filled["seed"] == 0
    assert filled["classes"] == "abcdefg" and filled["too_long"] == "crop_centre"


def test_missing_path_names_the_key(tmp_path):
    with pytest.raises(InputError, match=r"datasets.prot.path: .*nope.fa does not exist"):
        load_dataset({"kind": "fasta", "path": str(tmp_path / "nope.fa")}, tmp_path, name="prot")


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "synthetic_proteins", "n_superfamilies": 3, "members_per_family": 3},
        {"kind": "synthetic_text", "n_per_class": 10},
        {"kind": "digits", "per_class": 2, "size": 12},
    ],
)
def test_offline_kinds_are_byte_identical_across_runs(tmp_path, spec):
    first, images_a, summary = items_bytes(tmp_path, spec, "a")
    second, images_b, _ = items_bytes(tmp_path, spec, "b")
    assert first == second and len(first) > 100
    assert (images_a is None) == (images_b is None)
    if images_a is not None:
        assert np.array_equal(images_a, images_b) and images_a.shape[1:] == (12, 12, 3)
    assert summary["kind"] == spec["kind"] and summary["n_items"] == len(read_items(tmp_path / "a.tsv"))
    assert summary["labels"]["n_classes"] >= 3


def test_fasta_with_labels_and_every_count(tmp_path):
    fasta = tmp_path / "prot.fa"
    fasta.write_text(">a x\nMKVB\n>b\nmk*\n>c\n\n>d\n" + "L" * 30 + "\n>e\nGGJ\n")
    labels = tmp_path / "labels.tsv"
    labels.write_text("id\tlabel\tfam\na\tA\tf1\nb\tA\tf2\nd\tB\tf3\ne\tB\tf3\nzzz\tC\tf9\n")
    spec = {"kind": "fasta", "path": str(fasta), "labels": str(labels), "group_column": "fam", "max_residues": 20}
    table, images, summary = load_dataset(spec, tmp_path)
    assert images is None
    assert table.ids == ["a", "b", "d", "e"]
    assert table.labels() == ["A", "A", "B", "B"] and table.labels("group") == ["f1", "f2", "f3", "f3"]
    assert table.labels("sequence") == ["MKVB", "MK", "L" * 20, "GGX"]
    assert table.labels("description") == ["x", "", "", ""]
    assert_counts_add_up(summary)
    assert summary["counts"]["dropped"] == {"empty_sequence": 1} and summary["counts"]["cropped"] == 1
    details = summary["details"]
    assert details["reading"]["empty_ids"] == ["c"] and details["reading"]["n_lowercase_records"] == 1
    assert details["labels_table"]["n_extra_in_table"] == 1
    assert details["sequences"]["residues_mapped_to_X"] == {"J": 1}
    assert details["sequences"]["characters_removed"] == {"*": 1}
    assert details["sequences"]["cropped_ids"] == ["d"]
    # The crop is the centre window and dataset.json records all of it.
    written = write_dataset(tmp_path / "out", table, images, summary)
    assert json.loads(written["summary"].read_text())["spec"]["max_residues"] == 20


def test_fasta_missing_labels_error_and_drop(tmp_path):
    fasta = tmp_path / "p.fa"
    fasta.write_text(">a\nMK\n>b\nLL\n")
    labels = tmp_path / "l.tsv"
    labels.write_text("id\tlabel\na\tX\n")
    with pytest.raises(InputError, match=r"l.tsv: 1 id\(s\) have no label in column 'label': b"):
        load_dataset({"kind": "fasta", "path": str(fasta), "labels": str(labels)}, tmp_path)
    table, _, summary = load_dataset(
        {"kind": "fasta", "path": str(fasta), "labels": str(labels), "missing_labels": "drop"}, tmp_path
    )
    assert table.ids == ["a"] and summary["labels"]["single_class"] is True
    assert summary["counts"]["dropped"] == {"missing_label": 1}
    assert_counts_add_up(summary)
    assert summary["details"]["labels_table"]["missing_ids"] == ["b"]


def test_fasta_reject_policy_stops_naming_file_line_residue(tmp_path):
    fasta = tmp_path / "p.fa"
    fasta.write_text(">a\nMK\n>b\nL-L\n")
    with pytest.raises(InputError, match=r"p.fa:3 \(b\): residue '-' at position 2"):
        load_dataset({"kind": "fasta", "path": str(fasta), "unknown_residues": "reject"}, tmp_path)


def test_fasta_everything_dropped_is_an_error(tmp_path):
    fasta = tmp_path / "p.fa"
    fasta.write_text(">a\n" + "M" * 50 + "\n")
    with pytest.raises(InputError, match="no sequences left after cleaning"):
        load_dataset({"kind": "fasta", "path": str(fasta), "max_residues": 10, "too_long": "drop"}, tmp_path)


def test_url_is_downloaded_into_the_cache_and_checked(tmp_path, monkeypatch):
    sleeps = []
    monkeypatch.setattr(scope_module.time, "sleep", sleeps.append)
    source = tmp_path / "remote.fa"
    source.write_text(">d1a_ a.1.1.1 (A:) x\nMKV\n")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    spec = {"kind": "scope", "url": source.as_uri(), "sha256": digest, "min_per_superfamily": 1, "min_families": 1}
    table, _, summary = load_dataset(spec, tmp_path / "cache", name="sc")
    assert table.ids == ["d1a_"] and (tmp_path / "cache" / "downloads" / "sc" / "remote.fa").is_file()
    assert summary["source"].endswith("remote.fa")
    with pytest.raises(InputError, match="checksum mismatch"):
        load_dataset({**spec, "sha256": "1" * 64}, tmp_path / "cache2", name="sc")
    assert len(sleeps) == 3  # a bad checksum is retried (a transfer can be corrupt), then refused
    assert not (tmp_path / "cache2" / "downloads" / "sc" / "remote.fa").exists()


def test_image_folder_and_imagenet_layout(tmp_path):
    for wnid in ("n001", "n002"):
        for i in range(3):
            folder = tmp_path / "ilsvrc" / "train" / wnid
            folder.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (40, 30), (i * 50, 0, 0)).save(folder / f"{wnid}_{i}.JPEG")
    spec = {"kind": "imagenet", "path": str(tmp_path / "ilsvrc"), "per_class": 2, "size": 16}
    table, images, summary = load_dataset(spec, tmp_path)
    assert_counts_add_up(summary)
    assert images.shape == (4, 16, 16, 3) and table.labels() == ["n001", "n001", "n002", "n002"]
    again, _, _ = load_dataset(spec, tmp_path)
    assert again.ids == table.ids
    folder_table, _, _ = load_dataset(
        {"kind": "image_folder", "path": str(tmp_path / "ilsvrc" / "train"), "size": 16}, tmp_path
    )
    assert len(folder_table) == 6


def test_real_scope_paper_like(shared_data, tmp_path):
    spec = {"kind": "scope", "path": str(shared_data / SCOPE_FILE), "max_per_superfamily": 20, "seed": 1}
    first, _, summary = items_bytes(tmp_path, spec, "a")
    second, _, _ = items_bytes(tmp_path, spec, "b")
    assert first == second
    table = read_items(tmp_path / "a.tsv")
    assert table.labels() == table.labels("superfamily")
    assert all(g.startswith(sf + ".") for g, sf in zip(table.labels("group"), table.labels()))
    assert max(int(n) for n in table.labels("length")) <= 1022
    counts = {sf: table.labels().count(sf) for sf in set(table.labels())}
    assert max(counts.values()) == 20 and min(counts.values()) >= 10
    assert summary["details"]["subset"]["n_superfamilies"] == len(counts)


def test_real_proteinnet_cifar_sst2(shared_data, tmp_path):
    table, _, summary = load_dataset(
        {"kind": "proteinnet", "path": str(shared_data / "proteinnet" / "casp7-testing-sample.txt"), "n": 3, "seed": 2},
        tmp_path,
    )
    assert_counts_add_up(summary)
    assert summary["counts"]["dropped"] == {"subsampled": 3}
    assert len(table) == 3 and summary["details"]["n_records"] == 6 and table.input_column == "sequence"
    table, images, summary = load_dataset(
        {"kind": "cifar10", "path": str(shared_data / "images" / "cifar10-test-100-per-class.npz"), "per_class": 2},
        tmp_path,
    )
    assert_counts_add_up(summary)
    assert images.shape == (20, 32, 32, 3) and len(set(table.labels())) == 10
    table, _, summary = load_dataset(
        {"kind": "text_tsv", "path": str(shared_data / "text" / "sst2-dev.tsv"), "n": 100}, tmp_path
    )
    assert len(table) == 100 and summary["details"]["n_subsampled_out"] == 772 and table.input_column == "text"
    assert_counts_add_up(summary)


def test_schema_file_is_the_workflows_and_its_enums_are_the_readers():
    from pathlib import Path

    from hidden_geometry.data import fasta, images, labels, scope

    workflow_file = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "datasets.schema.yaml"
    assert dataset_module.SCHEMA_FILE.resolve() == workflow_file.resolve()  # one file, not a copy
    enums = {
        (kind, key): prop.get("enum") for kind, s in DATASET_SCHEMAS.items() for key, prop in s["properties"].items()
    }
    assert set(enums["fasta", "alphabet"]) == set(fasta.ALPHABETS)
    assert enums["fasta", "unknown_residues"] == list(fasta.RESIDUE_POLICIES)
    assert enums["scope", "too_long"] == list(fasta.LENGTH_POLICIES)
    assert set(enums["fasta", "empty_sequences"]) == set(fasta.EMPTY_POLICIES)
    assert set(enums["fasta", "duplicate_ids"]) == set(fasta.DUPLICATE_POLICIES)
    assert set(enums["fasta", "missing_labels"]) == set(labels.MISSING_POLICIES)
    assert set(enums["imagenet", "corrupt_images"]) == set(images.CORRUPT_POLICIES)
    assert enums["scope", "label"] == enums["synthetic_proteins", "label"] == list(scope.LABEL_LEVELS)
    assert DATASET_SCHEMAS["scope"]["properties"]["classes"]["default"] == scope.TRUE_CLASSES
    assert dataset_module.IMAGE_KINDS <= set(KINDS)
