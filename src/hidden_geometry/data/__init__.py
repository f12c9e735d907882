"""The data layer: readers for FASTA, SCOPe, ProteinNet, images, CIFAR-10, text TSV, synthetic sets; the items table.

Entry point for the workflow: `load_dataset(spec, cache_dir) -> (ItemTable, images or None, summary)`, with the
accepted keys per kind in `DATASET_SCHEMAS` (see `hidden_geometry.data.dataset`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

# Submodules are imported on first use of a name (see hidden_geometry._lazy): a job that reads one table
# does not pay for every reader's imports.
_EXPORTS = {
    "ALPHABETS": "fasta",
    "CleanedSequence": "fasta",
    "DATASET_SCHEMAS": "dataset",
    "ESM2_MAX_RESIDUES": "fasta",
    "FastaRecord": "fasta",
    "FastaStats": "fasta",
    "IMAGE_KINDS": "dataset",
    "ItemTable": "items",
    "KINDS": "dataset",
    "LabelAlignment": "labels",
    "ProteinNetRecord": "proteinnet",
    "ScopeDomain": "scope",
    "SequenceStats": "fasta",
    "align_labels": "labels",
    "clean_sequence": "fasta",
    "digits_images": "images",
    "download_with_retries": "scope",
    "fit_length": "fasta",
    "label_summary": "labels",
    "load_dataset": "dataset",
    "parse_astral_header": "scope",
    "prepare_records": "fasta",
    "prepare_sequence": "fasta",
    "read_cifar10": "images",
    "read_fasta": "fasta",
    "read_image_folder": "images",
    "read_images": "items",
    "read_items": "items",
    "read_proteinnet": "proteinnet",
    "read_scope": "scope",
    "read_text_tsv": "text",
    "remote_homology_subset": "scope",
    "scope_items": "scope",
    "subsample": "proteinnet",
    "synthetic_protein_families": "synthetic",
    "synthetic_sentences": "synthetic",
    "validate_dataset_spec": "dataset",
    "write_dataset": "items",
    "write_dataset_summary": "items",
    "write_images": "items",
    "write_items": "items",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)

if TYPE_CHECKING:  # for type checkers and editors: the same names, imported eagerly
    from .dataset import DATASET_SCHEMAS, IMAGE_KINDS, KINDS, load_dataset, validate_dataset_spec
    from .fasta import (
        ALPHABETS,
        ESM2_MAX_RESIDUES,
        CleanedSequence,
        FastaRecord,
        FastaStats,
        SequenceStats,
        clean_sequence,
        fit_length,
        prepare_records,
        prepare_sequence,
        read_fasta,
    )
    from .images import digits_images, read_cifar10, read_image_folder
    from .items import (
        ItemTable,
        read_images,
        read_items,
        write_dataset,
        write_dataset_summary,
        write_images,
        write_items,
    )
    from .labels import LabelAlignment, align_labels, label_summary
    from .proteinnet import ProteinNetRecord, read_proteinnet, subsample
    from .scope import (
        ScopeDomain,
        download_with_retries,
        parse_astral_header,
        read_scope,
        remote_homology_subset,
        scope_items,
    )
    from .synthetic import synthetic_protein_families, synthetic_sentences
    from .text import read_text_tsv
