"""The workflow on the real data copies in ../shared/data (config/shared-data.yaml, subsampled): SCOPe 2.07 with
remote-homology filtering and family exclusion, ProteinNet records, CIFAR-10 and SST-2 with MiniLM. Skips with the
reason where the copies are absent."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from hidden_geometry.config import load_yaml
from hidden_geometry.data.items import read_items

from .conftest import ROOT, run_snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shared_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = load_yaml(ROOT / "config" / "shared-data.yaml")
    datasets = config["datasets"]
    datasets["scope207"]["path"] = str(shared_data / "scope" / "astral-scopedom-seqres-gd-sel-gs-bib-40-2.07.fa")
    # the 24 superfamilies with >= 80 members over >= 2 families, 8 each: enough members per label to measure
    datasets["scope207"].update(min_per_superfamily=80, max_per_superfamily=8)
    datasets["scope207"].pop("n", None)
    datasets["proteinnet_casp7"]["path"] = str(shared_data / "proteinnet" / "casp7-testing-sample.txt")
    datasets["cifar10"]["path"] = str(shared_data / "images" / "cifar10-test-100-per-class.npz")
    datasets["cifar10"].update(per_class=12, size=16)
    datasets["sst2"]["path"] = str(shared_data / "text" / "sst2-dev.tsv")
    datasets["sst2"]["n"] = 150
    config["models"]["igpt_tiny_random"]["random_init"]["architecture"]["size"] = 16
    config["extraction"]["shard_size"] = 100
    work = tmp_path_factory.mktemp("shared")
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run = run_snakemake(work / "run", configfile=path)
    if run.returncode != 0:
        pytest.fail(f"shared-data run failed:\n{run.output[-6000:]}")
    return run.workdir / "results" / "shared-data"


def table(path: Path) -> list[dict[str, float]]:
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return [{k: math.nan if v == "NA" else float(v) for k, v in zip(header, line.split("\t"))} for line in lines[1:]]


def test_scope_remote_homology_subset_with_family_exclusion(shared_run: Path) -> None:
    items = read_items(shared_run / "scope207" / "items.tsv")
    superfamilies = set(items.columns["superfamily"])
    assert len(items.ids) == 192 and len(superfamilies) == 24
    for family, superfamily in zip(items.columns["group"], items.columns["superfamily"]):
        assert family.startswith(superfamily + ".")  # the family is the exclusion group
    measures = json.loads((shared_run / "scope207" / "esm2_t6_random" / "measures" / "layer_006.json").read_text())
    assert measures["exclude_groups"] is True
    rows = table(shared_run / "scope207" / "esm2_t6_random" / "layers.tsv")
    assert len(rows) == 7 and all(0 <= r["label_overlap"] <= 1 and r["id_gride"] > 0 for r in rows)
    assert all(r["n_points"] == 192 and 0 <= r["probe_acc"] <= 1 for r in rows)


def test_proteinnet_records_without_labels_give_undefined_label_measures(shared_run: Path) -> None:
    assert len(read_items(shared_run / "proteinnet_casp7" / "items.tsv").ids) == 6
    rows = table(shared_run / "proteinnet_casp7" / "esm2_t6_random" / "layers.tsv")
    assert all(r["n_points"] == 6 for r in rows)
    assert all(math.isnan(r["label_overlap"]) and math.isnan(r["probe_acc"]) for r in rows)
    assert all(math.isfinite(r["id_twonn"]) for r in rows)  # the ID is still measured, with k lowered to 5
    choice = json.loads((shared_run / "proteinnet_casp7" / "esm2_t6_random" / "layer_choice.json").read_text())
    assert choice["probe_best_layer"] is None and choice["untrained"] is True


def test_cifar10_and_sst2(shared_run: Path) -> None:
    cifar = table(shared_run / "cifar10" / "igpt_tiny_random" / "layers.tsv")
    assert len(cifar) == 5 and all(r["n_points"] > 100 for r in cifar)
    sst2 = table(shared_run / "sst2" / "minilm" / "layers.tsv")
    assert len(sst2) == 7
    # trained MiniLM: sentiment is linearly decodable well above chance in its last layers
    assert max(r["probe_acc"] for r in sst2[-3:]) > 0.65
    figures = shared_run / "figures"
    for dataset in ("scope207", "proteinnet_casp7", "cifar10", "sst2"):
        assert (figures / dataset / "fig1_id_depth.png").read_bytes().startswith(b"\x89PNG")
