"""Issue 13: no silent wrong result. One test (or more) per class of the issue; each failed on the code before.

Classes: one definition of "unlabelled"; contradictory settings refused at the config check; no command writes over
its input; skipped files counted and named; labels normalised alike in the CLI and the workflow; free text escaped
where written or drawn; one-line errors with the right cause; no quadratic path on low-dimensional data.
(Reruns after input edits: tests/workflow/test_rerun_inputs.py; resume: tests/models/test_resume_inputs.py.)
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hidden_geometry import config as hg_config
from hidden_geometry.cli import main
from hidden_geometry.data.labels import is_unlabelled, label_summary, normalise_label
from hidden_geometry.errors import InputError
from hidden_geometry.geometry import knn_graph, label_overlap_details
from hidden_geometry.probes import knn_probe, linear_probe

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


# ---- one definition of "unlabelled" ----------------------------------------------------------------------------


def test_one_definition_of_unlabelled() -> None:
    for value in ("", " ", "\t", "\ufeff", "\u200b ", None, float("nan")):
        assert is_unlabelled(value), repr(value)
    for value in ("a", "0", " b ", 0, 1.5):
        assert not is_unlabelled(value), repr(value)
    assert normalise_label("\ufeff a \u200b") == "a"
    assert label_summary(["a", " ", "b", ""]) == {"n_classes": 2, "singleton_classes": ["a", "b"],
                                                  "n_singleton_classes": 2, "single_class": False,
                                                  "n_unlabelled": 2}


def two_clusters() -> tuple[np.ndarray, np.ndarray]:
    """Cluster A: 6 'a' and 6 unlabelled points interleaved; cluster B (far away): 12 'b'."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(12, 3))
    B = rng.normal(size=(12, 3)) + 100.0
    labels = np.array(["a", ""] * 6 + ["b"] * 12, dtype=object)
    return np.vstack([A, B]), labels


def test_label_overlap_skips_unlabelled_points_and_neighbours() -> None:
    X, labels = two_clusters()
    graph = knn_graph(X, 11)
    details = label_overlap_details(graph, labels, k=5)
    # Old code: "" was one more class, scored and counted as a neighbour's label (overlap about 0.7).
    assert details.value == pytest.approx(1.0)
    assert details.n_points == 18 and details.n_unlabelled == 6 and details.n_short == 0


def test_knn_probe_neither_scores_nor_counts_unlabelled_items() -> None:
    X, labels = two_clusters()
    result = knn_probe(knn_graph(X, 11), labels, k=5)
    assert result.n == 18 and result.n_classes == 2 and result.mean == pytest.approx(1.0)
    assert "6 unlabelled" in result.reason


def test_linear_probe_leaves_unlabelled_rows_out() -> None:
    X, labels = two_clusters()
    result = linear_probe(X, labels, folds=3)
    assert result.n == 18 and result.n_classes == 2 and "6 unlabelled" in result.reason


def test_label_overlap_within_the_exclusion_group_is_undefined_not_zero() -> None:
    X, _ = two_clusters()
    family = np.array(["f1"] * 12 + ["f2"] * 12, dtype=object)
    details = label_overlap_details(knn_graph(X, 11), family, k=5, exclude_groups=family)
    assert np.isnan(details.value) and "within one exclusion group" in details.reason  # old: 0.0


# ---- contradictory settings and unsafe names: refused at the config check ------------------------------------------


def demo_config() -> dict:
    return hg_config.load_yaml(ROOT / "config" / "demo.yaml")


def workflow_names() -> dict[str, tuple[str, ...]]:
    """The names the rules reserve (RESULT_FOLDERS, RESULT_FILES in workflow/rules/common.smk), as they pass them."""
    text = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    found = {key: re.search(rf"^{name} = (\([^)]*\))", text, re.M) for key, name in
             (("reserved_names", "RESULT_FOLDERS"), ("result_files", "RESULT_FILES"))}
    return {key: ast.literal_eval(match.group(1)) for key, match in found.items()}


def check(config: dict, base_dir: Path = ROOT) -> None:
    hg_config.prepare_config(copy.deepcopy(config), SCHEMA, base_dir=base_dir, **workflow_names())


def test_demo_config_passes() -> None:
    check(demo_config())


@pytest.mark.parametrize("case, change, expected", [
    ("k_above_graph_k", lambda c: c["geometry"].update(k=40, graph_k=32), "config key 'geometry.k': 40 is larger"),
    ("k_by_dataset_above_graph_k", lambda c: c["geometry"].update(k_by_dataset={"demo_text": 40}),
     "config key 'geometry.k_by_dataset.demo_text': 40 is larger"),
    ("label_column_is_the_group", lambda c: c["analyses"][1].update(label_column="family"),
     "config key 'analyses.1.label_column'"),
    ("dataset_label_is_the_group", lambda c: c["datasets"]["demo_proteins"].update(label="family"),
     "is its exclusion group"),
    ("dataset_named_like_a_result", lambda c: c["datasets"].update({"summary.tsv": c["datasets"].pop("demo_text")})
     or c["analyses"][0].update(dataset="summary.tsv"), "config key 'datasets.summary.tsv'"),
    ("model_named_like_a_result", lambda c: c["models"].update({"layers.tsv": c["models"].pop("minilm")})
     or c["analyses"][0].update(models=["layers.tsv"]), "config key 'models.layers.tsv'"),
    ("label_with_a_tab", lambda c: c["models"]["minilm"].update(label="Mini\tLM"), "config key 'models.minilm.label'"),
    ("label_with_a_newline", lambda c: c["models"]["minilm"].update(label="Mini\nLM"), "control character"),
])
def test_contradictions_and_unsafe_names_are_refused_in_one_line(case, change, expected) -> None:
    config = demo_config()
    change(config)
    with pytest.raises(InputError) as caught:
        check(config)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_exclusion_off_allows_the_family_label() -> None:
    config = demo_config()
    config["analyses"][1]["label_column"] = "family"
    config["geometry"]["exclude_groups"] = False
    check(config)


def test_results_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "results").write_text("not a folder")
    with pytest.raises(InputError, match="config key 'results_dir': 'results' is a file"):
        check(demo_config(), base_dir=tmp_path)


# ---- the CLI: inputs never overwritten; labels normalised as in the workflow; messages with the right cause -------


def test_knn_refuses_to_write_over_its_input(tmp_path: Path, capsys) -> None:
    X = np.random.default_rng(0).normal(size=(30, 4))
    path = tmp_path / "X.npy"
    np.save(path, X)
    before = path.read_bytes()
    assert main(["knn", str(path), "-k", "3", "-o", str(path)]) == 2
    assert path.read_bytes() == before  # old code: the embeddings were replaced by the graph
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the output is the input file" in err
    link = tmp_path / "link.npy"
    link.symlink_to(path)
    assert main(["knn", str(path), "-k", "3", "-o", str(link)]) == 2 and path.read_bytes() == before


def test_cli_labels_with_bom_and_spaces_are_the_same_classes(tmp_path: Path, capsys) -> None:
    X, _ = two_clusters()
    np.save(tmp_path / "X.npy", X)
    clean = ["a"] * 12 + ["b"] * 12
    messy = ["\ufeffa"] + [" a"] * 5 + ["a "] * 6 + ["b\u200b"] * 12
    (tmp_path / "clean.txt").write_text("\n".join(clean) + "\n", encoding="utf-8")
    (tmp_path / "messy.txt").write_text("\n".join(messy) + "\r\n", encoding="utf-8")
    results = []
    for name in ("clean", "messy"):
        capsys.readouterr()
        assert main(["overlap", str(tmp_path / "X.npy"), "--labels", str(tmp_path / f"{name}.txt"), "-k", "5"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0]["overlap"] == results[1]["overlap"] == pytest.approx(1.0)  # old: 'a' and '\ufeffa' differed


def test_gride_max_rank_one_names_the_rank(tmp_path: Path, capsys) -> None:
    np.save(tmp_path / "X.npy", np.random.default_rng(0).normal(size=(50, 3)))
    assert main(["id", str(tmp_path / "X.npy"), "--estimator", "gride", "--max-rank", "1"]) == 2
    err = capsys.readouterr().err
    assert "--max-rank 1" in err and "distinct points" not in err  # old: "needs at least 3 distinct points"


# ---- data: skipped files counted and named; ids and texts that would break a line ---------------------------------


def test_image_folder_counts_and_names_every_skipped_file(tmp_path: Path) -> None:
    from PIL import Image

    from hidden_geometry.data.images import read_image_folder

    root = tmp_path / "images"
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (i * 40, 10, 10)).save(root / cls / f"{i}.png")
    Image.new("RGB", (8, 8)).save(root / "cat" / "photo.jfif", format="JPEG")  # read now (a JPEG)
    (root / "cat" / "nested").mkdir()
    Image.new("RGB", (8, 8)).save(root / "cat" / "nested" / "deep.png")
    Image.new("RGB", (8, 8)).save(root / "dog" / "noextension", format="PNG")
    (root / "dog" / "gone.png").symlink_to(root / "missing.png")
    (root / "dog" / "notes.txt").write_text("x")
    (root / "stray.png").write_bytes(b"x")
    table, images, summary = read_image_folder(root, size=8)
    assert len(table) == 7 and images.shape == (7, 8, 8, 3) and "cat/photo.jfif" in table.ids
    reasons = {Path(entry["path"]).name: entry["reason"] for entry in summary["skipped_files"]}
    assert set(reasons) == {"nested", "noextension", "gone.png", "notes.txt", "stray.png"}
    assert reasons["gone.png"] == "broken link" and reasons["noextension"] == "no file extension"
    assert summary["n_skipped_files"] == 5 and sum(summary["skipped_by_reason"].values()) == 5


def test_zero_width_only_text_is_an_empty_text(tmp_path: Path) -> None:
    from hidden_geometry.data.text import read_text_tsv

    path = tmp_path / "t.tsv"
    path.write_text("sentence\tlabel\nhello\ta\n\u200b\u200b\tb\n\ufeff world \t\ufeffb\n", encoding="utf-8")
    table, summary = read_text_tsv(path)
    assert table.columns["text"] == ["hello", "world"] and table.columns["label"] == ["a", "b"]
    assert summary["dropped"]["empty_text"] == 1


def test_id_with_a_line_separator_is_refused_naming_it() -> None:
    from hidden_geometry.data.items import ItemTable

    with pytest.raises(InputError, match="U\\+2028"):
        ItemTable(ids=["a\u2028b", "c"], columns={"label": ["x", "y"]})


# ---- free text escaped where it is written or drawn -----------------------------------------------------------


def test_tsv_cells_escape_tabs_and_line_breaks(tmp_path: Path) -> None:
    from hidden_geometry.io import write_table

    path = tmp_path / "t.tsv"
    write_table(path, [{"model": "a\tb\nc\u2028d", "n": 1}], ["model", "n"])
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[1] == "a\\tb\\nc\\u2028d\t1" and len(lines) == 3


def test_a_latex_like_label_is_drawn_as_written(tmp_path: Path) -> None:
    from hidden_geometry.plots import LayerProfile, id_depth_figure, save_figure

    columns = {"relative_depth": np.linspace(0, 1, 4), "id_gride": np.array([3.0, 5, 4, 2]),
               "id_gride_err": np.zeros(4), "id_twonn": np.array([3.0, 4, 4, 2])}
    profile = LayerProfile(label="$x^$ model", columns=columns, chosen_layer=1)
    fig = id_depth_figure([profile], "data$set")
    save_figure(fig, [tmp_path / "f.png"])  # old code: ValueError from mathtext after all the compute
    assert (tmp_path / "f.png").stat().st_size > 0


# ---- a job's InputError reaches the terminal as one line, exit status 2 -----------------------------------------


def test_a_scripts_input_error_is_one_line_and_exit_two(tmp_path: Path) -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import _wf\n"
            "from hidden_geometry.errors import InputError\n"
            "raise InputError('items.tsv:3: bad   value')\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    run = subprocess.run([sys.executable, "-c", code, str(ROOT / "scripts")], capture_output=True, text=True,
                         env=env, timeout=120, check=False)
    assert run.returncode == 2
    assert run.stderr == "hidden-geometry: error: items.tsv:3: bad value\n"  # old: a traceback, status 1


# ---- no quadratic path on one- and low-dimensional data ---------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_low_dimensional_graph_never_takes_the_brute_force(dim: int, monkeypatch) -> None:
    from hidden_geometry.geometry import _knn_cpu

    def refuse(*args, **kwargs):
        raise AssertionError("brute force over all rows (quadratic)")

    monkeypatch.setattr(_knn_cpu, "brute_force_rows", refuse)
    X = np.random.default_rng(dim).normal(size=(6000, dim))
    graph = knn_graph(X, 10)  # old code: every row of 1-D data went to the float64 brute force
    assert graph.indices.shape == (6000, 10)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_low_dimensional_graph_is_exact_with_ties(dim: int) -> None:
    rng = np.random.default_rng(dim)
    X = np.unique(np.round(rng.normal(size=(400, dim)) * 4), axis=0)  # a lattice: many equal distances
    k = 6
    graph = knn_graph(X, k)
    d2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    order = np.lexsort((np.broadcast_to(np.arange(len(X)), d2.shape), d2), axis=1)[:, :k]  # ties by index
    assert np.array_equal(graph.indices, order)
    assert np.allclose(graph.distances, np.sqrt(np.take_along_axis(d2, order, axis=1)), rtol=0, atol=1e-12)


# ---- a shared cache_dir: a cached model folder made for other settings is refused ------------------------------


def test_cached_model_folder_made_for_other_settings_is_refused(tmp_path: Path) -> None:
    spec = {"kind": "esm2", "backend": "fair-esm", "source": "esm2_t6_8M_UR50D", "random_init": {"seed": 0}}
    folder = tmp_path / "random_models" / "esm"
    folder.mkdir(parents=True)
    hg_config.write_cache_identity(folder, spec)
    assert hg_config.check_cache_identity(folder, hg_config.cache_identity(spec), "esm") is None
    other = dict(spec, random_init={"seed": 1})  # another project, same model name, other seed
    with pytest.raises(InputError, match="differs in random_init"):
        hg_config.check_cache_identity(folder, hg_config.cache_identity(other), "esm")
    (folder / hg_config.CACHE_IDENTITY_FILE).unlink()
    assert "cannot confirm" in hg_config.check_cache_identity(folder, hg_config.cache_identity(spec), "esm")


def test_cr_only_fasta_is_read_line_by_line(tmp_path: Path) -> None:
    from hidden_geometry.data.fasta import read_fasta

    path = tmp_path / "mac.fasta"
    path.write_bytes(b">a desc\rMKTAYIAK\rQR\r>b\rMKVLAAG\r")
    records = list(read_fasta(path))  # old code: "no sequences (1 headers, none with a sequence)"
    assert [(r.id, r.sequence, r.line) for r in records] == [("a", "MKTAYIAKQR", 1), ("b", "MKVLAAG", 4)]


@pytest.mark.parametrize("dim", [16, 256])
def test_a_line_in_a_wide_space_never_takes_the_brute_force(dim: int, monkeypatch) -> None:
    """Few intrinsic dimensions in many features: float products certified almost no row (6,977 of 8,000 for a line
    in 16-D), and every such row went to the quadratic brute force; a k-d tree settles them, with the same result."""
    from hidden_geometry.geometry import _knn_cpu

    rng = np.random.default_rng(dim)
    direction = rng.normal(size=dim)
    X = (rng.normal(size=(4000, 1)) * direction / np.linalg.norm(direction) + rng.normal(size=dim)).astype(np.float32)
    sample = np.arange(0, 4000, 37)
    expected, _ = _knn_cpu.brute_force_rows(X, sample, np.arange(4000), 5)

    def refuse(*args, **kwargs):
        raise AssertionError("brute force over all rows (quadratic)")

    monkeypatch.setattr(_knn_cpu, "brute_force_rows", refuse)
    graph = knn_graph(X, 5, precision="float32")
    assert graph.n_duplicates == 0 and np.array_equal(graph.indices[sample], expected)


def test_folder_listing_digest_sees_edits_additions_and_removals_anywhere_below(tmp_path: Path) -> None:
    """The digest that makes a folder source (image classes, a local model folder) a rule parameter."""
    (tmp_path / "m" / "sub").mkdir(parents=True)
    weights = tmp_path / "m" / "sub" / "model.safetensors"
    weights.write_bytes(b"a" * 10)
    seen = {hg_config.folder_listing_digest(tmp_path / "m")}
    weights.write_bytes(b"b" * 11)  # edit
    seen.add(hg_config.folder_listing_digest(tmp_path / "m"))
    (tmp_path / "m" / "sub" / "extra.json").write_text("{}")  # add
    seen.add(hg_config.folder_listing_digest(tmp_path / "m"))
    weights.unlink()  # remove
    seen.add(hg_config.folder_listing_digest(tmp_path / "m"))
    assert len(seen) == 4 and None not in seen
    assert hg_config.folder_listing_digest(tmp_path / "m" / "sub" / "extra.json") is None  # a file: its time counts
