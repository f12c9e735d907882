"""Rule build_random_model: a published architecture with random weights, in its real checkpoint format."""

import shutil
from pathlib import Path
from typing import Any

from _wf import logged

from hidden_geometry.config import write_cache_identity
from hidden_geometry.errors import InputError
from hidden_geometry.models import random_init


def build(spec: dict, folder: Path) -> None:
    """Call the builder that matches (kind, backend) with the config's architecture keywords and seed."""
    options = dict(spec.get("random_init", {}).get("architecture", {}))
    seed = spec.get("random_init", {}).get("seed", 0)
    kind, backend = spec["kind"], spec["backend"]
    if kind == "esm2" and backend == "fair-esm":
        random_init.build_random_esm2(folder / f"{spec['source']}.pt", seed=seed, **options)
    elif kind == "esm2":
        random_init.build_random_esm2_hf(folder, seed=seed, **options)
    elif kind == "igpt":
        random_init.build_random_imagegpt(folder, seed=seed, **options)
    elif kind == "text":
        random_init.build_random_bert(folder, seed=seed, **options)
    else:  # the schema allows no other kind; kept for a clear message if it grows
        raise InputError(f"random_init: no random builder for kind {kind!r} with backend {backend!r}")


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        folder = Path(snakemake.output[0])
        staging = folder.with_name(folder.name + ".building")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        log.info("building %s with random weights: %s", snakemake.wildcards.model, snakemake.params.spec)
        build(dict(snakemake.params.spec), staging)
        write_cache_identity(staging, snakemake.params.spec)  # what the folder was made from (shared caches)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)  # the folder appears complete or not at all


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
