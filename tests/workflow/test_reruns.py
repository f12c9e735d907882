"""Issue 5 faults and reproducibility at the workflow level: a killed extraction shard is redone alone, and the
same config run twice gives byte-identical tables."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from hidden_geometry.config import load_yaml

from .conftest import DEMO_CONFIG, SnakemakeRun, run_snakemake

pytestmark = pytest.mark.slow


def copy_run(source: Path, target: Path) -> Path:
    """A copy of a finished run folder (results, cache, Snakemake's metadata), file times kept."""
    shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns("report.html"))
    return target


def simulate_killed_shard(results: Path, dataset: str, model: str, shard: str) -> Path:
    """Leave `results` as a run killed while extracting `shard` of (dataset, model) would: the other shards done,
    this one only half-written in its staging folder, nothing downstream of the extraction written yet."""
    model_dir = results / dataset / model
    for path in sorted(model_dir.iterdir()):
        if path.name != "shards":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    shard_dir = model_dir / "shards" / shard
    shutil.rmtree(shard_dir)
    partial = shard_dir.with_name(f"{shard}.partial")
    partial.mkdir()
    (partial / "layer_000.npy").write_bytes(b"\x93NUMPY half-written")
    shutil.rmtree(results / "figures" / dataset)
    (results / "summary.tsv").unlink()
    return partial


def test_killed_shard_is_redone_alone(demo_run_info: SnakemakeRun, tmp_path: Path) -> None:
    work = copy_run(demo_run_info.workdir, tmp_path / "work")
    results = work / "results"
    model_dir = results / "demo_proteins" / "esm2_t6_random"
    table_before = (model_dir / "layers.tsv").read_bytes()
    untouched = results / "demo_digits" / "igpt_tiny_random" / "layers.tsv"
    untouched_mtime = untouched.stat().st_mtime_ns
    other_shards = {p.name: p.stat().st_mtime_ns for p in (model_dir / "shards").iterdir() if p.name != "0001"}
    partial = simulate_killed_shard(results, "demo_proteins", "esm2_t6_random", "0001")

    rerun = run_snakemake(work)
    assert rerun.returncode == 0, rerun.output[-4000:]
    assert rerun.jobs_of("extract_shard") == ["dataset=demo_proteins, model=esm2_t6_random, shard=0001"]
    assert rerun.jobs_of("gather_embeddings") == ["dataset=demo_proteins, model=esm2_t6_random"]
    for rule in ("prepare_dataset", "prepare_image_dataset", "build_random_model", "input_keep_mask"):
        assert rerun.jobs_of(rule) == [], rule
    assert rerun.jobs_of("layer_geometry") and all("esm2_t6_random" in job for job in rerun.jobs_of("layer_geometry"))
    assert (model_dir / "shards" / "0001" / "manifest.json").is_file() and not partial.exists()
    # the shards that were complete were kept, not recomputed
    assert {p: (model_dir / "shards" / p).stat().st_mtime_ns for p in other_shards} == other_shards
    # the redone shard gives the same numbers: the table is the same, byte for byte
    assert (model_dir / "layers.tsv").read_bytes() == table_before
    assert untouched.stat().st_mtime_ns == untouched_mtime  # other analyses were not touched

    again = run_snakemake(work, "--dry-run")
    assert again.returncode == 0 and "Nothing to be done" in again.output


def test_same_config_twice_gives_byte_identical_outputs(demo_run: Path, tmp_path: Path) -> None:
    """A second, independent run of the demo's text analysis reproduces the demo run's files exactly."""
    config = load_yaml(DEMO_CONFIG)
    config["datasets"] = {"demo_text": config["datasets"]["demo_text"]}
    config["models"] = {"minilm": config["models"]["minilm"]}
    config["analyses"] = [{"dataset": "demo_text", "models": ["minilm"], "checkpoints": False}]
    config["studies"] = {}  # the demo's study is over models this run does not analyse
    path = tmp_path / "text-only.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    second = run_snakemake(tmp_path / "work", configfile=path)
    assert second.returncode == 0, second.output[-4000:]
    first_results, second_results = demo_run, second.results
    compared = ["demo_text/items.tsv", "demo_text/dataset.json", "demo_text/keep.npy", "demo_text/keep.json",
                "demo_text/minilm/layers.tsv", "demo_text/minilm/layer_choice.json",
                "figures/demo_text/minilm/gride_scale.png", "figures/demo_text/minilm/probe_vs_id.png",
                "figures/demo_text/minilm/gride_scale.pdf"]
    compared += [str(p.relative_to(first_results)) for folder in ("measures", "probe")
                 for p in sorted((first_results / "demo_text" / "minilm" / folder).iterdir())]
    for name in compared:
        assert (first_results / name).read_bytes() == (second_results / name).read_bytes(), name
