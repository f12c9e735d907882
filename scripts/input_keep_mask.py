"""Rule input_keep_mask: one item per identical input, as a boolean mask shared by every model and layer
(`hidden_geometry.analysis.identical_input_mask`)."""

from typing import Any

import numpy as np
from _wf import logged, save_npy

from hidden_geometry import analysis
from hidden_geometry.data.items import read_items
from hidden_geometry.io import write_json


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        items = read_items(snakemake.input.table)
        images = np.load(snakemake.input.images, mmap_mode="r") if "images" in snakemake.input.keys() else None  # noqa: SIM118 - a Namedlist
        keep = analysis.identical_input_mask(items, images, deduplicate=snakemake.params.deduplicate)
        dropped = [item for item, kept in zip(items.ids, keep) if not kept]
        log.info("%d items, %d kept, %d identical inputs dropped", len(keep), int(keep.sum()), len(dropped))
        save_npy(snakemake.output.keep, keep)
        write_json(snakemake.output.summary, {"n_items": len(keep), "n_kept": int(keep.sum()),
                                              "n_duplicates": len(dropped), "duplicate_ids": dropped[:100],
                                              "deduplicate": bool(snakemake.params.deduplicate)})


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
