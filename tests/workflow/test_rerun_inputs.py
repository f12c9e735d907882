"""Issue 13: every file that decides an output is an input or a parameter of its rule, so that a rerun after an
edit, an addition or a removal recomputes what changed and nothing else; a job's InputError reaches the terminal
as one line (exit status 2 in the job, no traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from PIL import Image

from hidden_geometry.data.items import read_items

from .conftest import run_snakemake

pytestmark = pytest.mark.slow

FASTA = ">p1\nMKTAYIAKQR\n>p2\nMKVLAAGIVG\n>p3\nMSTNPKPQRK\n>p4\nMALWMRLLPL\n"


def make_inputs(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "prot.fasta").write_text(FASTA)
    (folder / "labels.tsv").write_text("id\tlabel\np1\ta\np2\ta\np3\tb\np4\tb\n")
    for cls in ("cat", "dog"):
        (folder / "imgs" / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(folder / "imgs" / cls / f"{i}.png")
    config = {
        "results_dir": "results",
        "cache_dir": "resources",
        "datasets": {
            "prot": {"kind": "fasta", "path": str(folder / "prot.fasta"), "labels": str(folder / "labels.tsv"),
                     "missing_labels": "drop"},
            "imgs": {"kind": "image_folder", "path": str(folder / "imgs"), "size": 8},
        },
        "models": {
            "esm": {"kind": "esm2", "backend": "fair-esm", "source": "esm2_t6_8M_UR50D", "random_init": {"seed": 0}},
            "igpt": {"kind": "igpt", "backend": "transformers", "random_init": {
                "seed": 0, "architecture": {"n_layer": 2, "n_embd": 32, "n_head": 2, "size": 8}}},
        },
        "analyses": [{"dataset": "prot", "models": ["esm"]}, {"dataset": "imgs", "models": ["igpt"]}],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


TARGETS = ("results/prot/items.tsv", "results/imgs/items.tsv")


def prepare(workdir: Path, config: Path):
    run = run_snakemake(workdir, *TARGETS, "--configfile", str(config), configfile=None, timeout=600)
    assert run.returncode == 0, run.output[-3000:]
    return run


def prepared(run) -> list[str]:
    return sorted(run.jobs_of("prepare_dataset") + run.jobs_of("prepare_image_dataset"))


def test_edits_additions_and_removals_of_inputs_rerun_only_their_dataset(tmp_path: Path) -> None:
    config = make_inputs(tmp_path / "in")
    work = tmp_path / "work"
    assert len(prepared(prepare(work, config))) == 2
    assert prepared(prepare(work, config)) == []  # nothing changed: nothing to do

    labels = tmp_path / "in" / "labels.tsv"
    labels.write_text("id\tlabel\np1\ta\np2\tc\np3\tb\np4\tb\n")  # edit one label
    assert prepared(prepare(work, config)) == ["other_dataset=prot"]  # old code: "Nothing to be done"
    assert read_items(work / "results/prot/items.tsv").columns["label"] == ["a", "c", "b", "b"]

    labels.write_text("id\tlabel\np1\ta\np2\tc\np3\tb\n")  # remove a row: p4 is dropped (missing_labels: drop)
    assert prepared(prepare(work, config)) == ["other_dataset=prot"]
    assert read_items(work / "results/prot/items.tsv").ids == ["p1", "p2", "p3"]

    labels.write_text("id\tlabel\np1\ta\np2\tc\np3\tb\np4\td\n")  # add a row: p4 is back, labelled d
    assert prepared(prepare(work, config)) == ["other_dataset=prot"]
    assert read_items(work / "results/prot/items.tsv").columns["label"] == ["a", "c", "b", "d"]

    image = tmp_path / "in" / "imgs" / "dog" / "2.png"
    Image.new("RGB", (8, 8), (0, 90, 0)).save(image)  # add an image (the class folder's time changes only)
    assert prepared(prepare(work, config)) == ["image_dataset=imgs"]  # old code: "Nothing to be done"
    assert "dog/2.png" in read_items(work / "results/imgs/items.tsv").ids

    Image.new("RGB", (8, 8), (0, 0, 90)).save(image)  # edit it in place
    assert prepared(prepare(work, config)) == ["image_dataset=imgs"]
    image.unlink()  # remove it
    assert prepared(prepare(work, config)) == ["image_dataset=imgs"]
    assert "dog/2.png" not in read_items(work / "results/imgs/items.tsv").ids


def test_a_jobs_input_error_is_one_line_on_the_terminal(tmp_path: Path) -> None:
    config = make_inputs(tmp_path / "in")
    (tmp_path / "in" / "labels.tsv").write_text("id\tlabel\np1\ta\np1\tb\n")  # a duplicate id
    run = run_snakemake(tmp_path / "work", TARGETS[0], "--configfile", str(config), configfile=None, timeout=600)
    assert run.returncode != 0
    lines = [line for line in run.output.splitlines() if line.startswith("hidden-geometry: error:")]
    assert len(lines) == 1 and "labels.tsv:3: duplicate id 'p1'" in lines[0]
    assert "Traceback" not in run.output  # old code: a 20-line traceback before the message
    assert not (tmp_path / "work" / "results" / "prot" / "items.tsv").exists()
