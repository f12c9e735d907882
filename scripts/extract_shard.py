"""Rule extract_shard: pooled per-layer representations of one shard of items, in one forward pass per batch.

The shard is written into a staging folder and renamed into place when complete, so a killed job leaves nothing
that looks done; Snakemake reruns exactly the shards whose folders are missing.
On a multi-GPU workstation each job claims one GPU through a lock file (CUDA_VISIBLE_DEVICES), so that
`--resources gpu=N` runs N extraction jobs on N different devices.
"""

import fcntl
import os
import shutil
import socket
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from _wf import logged

from hidden_geometry.config import check_cache_identity, shard_bounds
from hidden_geometry.data.items import read_items
from hidden_geometry.models import extract_representations, load_model

_HELD_LOCKS: list[BinaryIO] = []  # kept open (and locked) for the life of the job


def claim_gpu(lock_dir: str | os.PathLike, n_devices: int) -> int | None:
    """Lock the first free device among 0..n_devices-1 (non-blocking); None when all are taken or none exist."""
    Path(lock_dir).mkdir(parents=True, exist_ok=True)
    for device in range(n_devices):
        # The host name keeps nodes that share cache_dir (a cluster file system) from locking each other's devices.
        handle = open(Path(lock_dir) / f"{socket.gethostname()}-gpu{device}.lock", "wb")  # noqa: SIM115 - held until exit
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _HELD_LOCKS.append(handle)
        return device
    return None


def choose_device(requested: str, lock_dir: str, log: Any) -> str:
    """'cpu' or 'cuda'; with several visible GPUs and no scheduler-set CUDA_VISIBLE_DEVICES, pin one."""
    if requested == "cpu":
        return "cpu"
    import torch

    count = torch.cuda.device_count()
    if count == 0:
        if requested == "cuda":
            log.warning("extraction.device is 'cuda' but no GPU is visible: running on the CPU")
        return "cpu"
    if count > 1 and "CUDA_VISIBLE_DEVICES" not in os.environ:
        device = claim_gpu(lock_dir, count)
        if device is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = str(device)
            log.info("claimed GPU %d of %d", device, count)
    return "cuda"


def shard_inputs(items: Any, images_path: str | None) -> list[Any]:
    """Every item's input (sequences, texts, or image arrays); the shard is cut by start/stop."""
    if images_path is not None:
        return np.load(images_path, mmap_mode="r")
    return list(items.columns[items.input_column])


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        # One torch thread per job core: jobs sharing a machine otherwise oversubscribe it (a tiny iGPT ran 4x
        # slower with two threads per job than with one when two jobs shared 2 cores).
        torch.set_num_threads(max(1, int(snakemake.threads)))
        items = read_items(snakemake.input.table)
        shard = int(snakemake.wildcards.shard)
        start, stop = shard_bounds(shard, len(items.ids), snakemake.params.shard_size)
        device = choose_device(snakemake.params.device, snakemake.params.lock_dir, log)
        images = snakemake.input.images if "images" in snakemake.input.keys() else None
        log.info("%s on %s: shard %d, items [%d, %d), device %s, token budget %d", snakemake.wildcards.model,
                 snakemake.wildcards.dataset, shard, start, stop, device, snakemake.params.token_budget)
        identity = snakemake.params.get("cache_identity")
        if identity is not None:  # a folder of cache_dir (maybe shared): made for these settings?
            for folder in snakemake.input.model:
                note = check_cache_identity(folder, identity, snakemake.wildcards.model)
                if note:
                    log.warning(note)
        adapter = load_model(dict(snakemake.params.spec), device=device, name=snakemake.wildcards.model)
        out_dir = Path(snakemake.output.shard)
        staging = out_dir.with_name(out_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        extract_representations(adapter, shard_inputs(items, images), items.ids, staging,
                                token_budget=snakemake.params.token_budget, progress=snakemake.params.progress,
                                start=start, stop=stop, token_sample=snakemake.params.token_sample,
                                seed=snakemake.params.seed, role=snakemake.params.role)
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)
        log.info("shard %d complete", shard)


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
