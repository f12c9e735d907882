"""The data layer: readers for FASTA, SCOPe, ProteinNet, images, CIFAR-10, text TSV, synthetic sets; the items table.

Entry point for the workflow: `load_dataset(spec, cache_dir) -> (ItemTable, images or None, summary)`, with the
accepted keys per kind in `DATASET_SCHEMAS` (see `hidden_geometry.data.dataset`).
"""

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
from .items import ItemTable, read_images, read_items, write_dataset, write_dataset_summary, write_images, write_items
from .labels import LabelAlignment, align_labels, label_summary
from .proteinnet import ProteinNetRecord, read_proteinnet, subsample
from .scope import ScopeDomain, download_with_retries, parse_astral_header, read_scope, remote_homology_subset, scope_items
from .synthetic import synthetic_protein_families, synthetic_sentences
from .text import read_text_tsv

__all__ = [
    "ALPHABETS",
    "DATASET_SCHEMAS",
    "ESM2_MAX_RESIDUES",
    "IMAGE_KINDS",
    "KINDS",
    "CleanedSequence",
    "FastaRecord",
    "FastaStats",
    "ItemTable",
    "LabelAlignment",
    "ProteinNetRecord",
    "ScopeDomain",
    "SequenceStats",
    "align_labels",
    "clean_sequence",
    "digits_images",
    "download_with_retries",
    "fit_length",
    "label_summary",
    "load_dataset",
    "parse_astral_header",
    "prepare_records",
    "prepare_sequence",
    "read_cifar10",
    "read_fasta",
    "read_image_folder",
    "read_images",
    "read_items",
    "read_proteinnet",
    "read_scope",
    "read_text_tsv",
    "remote_homology_subset",
    "scope_items",
    "subsample",
    "synthetic_protein_families",
    "synthetic_sentences",
    "validate_dataset_spec",
    "write_dataset",
    "write_dataset_summary",
    "write_images",
    "write_items",
]
