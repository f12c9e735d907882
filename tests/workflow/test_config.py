"""The workflow's config: schema validation with one-line errors naming the key, defaults, names it expands."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from hidden_geometry import config as hg_config
from hidden_geometry.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
CONFIGS = sorted((ROOT / "config").glob("*.yaml"))


@pytest.fixture()
def demo() -> dict:
    return hg_config.load_yaml(ROOT / "config" / "demo.yaml")


def prepared(config: dict) -> dict:
    return hg_config.prepare_config(config, SCHEMA, base_dir=ROOT)


def error_of(config: dict) -> str:
    with pytest.raises(InputError) as caught:
        prepared(config)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_demo_config_is_valid_and_gets_defaults(demo: dict) -> None:
    config = prepared(demo)
    assert config["results_dir"] == "results"
    assert config["geometry"]["k"] == 10 and config["geometry"]["metric"] == "euclidean"
    assert config["probe"]["max_items"] is None
    assert config["models"]["minilm"]["pooling"] == "mean"
    # the data layer's per-kind defaults are filled in too, with the global seed
    assert config["datasets"]["demo_proteins"]["mutation_rate"] == pytest.approx(0.1)
    assert config["datasets"]["demo_text"]["seed"] == config["seed"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_passes_the_schema(path: Path) -> None:
    config = hg_config.load_yaml(path)
    hg_config.validate_config(config, hg_config.load_yaml(SCHEMA))  # paths may be the user's to set


def test_unknown_top_level_key_is_named(demo: dict) -> None:
    demo["sed"] = 1
    assert error_of(demo).startswith("config key 'sed': unknown key")


def test_unknown_nested_key_is_named_with_its_path(demo: dict) -> None:
    demo["geometry"]["graphk"] = 5
    message = error_of(demo)
    assert "'geometry.graphk'" in message and "graph_k" in message  # the allowed keys are listed


def test_unknown_dataset_key_is_checked_against_the_data_layer(demo: dict) -> None:
    demo["datasets"]["demo_text"]["n_per_klass"] = 5
    assert "'datasets.demo_text.n_per_klass': unknown key" in error_of(demo)


def test_wrong_type_is_named(demo: dict) -> None:
    demo["extraction"]["shard_size"] = "many"
    message = error_of(demo)
    assert "'extraction.shard_size'" in message and "integer" in message


def test_wrong_enum_value_is_named(demo: dict) -> None:
    demo["models"]["minilm"]["pooling"] = "max"
    assert "'models.minilm.pooling'" in error_of(demo)


def test_unknown_fair_esm_model_is_named(demo: dict) -> None:
    demo["models"]["esm2_t6_random"]["source"] = "esm2_t6_8M_UR50"
    message = error_of(demo)
    assert "'models.esm2_t6_random.source'" in message and "esm2_t6_8M_UR50D" in message


def test_analysis_of_unknown_model_or_dataset_is_named(demo: dict) -> None:
    bad_model = copy.deepcopy(demo)
    bad_model["analyses"][0]["models"] = ["minilm", "bert"]
    assert "'analyses.0.models.1': unknown model 'bert'" in error_of(bad_model)
    demo["analyses"][1]["dataset"] = "proteins"
    assert "'analyses.1.dataset': unknown dataset 'proteins'" in error_of(demo)


def test_missing_paths_are_named(demo: dict, tmp_path: Path) -> None:
    demo["datasets"]["own"] = {"kind": "fasta", "path": str(tmp_path / "missing.fa")}
    assert error_of(copy.deepcopy(demo)).startswith("config key 'datasets.own.path': path")
    (tmp_path / "seqs.fa").write_text(">a\nACD\n")
    demo["datasets"]["own"]["path"] = str(tmp_path / "seqs.fa")
    demo["models"]["esm2_t6_random"]["checkpoints"] = {"step1": str(tmp_path / "nope.pt")}
    assert "'models.esm2_t6_random.checkpoints.step1'" in error_of(demo)


def test_model_that_cannot_read_the_dataset_is_refused(demo: dict) -> None:
    demo["analyses"][2]["models"] = ["minilm"]  # a text model on images
    assert "cannot read dataset 'demo_digits'" in error_of(demo)


def test_model_needs_a_source_path_or_random_init(demo: dict) -> None:
    demo["models"]["plain"] = {"kind": "text", "backend": "transformers"}
    assert "'models.plain': needs one of" in error_of(demo)


def test_fair_esm_names_match_the_installed_package() -> None:
    esm_pretrained = pytest.importorskip("esm.pretrained")
    installed = {name for name in dir(esm_pretrained) if name.startswith("esm2_")}
    assert set(hg_config.FAIR_ESM_MODELS) == installed


def test_checkpoints_expand_into_models_and_analyses(demo: dict) -> None:
    config = prepared(demo)
    specs = hg_config.expand_model_specs(config)
    assert "minilm@init" in specs and specs["minilm@init"]["checkpoint_of"] == "minilm"
    assert specs["minilm@init"]["untrained"] is True and specs["minilm"]["untrained"] is False
    pairs = [(a.dataset, a.model) for a in hg_config.analyses(config)]
    assert pairs.index(("demo_text", "minilm")) < pairs.index(("demo_text", "minilm@init"))
    assert hg_config.model_label(config, "minilm@init") == "MiniLM-L6 @init (untrained)"
    assert hg_config.model_label(config, "esm2_t6_random").endswith("(untrained)")
    assert not hg_config.is_untrained(config, "minilm")


def test_checkpoints_by_step_from_paths_and_hub_revisions(demo: dict, tmp_path: Path) -> None:
    (tmp_path / "step1000").mkdir()
    demo["models"]["pythia"] = {
        "kind": "text", "backend": "transformers", "source": "EleutherAI/pythia-70m", "pooling": "last",
        "checkpoints": {
            "s0": {"revision": "step0", "step": 0},
            "s1000": {"path": str(tmp_path / "step1000"), "step": 1000},
            "s3000": {"revision": "step3000", "step": 3000},
        },
    }
    demo["analyses"][0]["models"].append("pythia")
    config = prepared(demo)
    specs = hg_config.expand_model_specs(config)
    assert [specs[f"pythia@{k}"]["step"] for k in ("s0", "s1000", "s3000")] == [0, 1000, 3000]
    assert specs["pythia@s3000"]["revision"] == "step3000" and "path" not in specs["pythia@s3000"]
    assert hg_config.model_origin(config, "pythia@s3000") == "download"
    assert hg_config.model_origin(config, "pythia@s1000") == "path"
    load = hg_config.model_load_spec(config, "pythia@s3000", "resources/models/pythia@s3000")
    assert load["revision"] == "step3000" and load["step"] == 3000 and load["path"].endswith("models/pythia@s3000")
    bad = copy.deepcopy(demo)
    bad["models"]["pythia"]["checkpoints"]["s0"]["step"] = "zero"
    assert "pythia" in error_of(bad)
    bad = copy.deepcopy(demo)
    bad["models"]["pythia"]["checkpoints"]["s1000"]["path"] = str(tmp_path / "nope")
    assert "'models.pythia.checkpoints.s1000.path'" in error_of(bad)


def test_every_load_spec_with_schema_defaults_passes_the_loader_checks(demo: dict) -> None:
    from hidden_geometry.models.loading import validate_spec

    config = prepared(demo)
    for model in hg_config.expand_model_specs(config):
        spec = hg_config.model_load_spec(config, model, "weights")
        spec.pop("path", None)  # the cache folder does not exist here
        checked = validate_spec(dict(spec, source=spec.get("source", "x")), model)
        assert checked["rare_residues"] == "auto" and checked["max_unknown_share"] == 0.01


def test_model_load_spec_points_into_the_weights_folder(demo: dict) -> None:
    # the rules give the folder (workflow/rules/common.smk, model_weights_dir); the library knows no cache layout
    config = prepared(demo)
    esm = hg_config.model_load_spec(config, "esm2_t6_random", "cache/built/esm2_t6_random")
    assert esm["path"] == "cache/built/esm2_t6_random/esm2_t6_8M_UR50D.pt"
    assert esm["untrained"] is True and "random_init" not in esm and "label" not in esm
    with pytest.raises(InputError, match="folder of its weights"):
        hg_config.model_load_spec(config, "esm2_t6_random")
    assert hg_config.model_origin(config, "minilm") == "package"
    assert "path" not in hg_config.model_load_spec(config, "minilm")
    config["models"]["esm2_big"] = {"kind": "esm2", "backend": "fair-esm", "source": "esm2_t33_650M_UR50D"}
    assert hg_config.model_origin(config, "esm2_big") == "download"
    assert hg_config.model_load_spec(config, "esm2_big", "dl/esm2_big")["path"] == "dl/esm2_big/esm2_t33_650M_UR50D.pt"


def test_shards_cover_the_items_exactly() -> None:
    n_items, size = 250, 100
    count = hg_config.n_shards(n_items, size)
    bounds = [hg_config.shard_bounds(shard, n_items, size) for shard in range(count)]
    assert bounds == [(0, 100), (100, 200), (200, 250)]
    assert hg_config.n_shards(0, 10) == 1
    with pytest.raises(InputError):
        hg_config.shard_bounds(3, n_items, size)


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(InputError, match="bad.yaml"):
        hg_config.load_yaml(path)


def test_reserved_names_are_refused(demo: dict) -> None:
    # the names come from the rules (workflow/rules/common.smk; test_config_errors runs them): here any list
    demo["datasets"]["figures"] = {"kind": "synthetic_text", "n_per_class": 5}
    prepared(copy.deepcopy(demo))  # no names given: the library knows no folder of the workflow
    with pytest.raises(InputError, match="'datasets.figures': the name is reserved"):
        hg_config.prepare_config(copy.deepcopy(demo), SCHEMA, base_dir=ROOT, reserved_names=["figures"])
    demo["datasets"]["layers.tsv"] = demo["datasets"].pop("figures")
    with pytest.raises(InputError, match="'datasets.layers.tsv': the name is that of a result file"):
        hg_config.prepare_config(demo, SCHEMA, base_dir=ROOT, result_files=["layers.tsv"])


def test_k_by_dataset_names_known_datasets_and_positive_integers(demo: dict) -> None:
    config = copy.deepcopy(demo)
    dataset = next(iter(config["datasets"]))
    config["geometry"]["k_by_dataset"] = {dataset: 30}
    assert prepared(config)["geometry"]["k_by_dataset"] == {dataset: 30}
    assert prepared(copy.deepcopy(demo))["geometry"]["k_by_dataset"] == {}
    config["geometry"]["k_by_dataset"] = {"no_such_set": 30}
    assert error_of(config).startswith("config key 'geometry.k_by_dataset.no_such_set': unknown dataset")
    config["geometry"]["k_by_dataset"] = {dataset: 0}
    assert "geometry.k_by_dataset" in error_of(config)


def test_paper_config_has_the_papers_settings() -> None:
    paper = hg_config.load_yaml(ROOT / "config" / "config.yaml")
    assert (paper["datasets"]["imagenet"]["n_classes"], paper["datasets"]["imagenet"]["per_class"]) == (300, 300)
    assert "n" not in paper["datasets"]["proteinnet"]  # every record of the file
    scope = paper["datasets"]["scope"]
    assert "2.08" in scope["url"] and (scope["min_per_superfamily"], scope["min_families"]) == (10, 2)
    assert paper["geometry"]["k_by_dataset"] == {"scope": 10, "proteinnet": 10, "imagenet": 30}
    assert paper["geometry"]["exclude_groups"] is True


def test_snakemakes_validate_sees_every_dataset_key(demo: dict) -> None:
    # the dataset keys live in the YAML schema (datasets.schema.yaml), so Snakemake's own validation checks them
    from snakemake.utils import validate

    validate(copy.deepcopy(demo), str(SCHEMA))
    demo["datasets"]["demo_text"]["n_per_klass"] = 5
    with pytest.raises(Exception, match="validating config"):
        validate(demo, str(SCHEMA))


def test_model_settings_are_checked_by_the_librarys_own_check(demo: dict) -> None:
    demo["models"]["minilm"]["tap"] = "ln_1"  # valid for the schema, wrong for a text model
    assert error_of(copy.deepcopy(demo)) == "config key 'models.minilm.tap': the ln_1 tap exists only for kind igpt"
    demo["models"]["minilm"].pop("tap")
    demo["models"]["minilm"].update(backend="fair-esm", source="esm2_t6_8M_UR50D")
    assert "'models.minilm.backend': fair-esm serves only kind esm2" in error_of(demo)
