"""Rules prepare_dataset / prepare_image_dataset: read, clean and label a dataset -> items.tsv (+ images.npy)."""

from typing import Any

from _wf import logged

from hidden_geometry.data import load_dataset, write_dataset_summary, write_images, write_items
from hidden_geometry.errors import InputError


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        name = snakemake.wildcards.get("other_dataset") or snakemake.wildcards.get("image_dataset")
        table, images, summary = load_dataset(dict(snakemake.params.spec), snakemake.params.cache_dir, name=name)
        n_items = len(table.ids)
        wants_images = "images" in snakemake.output.keys()
        if wants_images and (images is None or len(images) != n_items):
            raise InputError(f"datasets.{name}: expected {n_items} images, got "
                             f"{'none' if images is None else len(images)}")
        summary = dict(summary, n_items=n_items)
        log.info("kept %d items; summary: %s", n_items, summary)
        write_items(table, snakemake.output.table)
        if wants_images:
            write_images(images, snakemake.output.images)
        write_dataset_summary(snakemake.output.summary, summary)


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
