"""Rule train_model: a small causal or masked LM trained on a text dataset, with checkpoints saved by step.

Everything is written into a staging folder renamed into place at the end, so a killed job leaves nothing that
looks done. The loss of every step goes to loss.tsv in the folder and, every 10% of the run, to the job's log.
A seeded `heldout_fraction` of the texts is kept out of training; every checkpoint's loss on them (its own objective)
goes to heldout_loss.tsv, one row per run name (`<name>@step<N>`, the last step as `<name>`): a within-run score
that a study can use as its `scores`.
"""

import shutil
from pathlib import Path
from typing import Any

from _wf import logged

from hidden_geometry.data.items import read_items
from hidden_geometry.errors import InputError
from hidden_geometry.io import write_table
from hidden_geometry.models.training import heldout_split, train_language_model

HELDOUT_COLUMNS = ("model", "step", "score")


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        train = dict(snakemake.params.train)
        items = read_items(snakemake.input.table)
        column = items.input_column
        if column != "text":
            raise InputError(f"{snakemake.input.table}: training needs a 'text' column, the items have {column!r}")
        texts = list(items.columns["text"])
        fraction = float(train.get("heldout_fraction", 0.15))
        kept, held = heldout_split(len(texts), fraction, seed=int(train["seed"]))
        if len(held) == 0:
            raise InputError(f"config key 'models.{snakemake.wildcards.model}.train.heldout_fraction': 0 leaves no "
                             "held-out text for heldout_loss.tsv")
        heldout_texts = [texts[i] for i in held]
        texts = [texts[i] for i in kept]
        folder = Path(snakemake.output.folder)
        staging = folder.with_name(folder.name + ".building")
        shutil.rmtree(staging, ignore_errors=True)
        steps = int(train["steps"])
        checkpoints = sorted({*map(int, train.get("checkpoint_steps", [])), steps})
        log.info("training %s (%s) on %d texts (%d held out) for %d steps, checkpoints at %s",
                 snakemake.wildcards.model, train["objective"], len(texts), len(heldout_texts), steps, checkpoints)
        run = train_language_model(
            texts, staging, train["objective"], steps=steps, checkpoint_steps=checkpoints,
            num_layers=train["num_layers"], hidden_size=train["hidden_size"], attention_heads=train["attention_heads"],
            batch_size=train["batch_size"], learning_rate=train["learning_rate"], max_length=train["max_length"],
            seed=train["seed"], threads=snakemake.threads, heldout_texts=heldout_texts)
        for step in range(0, steps, max(1, steps // 10)):
            log.info("step %d: loss %.4f", step + 1, run.losses[step])
        log.info("step %d: loss %.4f (last)", steps, run.losses[-1])
        model = snakemake.wildcards.model
        rows = [{"model": model if step == steps else f"{model}@step{step}", "step": step, "score": loss}
                for step, loss in sorted(run.heldout_losses.items())]
        for row in rows:
            log.info("%s: held-out loss %.4f", row["model"], row["score"])
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        write_table(snakemake.output.heldout, rows, HELDOUT_COLUMNS)


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
