"""Normalisation: folding, separator stripping and the map back to original offsets."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.compliance.normalize import (
    AMBIGUOUS,
    BARRIER,
    fold_char,
    is_separator,
    normalize,
    normalize_full,
    normalize_with_map,
)


def test_full_width_case_and_traditional_are_folded():
    assert normalize("ＮＯ．１") == "no1"
    assert normalize("加我ＶＸ") == "加我vx"
    assert normalize("𝐕𝐗号") == "vx号"
    assert normalize("保證收益") == "保证收益"
    assert normalize("穩賺不賠") == "稳赚不赔"
    assert normalize("理財非存款，產品有風險") == "理财非存款产品有风险"


def test_separators_between_characters_are_removed():
    for text in ("保 本", "保-本", "保\u200b本", "保😊本", "保\u3000本", "保，本", "保\u0336本", "保\ufeff本",
                 "保\ud800本"):
        assert normalize(text) == "保本", repr(text)


def test_everyday_simplified_characters_are_not_rewritten():
    # OpenCC maps 么 → 幺, 著 → 着, 後 → 后 …; those are also simplified characters: kept as they are.
    assert normalize("什么怎么这么") == "什么怎么这么"
    assert normalize("著名") == "著名"
    assert "后" in AMBIGUOUS and "後" in AMBIGUOUS["后"]


def test_map_points_into_the_original():
    text = "Ａ 保-本！"
    norm, index = normalize_with_map(text)
    assert norm == "a保本"
    assert index == [0, 2, 4]


def test_barrier_is_kept_in_batches_and_a_separator_alone():
    assert normalize_full(f"保本{BARRIER}稳赚").text == f"保本{BARRIER}稳赚"
    assert normalize(f"保{BARRIER}本") == "保本"


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_offset_map_property(text):
    """Every normalised character is the fold of the original character it maps to; the map is
    increasing; everything left out is a separator; normalising is idempotent."""
    norm, index = normalize_with_map(text)
    assert len(norm) == len(index)
    assert all(a < b for a, b in zip(index, index[1:], strict=False))
    clean = text.replace(BARRIER, "\x00")
    for i, j in enumerate(index):
        assert norm[i] == fold_char(clean[j])
    kept = set(index)
    assert all(is_separator(ch) for j, ch in enumerate(clean) if j not in kept)
    assert normalize(norm) == norm
    assert all(ord(c) <= 0xFFFF for c in norm)


@given(st.lists(st.text(max_size=30), min_size=1, max_size=8))
def test_batch_normalisation_equals_each_alone(texts):
    texts = [t.replace(BARRIER, "\x00") for t in texts]
    batch = normalize_full(BARRIER.join(texts))
    assert batch.text.split(BARRIER) == [normalize(t) for t in texts]
    assert isinstance(batch.index, np.ndarray)
