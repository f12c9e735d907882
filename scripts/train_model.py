"""Rule train_model: a small causal or masked LM trained on a text dataset, with checkpoints saved by step.

Everything is written into a staging folder renamed into place at the end, so a killed job leaves nothing that
looks done. The loss of every step goes to loss.tsv in the folder and, every 10% of the run, to the job's log.
"""

import shutil
from pathlib import Path
from typing import Any

from _wf import logged

from hidden_geometry.data.items import read_items
from hidden_geometry.errors import InputError
from hidden_geometry.models.training import train_language_model


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        train = dict(snakemake.params.train)
        items = read_items(snakemake.input.table)
        column = items.input_column
        if column != "text":
            raise InputError(f"{snakemake.input.table}: training needs a 'text' column, the items have {column!r}")
        texts = list(items.columns["text"])
        folder = Path(snakemake.output[0])
        staging = folder.with_name(folder.name + ".building")
        shutil.rmtree(staging, ignore_errors=True)
        steps = int(train["steps"])
        checkpoints = sorted({*map(int, train.get("checkpoint_steps", [])), steps})
        log.info("training %s (%s) on %d texts for %d steps, checkpoints at %s", snakemake.wildcards.model,
                 train["objective"], len(texts), steps, checkpoints)
        run = train_language_model(
            texts, staging, train["objective"], steps=steps, checkpoint_steps=checkpoints,
            num_layers=train["num_layers"], hidden_size=train["hidden_size"], attention_heads=train["attention_heads"],
            batch_size=train["batch_size"], learning_rate=train["learning_rate"], max_length=train["max_length"],
            seed=train["seed"], threads=snakemake.threads)
        for step in range(0, steps, max(1, steps // 10)):
            log.info("step %d: loss %.4f", step + 1, run.losses[step])
        log.info("step %d: loss %.4f (last)", steps, run.losses[-1])
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
