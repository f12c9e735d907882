"""One entry point for the workflow: `load_dataset(spec, cache_dir) -> (items, images or None, summary)`.

`spec` is one entry of the config's `datasets:` section. Its `kind` picks the reader; the other keys are below
(`DATASET_SCHEMAS` holds the same as JSON-schema fragments, one per kind, with `additionalProperties: false`).
Every kind accepts `kind`, `seed` (integer >= 0; the workflow fills in the config's `seed`, else 0) and
`description` (free text). The keys are defined once, in `workflow/schemas/datasets.schema.yaml` (read through
this package's link to it); the table below documents them.

| kind | keys (default) |
| --- | --- |
| scope | `path` or `url` (+ `sha256`), `label` (superfamily; fold, class, family), `classes` ("abcdefg"), `min_length` (0), `max_length` (null), `min_per_superfamily` (10), `min_families` (2), `max_per_superfamily` (null), protein keys, `n` (null) |
| proteinnet | `path` or `url` (+ `sha256`), protein keys, `n` (null) |
| fasta | `path`, `labels` (null: TSV with ids and labels), `id_column` ("id"), `label_column` ("label"), `group_column` (null), `missing_labels` ("error"; "drop"), `empty_sequences` ("drop"; "error"), `duplicate_ids` ("error"; "first"), protein keys, `n` (null) |
| imagenet | `path` (ILSVRC root or its `train/`), `classes` (null: all) or `n_classes` (null), `per_class` (null), `size` (32), `corrupt_images` ("skip"; "error") |
| image_folder | `path`, `classes`, `n_classes`, `per_class`, `size` (32), `corrupt_images` |
| cifar10 | `path` (.npz or python pickles folder), `split` ("test"; "train", "all": pickles only), `per_class` (null), `size` (null: 32) |
| digits | `size` (32), `per_class` (null) |
| text_tsv | `path`, `text_column` ("sentence"), `label_column` ("label"; null: none), `group_column` (null), `id_column` (null: `line<N>`), `bad_bytes` ("replace"; "error"), `n` (null) |
| synthetic_proteins | `n_superfamilies` (4), `families_per_superfamily` (3), `members_per_family` (5), `length` (64), `mutation_rate` (0.1), `family_mutation_rate` (null: 3 x mutation_rate, at most 0.6), `label` ("superfamily") |
| synthetic_text | `n_per_class` (50) |

Protein keys (scope, proteinnet, fasta): `alphabet` ("esm2"; "standard"), `unknown_residues` ("map": to X,
gaps/stops/digits removed; "reject"; "drop"), `max_residues` (1022, the ESM-2 limit; null: none), `too_long`
("crop_centre"; "crop_random"; "drop"). SCOPe filters apply to the sequences as read; cleaning and the residue
limit come after; `n` (a seeded subsample, input order kept) last. A local `path` replaces the download of
`url`; a download goes to `cache_dir/downloads/`.

The same spec gives the same items.tsv, byte for byte.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Callable

import jsonschema
import numpy as np
import yaml

from ..errors import InputError
from .fasta import (
    FastaStats,
    SequenceStats,
    prepare_records,
    prepare_sequence,
    read_fasta,
)
from .images import digits_images, imagenet_train_folder, read_cifar10, read_image_folder
from .items import ItemTable
from .labels import align_labels, label_summary
from .proteinnet import read_proteinnet, subsample_indices
from .scope import download_with_retries, read_scope, remote_homology_subset, scope_items
from .synthetic import describe_synthetic, synthetic_protein_families, synthetic_sentences
from .text import read_text_tsv

# The dataset keys are defined once, in workflow/schemas/datasets.schema.yaml; this package's
# datasets.schema.yaml is a link to it (copied into built wheels).
SCHEMA_FILE = Path(__file__).with_name("datasets.schema.yaml")
IMAGE_KINDS = frozenset({"imagenet", "image_folder", "cifar10", "digits"})


def _resolve(node: Any, root: dict) -> Any:
    """`node` with every local `$ref` ("#/$defs/...") replaced by a copy of its target."""
    if isinstance(node, list):
        return [_resolve(item, root) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return _resolve(target, root)
    return {key: _resolve(value, root) for key, value in node.items()}


def _flatten_kind(kind: str, root: dict) -> dict:
    """One kind's schema as a single object: the shared key groups (allOf) merged into its own properties,
    `additionalProperties: false`, `kind` fixed to the kind."""
    definition = _resolve(root["$defs"][kind], root)
    properties: dict[str, Any] = {}
    required = ["kind"]
    any_of: list = []
    for part in [*definition.get("allOf", []), definition]:
        properties.update(part.get("properties", {}))
        required += [key for key in part.get("required", []) if key not in required]
        any_of += part.get("anyOf", [])
    properties["kind"] = {"type": "string", "const": kind}
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }
    if any_of:
        schema["anyOf"] = any_of
    return schema


def _load_schemas() -> tuple[dict, dict[str, dict]]:
    try:
        root = yaml.safe_load(SCHEMA_FILE.read_text(encoding="utf-8"))
    except OSError as exc:  # a broken link or an install without the file
        raise RuntimeError(f"{SCHEMA_FILE}: the dataset schema is missing ({exc}); reinstall the package") from exc
    kinds = root["properties"]["kind"]["enum"]
    return root, {kind: _flatten_kind(kind, root) for kind in kinds}


# DATASETS_SCHEMA: the file as read (for the config's validation); DATASET_SCHEMAS: one flat schema per kind.
DATASETS_SCHEMA, DATASET_SCHEMAS = _load_schemas()
KINDS = tuple(DATASET_SCHEMAS)


def validate_dataset_spec(spec: dict, name: str = "") -> dict:
    """A copy of `spec` with defaults filled in; InputError naming the key for an unknown kind, key or type."""
    where = f"datasets.{name}" if name else "dataset"
    if not isinstance(spec, dict):
        raise InputError(f"{where}: must be a mapping with a 'kind'")
    kind = spec.get("kind")
    if kind not in DATASET_SCHEMAS:
        raise InputError(f"{where}.kind: unknown kind {kind!r} (one of: {', '.join(KINDS)})")
    schema = DATASET_SCHEMAS[kind]
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(spec), key=lambda e: ([str(p) for p in e.absolute_path], e.message))
    if errors:
        error = errors[0]
        if error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(schema["properties"]))
            raise InputError(f"{where}.{extra[0]}: unknown key for kind '{kind}' (allowed: {', '.join(sorted(schema['properties']))})")
        if error.validator == "anyOf":
            raise InputError(f"{where}: kind '{kind}' needs 'path' or 'url'")
        key = ".".join(str(p) for p in error.absolute_path)
        raise InputError(f"{where}{'.' + key if key else ''}: {error.message}")
    filled = copy.deepcopy(spec)
    for key, prop in schema["properties"].items():
        if key not in filled and "default" in prop:
            filled[key] = copy.deepcopy(prop["default"])
    filled.setdefault("seed", 0)
    return filled


def _source_path(spec: dict, cache_dir: str | os.PathLike, name: str) -> Path:
    """The local file of a dataset: `path` when given (must exist), else the download of `url` into the cache."""
    if spec.get("path"):
        path = Path(spec["path"])
        if not path.exists():
            raise InputError(f"{name}.path: {path} does not exist")
        return path
    url = spec["url"]
    filename = Path(url.split("?")[0]).name or "download"
    dest = Path(cache_dir) / "downloads" / name.replace("datasets.", "") / filename
    return download_with_retries(url, dest, retries=3, sha256=spec.get("sha256"))


def _protein_options(spec: dict) -> dict[str, Any]:
    return {
        "alphabet": spec["alphabet"],
        "unknown_residues": spec["unknown_residues"],
        "max_residues": spec["max_residues"],
        "too_long": spec["too_long"],
        "seed": spec["seed"],
    }


def _subsample_table(table: ItemTable, n: int | None, seed: int) -> tuple[ItemTable, int]:
    indices = subsample_indices(len(table), n, seed)
    return (table if len(indices) == len(table) else table.subset(indices)), len(table) - len(indices)


def _load_scope(spec: dict, source: Path) -> tuple[ItemTable, None, dict]:
    read_stats = FastaStats()
    domains = read_scope(source, stats=read_stats)
    subset, subset_summary = remote_homology_subset(
        domains,
        min_per_superfamily=spec["min_per_superfamily"],
        min_families=spec["min_families"],
        min_length=spec["min_length"],
        max_length=spec["max_length"],
        max_per_superfamily=spec["max_per_superfamily"],
        classes=spec["classes"],
        seed=spec["seed"],
    )
    stats = SequenceStats()
    kept, sequences = [], []
    for domain in subset:
        where = f"{source}:{domain.line} ({domain.id})"
        fitted = prepare_sequence(domain.id, domain.sequence, stats, where=where, **_protein_options(spec))
        if fitted is not None:
            kept.append(domain)
            sequences.append(fitted)
    table = scope_items(kept, label=spec["label"], sequences=sequences)
    table, n_subsampled = _subsample_table(table, spec["n"], spec["seed"])
    summary = {
        "reading": read_stats.to_dict(),
        "subset": subset_summary.to_dict(),
        "sequences": stats.to_dict(),
        "n_subsampled_out": n_subsampled,
        "n_superfamilies": len(set(table.columns["superfamily"])),
    }
    return table, None, summary


def _load_proteinnet(spec: dict, source: Path) -> tuple[ItemTable, None, dict]:
    reading: dict = {}
    records = list(read_proteinnet(source, stats=reading))
    # Subsample before cleaning: ProteinNet files hold up to ~100k records and only n are used.
    chosen = [records[i] for i in subsample_indices(len(records), spec["n"], spec["seed"])]
    stats = SequenceStats()
    ids, sequences = [], []
    for record in chosen:
        where = f"{source}:{record.line} ({record.id})"
        fitted = prepare_sequence(record.id, record.sequence, stats, where=where, **_protein_options(spec))
        if fitted is not None:
            ids.append(record.id)
            sequences.append(fitted)
    table = ItemTable(ids=ids, columns={"length": [str(len(s)) for s in sequences], "sequence": sequences})
    summary = {"n_records": len(records), "n_subsampled_out": len(records) - len(chosen), "sequences": stats.to_dict(),
               "reading": reading}
    return table, None, summary


def _load_fasta(spec: dict, source: Path) -> tuple[ItemTable, None, dict]:
    read_stats = FastaStats()
    records = list(
        read_fasta(source, empty_sequences=spec["empty_sequences"], duplicate_ids=spec["duplicate_ids"], stats=read_stats)
    )
    summary: dict[str, Any] = {"reading": read_stats.to_dict()}
    labels = groups = None
    if spec["labels"]:
        alignment = align_labels(
            [r.id for r in records],
            spec["labels"],
            id_column=spec["id_column"],
            label_column=spec["label_column"],
            group_column=spec["group_column"],
            missing_labels=spec["missing_labels"],
        )
        records = [records[i] for i in alignment.keep]
        labels, groups = alignment.labels, alignment.groups
        summary["labels_table"] = {"path": str(spec["labels"]), **alignment.to_dict()}
    kept, stats = prepare_records(records, source, **_protein_options(spec))
    if labels is not None:
        by_id = {r.id: (label, g) for r, label, g in zip(records, labels, groups)}
        labels = [by_id[r.id][0] for r in kept]
        groups = [by_id[r.id][1] for r in kept]
    if not kept:
        raise InputError(f"{source}: no sequences left after cleaning (see unknown_residues / too_long)")
    table = ItemTable(
        ids=[r.id for r in kept],
        columns={
            "label": labels if labels is not None else [""] * len(kept),
            "group": groups if groups is not None else [""] * len(kept),
            "description": [r.description for r in kept],
            "length": [str(len(r.sequence)) for r in kept],
            "sequence": [r.sequence for r in kept],
        },
    )
    table, n_subsampled = _subsample_table(table, spec["n"], spec["seed"])
    summary.update({"sequences": stats.to_dict(), "n_subsampled_out": n_subsampled})
    return table, None, summary


def _load_images(spec: dict, source: Path) -> tuple[ItemTable, np.ndarray, dict]:
    root = imagenet_train_folder(source) if spec["kind"] == "imagenet" else source
    return read_image_folder(
        root,
        classes=spec["classes"],
        per_class=spec["per_class"],
        seed=spec["seed"],
        size=spec["size"],
        corrupt_images=spec["corrupt_images"],
        n_classes=spec["n_classes"],
    )


def _load_cifar10(spec: dict, source: Path) -> tuple[ItemTable, np.ndarray, dict]:
    return read_cifar10(source, split=spec["split"], per_class=spec["per_class"], seed=spec["seed"], size=spec["size"])


def _load_digits(spec: dict, _source: None) -> tuple[ItemTable, np.ndarray, dict]:
    return digits_images(size=spec["size"], per_class=spec["per_class"], seed=spec["seed"])


def _load_text(spec: dict, source: Path) -> tuple[ItemTable, None, dict]:
    table, summary = read_text_tsv(
        source,
        text_column=spec["text_column"],
        label_column=spec["label_column"],
        group_column=spec["group_column"],
        id_column=spec["id_column"],
        bad_bytes=spec["bad_bytes"],
    )
    table, n_subsampled = _subsample_table(table, spec["n"], spec["seed"])
    return table, None, {**summary, "n_subsampled_out": n_subsampled}


def _load_synthetic_proteins(spec: dict, _source: None) -> tuple[ItemTable, None, dict]:
    params = {k: spec[k] for k in DATASET_SCHEMAS["synthetic_proteins"]["properties"] if k not in ("kind", "description")}
    table = synthetic_protein_families(
        n_superfamilies=spec["n_superfamilies"],
        families_per_sf=spec["families_per_superfamily"],
        members_per_family=spec["members_per_family"],
        length=spec["length"],
        mutation_rate=spec["mutation_rate"],
        seed=spec["seed"],
        family_mutation_rate=spec["family_mutation_rate"],
        label=spec["label"],
    )
    return table, None, describe_synthetic(table, "synthetic_proteins", params)


def _load_synthetic_text(spec: dict, _source: None) -> tuple[ItemTable, None, dict]:
    table = synthetic_sentences(n_per_class=spec["n_per_class"], seed=spec["seed"])
    return table, None, describe_synthetic(table, "synthetic_text", {"n_per_class": spec["n_per_class"], "seed": spec["seed"]})


_LOADERS: dict[str, Callable[[dict, Any], tuple[ItemTable, np.ndarray | None, dict]]] = {
    "scope": _load_scope,
    "proteinnet": _load_proteinnet,
    "fasta": _load_fasta,
    "imagenet": _load_images,
    "image_folder": _load_images,
    "cifar10": _load_cifar10,
    "digits": _load_digits,
    "text_tsv": _load_text,
    "synthetic_proteins": _load_synthetic_proteins,
    "synthetic_text": _load_synthetic_text,
}


def _sequence_drops(stats: dict) -> dict[str, int]:
    return {reason: int(n) for reason, n in stats["dropped"].items()}


def _counts(kind: str, details: dict, n_items: int) -> dict[str, Any]:
    """Uniform counts for dataset.json: read, kept, dropped by reason (read = kept + all drops), cropped, upscaled,
    and skipped_files (entries of an image folder not read as images: named with their reasons in the details)."""
    dropped: dict[str, int] = {}
    cropped = upscaled = skipped = 0
    if kind in ("scope", "fasta"):
        reading = details["reading"]
        read = reading["n_headers"]
        dropped["empty_sequence"] = reading["n_empty_dropped"]
        dropped["duplicate_id"] = reading["n_duplicates_dropped"]
        if kind == "scope":
            dropped.update(details["subset"]["dropped"])
        if "labels_table" in details:
            dropped["missing_label"] = details["labels_table"]["n_missing"]
        dropped.update(_sequence_drops(details["sequences"]))
        cropped = details["sequences"]["n_cropped"]
    elif kind == "proteinnet":
        read = details["n_records"]
        dropped.update(_sequence_drops(details["sequences"]))
        cropped = details["sequences"]["n_cropped"]
    elif kind in IMAGE_KINDS:
        read = details["n_read"]
        dropped.update(details["dropped"])
        upscaled = details.get("n_upscaled", 0)
        skipped = details.get("n_skipped_files", 0)
    elif kind == "text_tsv":
        read = details["n_read"]
        dropped.update(details["dropped"])
    else:
        read = details["n_read"]
    if "n_subsampled_out" in details:
        dropped["subsampled"] = details["n_subsampled_out"]
    return {
        "read": int(read),
        "kept": int(n_items),
        "dropped": {reason: int(n) for reason, n in sorted(dropped.items()) if n},
        "cropped": int(cropped),
        "upscaled": int(upscaled),
        "skipped_files": int(skipped),
    }


def load_dataset(
    spec: dict, cache_dir: str | os.PathLike = "resources", name: str = ""
) -> tuple[ItemTable, np.ndarray | None, dict[str, Any]]:
    """Read the dataset a config entry describes: (items, images uint8 [N, H, W, 3] or None, summary).

    The summary (for dataset.json) has `kind`, `spec` (with defaults), `source`, `n_items`, `counts` (read, kept,
    dropped by reason with read = kept + drops, cropped, upscaled), `labels` (number of classes, singleton
    classes, single-class flag) and `details`: the readers' own counts, with the ids or lines concerned.
    """
    filled = validate_dataset_spec(spec, name)
    kind = filled["kind"]
    where = f"datasets.{name}" if name else "dataset"
    needs_source = "path" in DATASET_SCHEMAS[kind]["properties"]
    source = _source_path(filled, cache_dir, where) if needs_source else None
    table, images, details = _LOADERS[kind](filled, source)
    if len(table) == 0:
        raise InputError(f"{where}: no items left after filtering ({source or kind})")
    if images is not None and len(images) != len(table):
        raise AssertionError(f"{kind}: {len(images)} images for {len(table)} items")
    summary = {
        "kind": kind,
        "spec": filled,
        "source": str(source) if source is not None else details.get("source", kind),
        "n_items": len(table),
        "counts": _counts(kind, details, len(table)),
        "labels": label_summary(table.labels("label")),
        "details": details,
    }
    return table, images, summary
