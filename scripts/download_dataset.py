"""Rule download_dataset: fetch a dataset's URL into the cache with retries and an optional checksum."""

from typing import Any

from _wf import logged

from hidden_geometry.data import download_with_retries


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        url, dest = snakemake.params.url, snakemake.output[0]
        log.info("downloading %s -> %s", url, dest)
        download_with_retries(url, dest, retries=3, sha256=snakemake.params.sha256)
        log.info("done")


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
