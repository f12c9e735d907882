"""Issue 5, config cases at the workflow level: the run stops before any job, naming the key, exit status non-zero."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from hidden_geometry.config import load_yaml

from .conftest import DEMO_CONFIG, run_snakemake


def write_config(folder: Path, config: dict) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def broken(change) -> dict:
    config = copy.deepcopy(load_yaml(DEMO_CONFIG))
    change(config)
    return config


CASES = {
    "unknown_key": (lambda c: c["geometry"].update(kk=10), "config key 'geometry.kk': unknown key"),
    "wrong_type": (lambda c: c["extraction"].update(shard_size="ten"), "config key 'extraction.shard_size'"),
    "unknown_model_name": (lambda c: c["models"]["esm2_t6_random"].update(source="esm2_t6_8M"),
                           "config key 'models.esm2_t6_random.source': unknown fair-esm model 'esm2_t6_8M'"),
    "missing_path": (lambda c: c["datasets"].update(own={"kind": "text_tsv", "path": "no/such/file.tsv"}),
                     "config key 'datasets.own.path': path 'no/such/file.tsv' does not exist"),
    # the names of the workflow's folders and result files come from the rules (common.smk)
    "reserved_folder_name": (lambda c: c["datasets"].update(training={"kind": "synthetic_text", "n_per_class": 5}),
                             "config key 'datasets.training': the name is reserved for the workflow's own folders"),
    "result_file_name": (lambda c: c["datasets"].update({"items.tsv": {"kind": "synthetic_text", "n_per_class": 5}}),
                         "config key 'datasets.items.tsv': the name is that of a result file"),
    "analysis_unknown_model": (lambda c: c["analyses"][0].update(models=["minilm", "gpt9"]),
                               "config key 'analyses.0.models.1': unknown model 'gpt9'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_stops_before_any_job(case: str, tmp_path: Path) -> None:
    change, expected = CASES[case]
    config = write_config(tmp_path, broken(change))
    run = run_snakemake(tmp_path / "work", configfile=config, timeout=120)
    assert run.returncode != 0
    assert expected in run.output
    error_lines = [line for line in run.output.splitlines() if line.startswith("Invalid config:")]
    assert len(error_lines) == 1  # one line names the problem
    assert "Traceback" not in run.output
    assert not (run.workdir / "results").exists()  # no job ran, nothing written
    assert not (run.workdir / "resources").exists()


def test_missing_configfile_is_explained(tmp_path: Path) -> None:
    run = run_snakemake(tmp_path, configfile=None, timeout=120)
    assert run.returncode != 0
    assert "--configfile config/demo.yaml" in run.output
