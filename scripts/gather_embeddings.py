"""Checkpoint gather_embeddings: the shards' per-layer arrays concatenated in input order."""

import shutil
from pathlib import Path
from typing import Any

from _wf import logged

from hidden_geometry.models import gather_shards


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        out_dir = Path(snakemake.output.embeddings)
        staging = out_dir.with_name(out_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        shards = sorted(snakemake.input.shards)  # zero-padded names: sorted = input order
        log.info("gathering %d shards into %s", len(shards), out_dir)
        gather_shards(shards, staging)
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
