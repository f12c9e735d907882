"""scripts/fetch_model.py and download_dataset.py: what they would download (the network is replaced here)."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub

import hidden_geometry.data as data

from .conftest import Named, fake_snakemake


def test_fair_esm_model_fetches_checkpoint_and_contact_regression(script, tmp_path: Path, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(
        data, "download_with_retries", lambda url, dest, retries, sha256=None: calls.append((url, dest))
    )
    folder = tmp_path / "models" / "esm2_35M"
    script("fetch_model").main(fake_snakemake(
        output=Named(str(folder)), params={"spec": {"backend": "fair-esm", "source": "esm2_t12_35M_UR50D"}},
        log=[str(tmp_path / "f.log")]))
    assert [url for url, _ in calls] == [
        "https://dl.fbaipublicfiles.com/fair-esm/models/esm2_t12_35M_UR50D.pt",
        "https://dl.fbaipublicfiles.com/fair-esm/regression/esm2_t12_35M_UR50D-contact-regression.pt"]
    # both land beside each other under the names fair-esm's local loader expects
    assert [Path(dest).name for _, dest in calls] == [
        "esm2_t12_35M_UR50D.pt",
        "esm2_t12_35M_UR50D-contact-regression.pt",
    ]
    assert folder.is_dir() and not folder.with_name("esm2_35M.fetching").exists()


def test_hub_model_fetches_weights_as_shipped_at_the_revision_asked(script, tmp_path: Path, monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo_id, local_dir, allow_patterns, revision: seen.append((repo_id, allow_patterns,
                                                                                          revision)))
    fetch = script("fetch_model").fetch
    fetch({"backend": "transformers", "source": "openai/imagegpt-small"}, tmp_path / "a")
    fetch({"backend": "transformers", "source": "EleutherAI/pythia-70m", "revision": "step3000"}, tmp_path / "b")
    assert seen[0][0] == "openai/imagegpt-small" and seen[0][2] is None
    # pytorch_model.bin comes too: the loader reads it weights-only (trust_pickle only for what that refuses)
    assert "*.safetensors" in seen[0][1] and "*.bin" in seen[0][1]
    assert seen[1][0] == "EleutherAI/pythia-70m" and seen[1][2] == "step3000"


def test_download_dataset_passes_url_and_checksum(script, tmp_path: Path, monkeypatch) -> None:
    calls = []
    module = script("download_dataset")
    monkeypatch.setattr(module, "download_with_retries",
                        lambda url, dest, retries, sha256: calls.append((url, dest, sha256)))
    dest = tmp_path / "downloads" / "scope" / "astral.fa"
    module.main(fake_snakemake(output=Named(str(dest)),
                                                   params={"url": "https://example.org/astral.fa", "sha256": "ab" * 32},
                                                   log=[str(tmp_path / "d.log")]))
    assert calls == [("https://example.org/astral.fa", str(dest), "ab" * 32)]
