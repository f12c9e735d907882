"""Extraction: pooled per-layer representations of every input, streamed to disk (docs/architecture.md §2).

`extract_representations` sorts inputs by token count, batches them under a token budget (padded tokens, both
special tokens counted), runs one forward pass per batch for all layers, and writes each batch's pooled vectors
straight into per-layer `.npy` memory maps at the inputs' own rows; token states are kept only as a bounded,
seeded sample when `token_sample` > 0 (models.token_sample: `tokens_XXX.npy`, `tokens_keys.npy`). Output folder:
`layer_000.npy` ... `layer_{L:03d}.npy` (float32 [N, D]), `ids.txt`, and `manifest.json`, written last, whose
presence means the folder is complete. Arrays are written under temporary names and renamed at the end, so a
killed job leaves no complete-looking folder.

Faults handled: non-finite pooled vectors (fp16/bf16 overflow) are recomputed in fp32, and items still
non-finite are named in the log and in `manifest["nonfinite_items"]` (their rows stay NaN/inf so later stages can
exclude them); CUDA out-of-memory halves the token budget and retries.

CPU speed: with two threads on a busy machine a 4,096 token budget beat 2,048 (CPU time 15 s against 21-22 s,
200 SCOPe domains, ESM-2 t6) and 1,024 (37 s): fewer, larger batches spend less time synchronising threads.
fair-esm checkpoints run through the project's own ESM-2 forward (`esm2_forward`: fused attention, no
attention-weight buffers), about twice fair-esm's speed per batch on the CPU; `dtype: bf16` runs its products in
bf16 (docs/benchmarks.md, extraction).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ..atomic import atomic_path, write_text_atomic
from ..errors import InputError
from ..io import Record
from .adapters import ModelAdapter
from .role import model_role
from .token_sample import TokenSample, merge_token_samples
from .tokens import merge_unknown, unknown_tokens

log = logging.getLogger("hidden_geometry.extraction")

MANIFEST = "manifest.json"
IDS_FILE = "ids.txt"
FORMAT_VERSION = 1
# Manifest keys that must agree between shards of one extraction.
SHARD_KEYS = (
    "role",
    "token_sample",
    "token_sample_seed",
    "model",
    "kind",
    "backend",
    "source",
    "n_layers",
    "hidden_size",
    "pooling",
    "tap",
    "untrained",
    "dtype",
    "n_items_total",
)


def layer_file(layer: int) -> str:
    """File name of a layer's array: layer_000.npy for the embeddings."""
    return f"layer_{layer:03d}.npy"


@dataclass(frozen=True)
class ExtractionResult(Record):
    """What one extraction (or gather) did; timing lives here and in the log, not in the manifest."""

    out_dir: str
    n_items: int
    n_layers: int
    hidden_size: int
    n_batches: int
    nonfinite_items: tuple[str, ...]
    recomputed_fp32_items: tuple[str, ...]
    oom_retries: int
    final_token_budget: int
    n_truncated: int
    seconds: float
    items_per_second: float
    skipped: bool = False


def plan_batches(token_counts: Sequence[int], token_budget: int) -> list[list[int]]:
    """Index batches over inputs sorted longest first, each within `token_budget` padded tokens.

    A batch of n inputs whose longest has m tokens costs n * m. An input longer than the budget goes alone.
    Ties in length keep input order, so the plan is deterministic.
    """
    if token_budget < 1:
        raise InputError(f"token_budget must be >= 1, got {token_budget}")
    order = sorted(range(len(token_counts)), key=lambda i: (-int(token_counts[i]), i))
    batches: list[list[int]] = []
    current: list[int] = []
    width = 0
    for index in order:
        count = int(token_counts[index])
        if current and (len(current) + 1) * max(width, count) > token_budget:
            batches.append(current)
            current, width = [], 0
        current.append(index)
        width = max(width, count)
    if current:
        batches.append(current)
    return batches


def ids_digest(ids: Sequence[str]) -> str:
    """sha256 of the ids, one per line: tells whether a finished folder holds these very items."""
    return hashlib.sha256("".join(f"{i}\n" for i in ids).encode("utf-8")).hexdigest()


def inputs_digest(inputs: Sequence[Any]) -> str:
    """sha256 of the inputs themselves (texts, sequences or image arrays, in order): tells whether a finished folder
    was made from these very inputs, not only from items with the same ids."""
    digest = hashlib.sha256()
    for item in inputs:
        if isinstance(item, str):
            data = item.encode("utf-8")
            digest.update(b"s%d:" % len(data) + data)
        else:
            array = np.ascontiguousarray(np.asarray(item))
            digest.update(f"a{array.dtype.str}{array.shape}:".encode("ascii") + array.tobytes())
    return digest.hexdigest()


def read_manifest(out_dir: str | Path) -> dict | None:
    """The folder's manifest, or None when the folder is not complete."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def load_layer(out_dir: str | Path, layer: int, mmap: bool = True) -> np.ndarray:
    """A layer's float32 [N, D] array from a complete extraction folder (memory-mapped by default)."""
    folder = Path(out_dir)
    if read_manifest(folder) is None:
        raise InputError(f"{folder}: extraction incomplete (no {MANIFEST}); rerun the extraction")
    return np.load(folder / layer_file(layer), mmap_mode="r" if mmap else None)


def read_ids(out_dir: str | Path) -> list[str]:
    """The item ids of an extraction folder, in row order."""
    return (Path(out_dir) / IDS_FILE).read_text(encoding="utf-8").splitlines()


def _write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n")


def _check_ids(ids: Sequence[str]) -> None:
    seen: set[str] = set()
    for item_id in ids:
        if not item_id or any(ch in item_id for ch in "\n\r\t"):
            raise InputError(f"item id {item_id!r} is empty or contains a tab or line break")
        if item_id in seen:
            raise InputError(f"duplicate item id '{item_id}'")
        seen.add(item_id)


@contextlib.contextmanager
def _layer_arrays(out_dir: Path, n_layers: int, n_rows: int, width: int):
    """Open per-layer float32 memmaps under temporary names; rename all of them only if the block succeeds."""
    with contextlib.ExitStack() as stack:
        arrays = []
        for layer in range(n_layers):
            tmp = stack.enter_context(atomic_path(out_dir / layer_file(layer)))
            if n_rows == 0:
                np.save(tmp, np.zeros((0, width), dtype=np.float32))
                arrays.append(np.zeros((0, width), dtype=np.float32))
            else:
                arrays.append(np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_rows, width)))
                _reserve_disk(tmp)
        yield arrays
        for array in arrays:
            if isinstance(array, np.memmap):
                array.flush()
        arrays.clear()


def _prepare_folder(out: Path) -> None:
    """Create `out`; remove its manifest (it would vouch for files about to be replaced) and the temporary
    files a killed run (SIGKILL, node failure) left behind, which can be as large as the arrays."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    for stale in out.glob(".*.tmp*"):
        if stale.name.startswith((".layer_", f".{IDS_FILE}.", f".{MANIFEST}.")) and stale.is_file():
            log.info("%s: removing %s left by an interrupted run", out, stale.name)
            stale.unlink()


def _reserve_disk(path: Path) -> None:
    """Allocate the memmap's blocks now: a full disk then fails here with ENOSPC (a clear error from
    atomic_path) instead of killing the process with SIGBUS when a page of the sparse file is written later."""
    try:
        with open(path, "r+b") as handle:
            os.posix_fallocate(handle.fileno(), 0, path.stat().st_size)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise
        # Filesystems without fallocate (some network mounts): go on with the sparse file.
        log.debug("%s: could not preallocate (%s)", path, exc)


def _finite_rows(vectors: list[np.ndarray]) -> np.ndarray:
    ok = np.ones(vectors[0].shape[0], dtype=bool)
    for layer in vectors:
        ok &= np.isfinite(layer).all(axis=1)
    return ok


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError)


def _progress(total: int, name: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total, unit="item", desc=name, file=sys.stderr, disable=not enabled, mininterval=1.0, smoothing=0.1
    )


# ---- the run's counters and the in-memory result -------------------------------------------------------------


@dataclass
class RunStats:
    """Counters of one pass over the inputs, filled in by `pooled_batches` and `repair_nonfinite`'s caller."""

    token_budget: int
    n_batches: int = 0
    oom_retries: int = 0
    recomputed_rows: list[int] = field(default_factory=list)
    nonfinite_rows: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Representations:
    """What `extract` returns: one float32 [N, D] array per layer (layer 0 the embeddings), rows in input order.

    Rows listed in `nonfinite_rows` stayed NaN/inf after the fp32 recomputation (their items overflow even in
    fp32); `recomputed_fp32_rows` were non-finite in reduced precision and recomputed in fp32.
    """

    layers: tuple[np.ndarray, ...]
    nonfinite_rows: tuple[int, ...]
    recomputed_fp32_rows: tuple[int, ...]
    n_truncated: int
    n_batches: int
    oom_retries: int
    final_token_budget: int


# ---- the pieces: batches with out-of-memory retry, non-finite repair, resume, manifest -------------------------


def pooled_batches(
    adapter: ModelAdapter,
    inputs: Sequence[Any],
    stats: RunStats,
    names: Sequence[str] | None = None,
) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """Yield (row indices, per-layer pooled vectors) for every input, in batches under `stats.token_budget`.

    On CUDA out-of-memory the budget halves and the failed batch and all pending ones are replanned
    (`stats.oom_retries`, `stats.token_budget` record it); a single input that does not fit is a RuntimeError.
    An adapter's InputError is re-raised naming the batch's items (`names`, default the row numbers).
    """
    names = [str(i) for i in range(len(inputs))] if names is None else names
    counts = [adapter.token_count(item) for item in inputs]
    queue = deque(plan_batches(counts, stats.token_budget))
    while queue:
        batch = queue.popleft()
        try:
            vectors = adapter.forward_pooled([inputs[i] for i in batch])
        except InputError as exc:
            # Name the items: the adapter sees inputs, not ids.
            named = ", ".join(names[i] for i in batch[:5]) + (", ..." if len(batch) > 5 else "")
            raise InputError(f"{exc} (in the batch of items {named})") from exc
        except Exception as exc:  # noqa: BLE001 - only OOM is handled, the rest re-raised
            if not _is_oom(exc):
                raise
            width = max(counts[i] for i in batch)
            if len(batch) == 1 and stats.token_budget <= width:
                raise RuntimeError(
                    f"{adapter.name}: out of GPU memory on the single item '{names[batch[0]]}' of {width} "
                    "tokens; use a larger GPU, device_map: auto, or crop inputs shorter"
                ) from exc
            stats.token_budget = max(1, min(stats.token_budget, len(batch) * width) // 2)
            stats.oom_retries += 1
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            queue = deque(_replan(batch + [i for pending in queue for i in pending], counts, stats.token_budget))
            log.warning(
                "%s: out of GPU memory on a batch of %d items x %d tokens: token budget halved to %d, retrying",
                adapter.name,
                len(batch),
                width,
                stats.token_budget,
            )
            continue
        for layer, values in enumerate(vectors):
            if values.shape != (len(batch), adapter.hidden_size):
                raise RuntimeError(f"{adapter.name}: layer {layer} gave shape {values.shape} for {len(batch)} items")
        stats.n_batches += 1
        yield batch, vectors


def repair_nonfinite(
    adapter: ModelAdapter, batch_inputs: Sequence[Any], vectors: list[np.ndarray]
) -> tuple[list[int], list[int]]:
    """Recompute in fp32 (in place) the rows of `vectors` that are non-finite in any layer, when the adapter runs
    in reduced precision. Returns (positions recomputed, positions still non-finite), positions in the batch."""
    ok = _finite_rows(vectors)
    if ok.all():
        return [], []
    bad = [int(j) for j in np.flatnonzero(~ok)]
    recomputed: list[int] = []
    if adapter.reduced_precision:
        again = adapter.forward_pooled([batch_inputs[j] for j in bad], fp32=True)
        for layer, values in enumerate(again):
            vectors[layer][~ok] = values
        recomputed = bad
        ok = _finite_rows(vectors)
    return recomputed, [int(j) for j in np.flatnonzero(~ok)]


def _fill(
    adapter: ModelAdapter,
    inputs: Sequence[Any],
    names: Sequence[str],
    arrays: Sequence[np.ndarray],
    token_budget: int,
    bar: Any,
) -> RunStats:
    """Write every input's pooled vectors into `arrays` (one [N, D] array per layer, in memory or memory-mapped)
    at the input's row; non-finite rows are repaired where possible and logged."""
    stats = RunStats(token_budget=token_budget)
    for batch, vectors in pooled_batches(adapter, inputs, stats, names):
        recomputed, still = repair_nonfinite(adapter, [inputs[i] for i in batch], vectors)
        if recomputed:
            log.warning(
                "%s: non-finite vectors for %s: recomputing in fp32",
                adapter.name,
                ", ".join(names[batch[j]] for j in recomputed),
            )
            stats.recomputed_rows.extend(batch[j] for j in recomputed)
        if still:
            log.warning(
                "%s: non-finite vectors for %s in fp32 too: recorded in the manifest",
                adapter.name,
                ", ".join(names[batch[j]] for j in still),
            )
            stats.nonfinite_rows.extend(batch[j] for j in still)
        rows = np.asarray(batch, dtype=np.int64)
        for layer, values in enumerate(vectors):
            arrays[layer][rows] = values
        bar.update(len(batch))
    stats.recomputed_rows.sort()
    stats.nonfinite_rows.sort()
    return stats


def _count_truncated(adapter: ModelAdapter, inputs: Sequence[Any]) -> int:
    n_truncated = sum(1 for item in inputs if adapter.truncated(item))
    if n_truncated:
        log.warning(
            "%s: %d of %d inputs are longer than %d tokens and will be truncated",
            adapter.name,
            n_truncated,
            len(inputs),
            adapter.max_tokens,
        )
    return n_truncated


def extract(
    adapter: ModelAdapter, inputs: Sequence[Any], token_budget: int = 4096, progress: bool = False
) -> Representations:
    """Pooled vectors of every layer for `inputs`, in memory (no files): like fair-esm's `repr_layers`.

    Same batching, out-of-memory retry and fp32 repair as `extract_representations`, which writes the same
    numbers to disk; use that one when N x D x layers does not fit in memory.
    """
    n_truncated = _count_truncated(adapter, inputs)
    layers = tuple(np.empty((len(inputs), adapter.hidden_size), dtype=np.float32) for _ in range(adapter.n_layers))
    with _progress(len(inputs), adapter.name, progress) as bar:
        stats = _fill(adapter, inputs, [str(i) for i in range(len(inputs))], layers, token_budget, bar)
    return Representations(
        layers=layers,
        nonfinite_rows=tuple(stats.nonfinite_rows),
        recomputed_fp32_rows=tuple(stats.recomputed_rows),
        n_truncated=n_truncated,
        n_batches=stats.n_batches,
        oom_retries=stats.oom_retries,
        final_token_budget=stats.token_budget,
    )


# Adapter settings that must equal a finished folder's manifest for the folder to be reused.
RESUME_KEYS = (
    "model", "source", "path", "n_layers", "hidden_size", "pooling", "tap", "dtype", "role", "token_sample",
    "token_sample_seed",
)


def finished_manifest(out_dir: str | Path, settings: dict, ids_sha256: str, inputs_sha256: str) -> dict | None:
    """The manifest of `out_dir` when it is a complete extraction of the same items (ids and inputs) with the same
    model and settings (every layer file present), else None: the resume check."""
    out = Path(out_dir)
    old = read_manifest(out)
    if old is None or old.get("ids_sha256") != ids_sha256 or old.get("inputs_sha256") != inputs_sha256:
        return None
    if any(old.get(key) != settings.get(key) for key in RESUME_KEYS):
        return None
    if not all((out / layer_file(layer)).is_file() for layer in range(int(settings["n_layers"]))):
        return None
    return old


def extraction_manifest(
    settings: dict, shard_ids: Sequence[str], start: int, stop: int, n_total: int, stats: RunStats, n_truncated: int,
    token_budget: int, inputs_sha256: str, extra: dict | None = None,
) -> dict:
    """The manifest of one extraction folder (docs/architecture.md §2): the adapter's settings plus the run's;
    `extra` adds keys (e.g. the unknown-token counts of `tokens.unknown_tokens`)."""
    manifest = dict(settings)
    manifest.update(
        {
            "format_version": FORMAT_VERSION,
            "n_items": len(shard_ids),
            "n_items_total": n_total,
            "start": start,
            "stop": stop,
            "ids_sha256": ids_digest(shard_ids),
            "inputs_sha256": inputs_sha256,
            "layer_files": [layer_file(layer) for layer in range(int(settings["n_layers"]))],
            "nonfinite_items": [shard_ids[row] for row in stats.nonfinite_rows],
            "recomputed_fp32_items": [shard_ids[row] for row in stats.recomputed_rows],
            "n_truncated": n_truncated,
            "token_budget": token_budget,
            **(extra or {}),
        }
    )
    return manifest


def _shard_window(n_total: int, n_ids: int, start: int, stop: int | None) -> tuple[int, int]:
    if n_ids != n_total:
        raise InputError(f"{n_ids} ids for {n_total} inputs: they must match one to one")
    stop = n_total if stop is None else min(int(stop), n_total)
    if not 0 <= start <= stop:
        raise InputError(f"shard start {start} / stop {stop} out of range for {n_total} items")
    return start, stop


def extract_representations(
    adapter: ModelAdapter,
    inputs: Sequence[Any],
    ids: Sequence[str],
    out_dir: str | Path,
    token_budget: int = 4096,
    progress: bool = True,
    start: int = 0,
    stop: int | None = None,
    resume: bool = True,
    token_sample: int = 0,
    seed: int = 0,
    role: str | None = None,
) -> ExtractionResult:
    """Pool every layer for inputs[start:stop] and write them to `out_dir` (see the module docstring).

    `token_sample` > 0 also keeps that many token states per layer (models.token_sample: seeded by `seed`).
    The manifest's `role` is 'encoder' or 'decoder' (models.role: `role` overrides what the model's config says).

    `inputs` are what the adapter takes (sequences, texts, HxWx3 uint8 images), `ids` their unique ids, both in
    input order. `start`/`stop` select a shard; the folder then holds rows start..stop-1 and the manifest says
    so. With `resume`, a folder already complete for the same model, settings, ids and inputs (`inputs_sha256`)
    is left as it is; a change of any input under the same ids recomputes it. The composition of `finished_manifest`
    (resume), `pooled_batches` (out-of-memory retry), `repair_nonfinite`
    and `extraction_manifest`, writing into memory-mapped arrays.
    """
    n_total = len(inputs)
    start, stop = _shard_window(n_total, len(ids), start, stop)
    shard_ids = [str(i) for i in ids[start:stop]]
    _check_ids(shard_ids)
    out = Path(out_dir)
    settings = adapter.describe()
    settings["role"] = model_role(adapter.model, role)
    settings["token_sample"], settings["token_sample_seed"] = int(token_sample), int(seed)
    inputs_sha256 = inputs_digest(inputs[start:stop])
    if resume:
        old = finished_manifest(out, settings, ids_digest(shard_ids), inputs_sha256)
        if old is not None:
            log.info("%s: complete extraction found (%d items), nothing to do", out, len(shard_ids))
            return ExtractionResult(
                out_dir=str(out),
                n_items=len(shard_ids),
                n_layers=adapter.n_layers,
                hidden_size=adapter.hidden_size,
                n_batches=0,
                nonfinite_items=tuple(old.get("nonfinite_items", [])),
                recomputed_fp32_items=(),
                oom_retries=0,
                final_token_budget=token_budget,
                n_truncated=int(old.get("n_truncated", 0)),
                seconds=0.0,
                items_per_second=0.0,
                skipped=True,
            )
    shard = inputs[start:stop]
    n = stop - start
    # Before anything is written: stop when the tokenizer cannot read the inputs (one line, with an example).
    unknown = unknown_tokens(adapter, [shard[i] for i in range(n)])
    _prepare_folder(out)
    n_truncated = _count_truncated(adapter, shard)
    sampler = TokenSample(adapter.n_layers, token_sample, seed) if token_sample else None
    adapter.token_sample = sampler
    began = time.perf_counter()
    log.info(
        "%s: extracting %d items (rows %d-%d of %d), token budget %d, %d layers x %d",
        adapter.name,
        n,
        start,
        stop,
        n_total,
        token_budget,
        adapter.n_layers,
        adapter.hidden_size,
    )
    try:
        with (
            _layer_arrays(out, adapter.n_layers, n, adapter.hidden_size) as arrays,
            _progress(n, adapter.name, progress) as bar,
        ):
            stats = _fill(adapter, shard, shard_ids, arrays, token_budget, bar)
            with atomic_path(out / IDS_FILE) as tmp:
                tmp.write_text("".join(f"{i}\n" for i in shard_ids), encoding="utf-8")
    finally:  # a failed run must not leave the adapter sampling into this run's sample
        adapter.token_sample = None
    if sampler is not None:
        sampler.save(out)
    seconds = time.perf_counter() - began
    manifest = extraction_manifest(
        settings, shard_ids, start, stop, n_total, stats, n_truncated, token_budget, inputs_sha256, extra=unknown
    )
    _write_json(out / MANIFEST, manifest)
    rate = n / seconds if seconds > 0 else 0.0
    log.info(
        "%s: %d items in %.1f s (%.2f items/s), %d batches, %d OOM retries, %d non-finite, %d truncated",
        adapter.name,
        n,
        seconds,
        rate,
        stats.n_batches,
        stats.oom_retries,
        len(stats.nonfinite_rows),
        n_truncated,
    )
    return ExtractionResult(
        out_dir=str(out),
        n_items=n,
        n_layers=adapter.n_layers,
        hidden_size=adapter.hidden_size,
        n_batches=stats.n_batches,
        nonfinite_items=tuple(manifest["nonfinite_items"]),
        recomputed_fp32_items=tuple(manifest["recomputed_fp32_items"]),
        oom_retries=stats.oom_retries,
        final_token_budget=stats.token_budget,
        n_truncated=n_truncated,
        seconds=seconds,
        items_per_second=rate,
    )


def _replan(indices: list[int], counts: Sequence[int], budget: int) -> list[list[int]]:
    """plan_batches over a subset of indices, returning batches in the original index numbering."""
    sub = plan_batches([counts[i] for i in indices], budget)
    return [[indices[j] for j in batch] for batch in sub]


def gather_shards(shard_dirs: Sequence[str | Path], out_dir: str | Path) -> ExtractionResult:
    """Concatenate complete shard folders (any order given) into one extraction folder, in input order.

    Checks that every shard is complete, that the shards agree on the model and settings, and that their row
    ranges tile 0..N without gaps or overlaps. The gathered manifest is written last.
    """
    if not shard_dirs:
        raise InputError("gather_shards: no shard folders given")
    shards = []
    for folder in shard_dirs:
        manifest = read_manifest(folder)
        if manifest is None:
            raise InputError(f"{folder}: shard incomplete (no {MANIFEST}); rerun that shard")
        shards.append((Path(folder), manifest))
    first = shards[0][1]
    for folder, manifest in shards[1:]:
        for key in SHARD_KEYS:
            if manifest.get(key) != first.get(key):
                raise InputError(
                    f"{folder}/{MANIFEST}: '{key}' is {manifest.get(key)!r}, other shards have {first.get(key)!r}"
                )
    shards.sort(key=lambda s: (s[1]["start"], s[1]["stop"]))
    expected = 0
    for folder, manifest in shards:
        if manifest["start"] != expected:
            raise InputError(
                f"{folder}/{MANIFEST}: shard starts at row {manifest['start']}, expected {expected} (gap or overlap)"
            )
        expected = manifest["stop"]
    total = int(first["n_items_total"])
    if expected != total:
        raise InputError(f"shards end at row {expected} but the items number {total}: a shard is missing")
    began = time.perf_counter()
    out = Path(out_dir)
    _prepare_folder(out)
    n_layers, width = int(first["n_layers"]), int(first["hidden_size"])
    ids: list[str] = []
    for folder, _ in shards:
        ids.extend(read_ids(folder))
    if len(ids) != total:
        raise InputError(f"shard ids.txt files hold {len(ids)} ids for {total} items")
    _check_ids(ids)
    with _layer_arrays(out, n_layers, total, width) as arrays:
        for layer in range(n_layers):
            for folder, manifest in shards:
                part = np.load(folder / layer_file(layer), mmap_mode="r")
                if part.shape != (manifest["stop"] - manifest["start"], width):
                    raise InputError(f"{folder / layer_file(layer)}: shape {part.shape} does not match its manifest")
                arrays[layer][manifest["start"] : manifest["stop"]] = part
        with atomic_path(out / IDS_FILE) as tmp:
            tmp.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    if int(first.get("token_sample", 0)):
        merge_token_samples([f for f, _ in shards], out, n_layers, int(first["token_sample"]))
    nonfinite = [i for _, m in shards for i in m.get("nonfinite_items", [])]
    recomputed = [i for _, m in shards for i in m.get("recomputed_fp32_items", [])]
    manifest = {k: v for k, v in first.items() if k not in ("start", "stop", "n_items", "ids_sha256", "inputs_sha256")}
    manifest.update(
        {
            "n_items": total,
            "start": 0,
            "stop": total,
            "ids_sha256": ids_digest(ids),
            "nonfinite_items": nonfinite,
            "recomputed_fp32_items": recomputed,
            "n_truncated": int(sum(m.get("n_truncated", 0) for _, m in shards)),
            "shards": [[m["start"], m["stop"]] for _, m in shards],
            **merge_unknown([m for _, m in shards]),
            "shard_inputs_sha256": [m.get("inputs_sha256") for _, m in shards],
        }
    )
    _write_json(out / MANIFEST, manifest)
    seconds = time.perf_counter() - began
    log.info("gathered %d shards into %s: %d items x %d layers", len(shards), out, total, n_layers)
    return ExtractionResult(
        out_dir=str(out),
        n_items=total,
        n_layers=n_layers,
        hidden_size=width,
        n_batches=0,
        nonfinite_items=tuple(nonfinite),
        recomputed_fp32_items=tuple(recomputed),
        oom_retries=0,
        final_token_budget=int(first.get("token_budget", 0)),
        n_truncated=manifest["n_truncated"],
        seconds=seconds,
        items_per_second=0.0,
    )
