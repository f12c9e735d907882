"""Rule fetch_model (a local rule): download a model named by `source` into the cache, once.

fair-esm names: the checkpoint and its contact-regression file from fair-esm's public URLs (fair-esm's loader
needs both, beside each other, named after the model). Hub ids: a snapshot of the repository's files.
"""

import shutil
from pathlib import Path
from typing import Any

from _wf import logged

from hidden_geometry.config import write_cache_identity

FAIR_ESM_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"
FAIR_ESM_REGRESSION_URL = "https://dl.fbaipublicfiles.com/fair-esm/regression/{name}-contact-regression.pt"


def fetch(spec: dict, folder: Path) -> None:
    if spec["backend"] == "fair-esm":
        from hidden_geometry.data import download_with_retries

        name = spec["source"]
        download_with_retries(FAIR_ESM_URL.format(name=name), folder / f"{name}.pt", retries=3)
        download_with_retries(FAIR_ESM_REGRESSION_URL.format(name=name),
                              folder / f"{name}-contact-regression.pt", retries=3)
    else:
        from huggingface_hub import snapshot_download

        # configs, tokenizers and weights: safetensors, or pytorch_model.bin (loaded weights-only unless trusted);
        # `revision` picks a training checkpoint (e.g. step3000).
        patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "*.npy", "*.bin"]
        snapshot_download(repo_id=spec["source"], local_dir=folder, allow_patterns=patterns,
                          revision=spec.get("revision"))


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        folder = Path(snakemake.output[0])
        staging = folder.with_name(folder.name + ".fetching")
        staging.mkdir(parents=True, exist_ok=True)  # kept between retries: the hub client resumes
        log.info("fetching %s into %s", snakemake.params.spec["source"], folder)
        fetch(dict(snakemake.params.spec), staging)
        write_cache_identity(staging, snakemake.params.spec)  # what the folder was made from (shared caches)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
