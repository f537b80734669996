"""The statistical second opinion (统计模型复核意见) of the wording review.

A small, offline, linear model over character n-grams, trained on Siyu's own labelled corpus
(`data/corpus/dev.jsonl` and what is added to it) — nothing is downloaded, nothing leaves the process.

- **Features.** The message's clause text (`normalize.normalize_clauses`: folded like the dictionary's
  text, clause punctuation and question marks kept) as character 1-, 2- and 3-grams, and the same text
  folded to SOUNDS (every Chinese character mapped to its toneless syllable with zh/z, ch/c, sh/s, n/l and
  -n/-ng merged, from pypinyin's table at training time) as 2- and 3-grams: 葆本, 宝本 and 保本 share their
  sound features, so homophones of what the corpus teaches weigh like the words themselves. Each n-gram is
  hashed (a fixed arithmetic hash, the same in training and at review time) into `2**BITS` buckets; each
  occurrence weighs 1/√(number of n-grams of the message).
- **Model.** A logistic regression (L2-regularised, full-batch Adam on the sparse features) says whether the
  message is a violation; a second, softmax one over the violations only names the likeliest category.
  Weights, the sound table and the threshold ship as one `.npz` data file (`data/wording_model.npz`), made
  by `siyu compliance train` (reproducible: a fixed seed and the corpus in the repository).
- **What it may do.** Only raise "review" on a message the rules and the dictionary let pass; it never clears
  or lowers a rule's finding. Its finding names the category it guesses, the score, and the n-grams that
  weighed most (their span in the original text), so a compliance officer sees why.
- **Threshold.** Chosen on out-of-fold scores of the development corpus (k-fold cross-validation) as the lowest
  score that keeps the model's own specificity at or above `TARGET_SPECIFICITY` there.

Scoring is vectorised over a whole batch (numpy: hash, gather, one `add.reduceat`), so it costs a few numpy
passes per batch, not Python work per character.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siyu.compliance.normalize import BARRIER, normalize_clauses

BITS = 18
MASK = (1 << BITS) - 1
MODEL_PATH = Path(__file__).parent / "data" / "wording_model.npz"
TARGET_SPECIFICITY = 0.97
# Messages shorter than this (in normalised characters) are too short for n-gram statistics to mean much.
MIN_CHARS = 12
RULE = ("统计模型复核意见（非规则命中）：与本机构标注语料中的违规话术相似，请人工复核；"
        "依据《中华人民共和国广告法》及金融营销宣传相关规定")
# What a customer's own message may be held for (as the rules: solicitations by third parties in a group).
CUSTOMER_CATEGORIES = frozenset({"illegal_fundraising", "anti_fraud", "securities_advice", "loan_promise",
                                 "private_fund_promotion"})

_P1 = np.uint64(0x9E3779B97F4A7C15)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_SALT = {("c", 1): 0x1001, ("c", 2): 0x2002, ("c", 3): 0x3003, ("s", 2): 0x4004, ("s", 3): 0x5005}
_GRAMS = (("c", 1), ("c", 2), ("c", 3), ("s", 2), ("s", 3))
_BAR = ord(BARRIER)


# -- the sound table ----------------------------------------------------------------------------
_FOLD_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"))


def _fold_syllable(s: str) -> str:
    for a, b in _FOLD_INITIALS:
        if s.startswith(a):
            s = b + s[len(a):]
            break
    if s.startswith("n"):
        s = "l" + s[1:]
    if s.endswith("ng") and len(s) > 2:
        s = s[:-1]
    return s


_CJK = (0x4E00, 0xA000)


def build_sound_ids() -> np.ndarray:
    """For each code point of the CJK block: its folded syllable's number + 1, or 0 (no reading).
    Built from pypinyin at training time and shipped in the model file."""
    from pypinyin import Style, lazy_pinyin

    chars = [chr(c) for c in range(*_CJK)]
    ids: dict[str, int] = {}
    out = np.zeros(len(chars), dtype=np.uint16)
    for i, ch in enumerate(chars):
        r = lazy_pinyin(ch, style=Style.NORMAL, errors=lambda x: [""])
        r = r[0] if r else ""
        if r and r.isascii() and r.isalpha():
            out[i] = ids.setdefault(_fold_syllable(r.lower()), len(ids)) + 1
    return out


def sound_table(ids: np.ndarray) -> np.ndarray:
    """code point → sound (0x110000 + syllable) for CJK characters with a reading, itself otherwise."""
    table = np.arange(0x10000, dtype=np.uint32)
    block = table[_CJK[0] : _CJK[1]]
    table[_CJK[0] : _CJK[1]] = np.where(ids > 0, np.uint32(0x110000) + ids.astype(np.uint32), block)
    return table


# -- features -----------------------------------------------------------------------------------
def _hash_grams(codes: np.ndarray, n: int, salt: int, negated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first position, bucket) of every n-gram of `codes` that holds no barrier; an n-gram of two or more
    characters that follows a negation closely (`negated`) is a feature of its own (不保本 is not 保本)."""
    m = len(codes) - n + 1
    if m <= 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    c = codes.astype(np.uint64)
    h = np.full(m, np.uint64(salt)) * _P2
    if n >= 2:
        h ^= negated[:m].astype(np.uint64) * _P1
    ok = np.ones(m, dtype=bool)
    for k in range(n):
        part = c[k : k + m]
        ok &= part != _BAR
        h = (h ^ part) * _P1
    h ^= h >> np.uint64(29)
    pos = np.flatnonzero(ok)
    return pos, (h[pos] & np.uint64(MASK)).astype(np.int64)


# Negation characters, and the clause marks that end their reach.
_NEG = np.zeros(0x10000, dtype=bool)
_NEG[[ord(c) for c in "不非无没未别勿禁莫"]] = True
_STOP = np.zeros(0x10000, dtype=bool)
_STOP[[ord(c) for c in "，。？" + BARRIER]] = True
NEG_REACH = 4


def negated_positions(codes: np.ndarray) -> np.ndarray:
    """Positions at most NEG_REACH characters after a negation character, in the same clause."""
    neg = _NEG[codes]
    stop = _STOP[codes]
    out = np.zeros(len(codes), dtype=bool)
    live = np.zeros(len(codes), dtype=bool)
    blocked = np.zeros(len(codes), dtype=bool)
    for k in range(1, NEG_REACH + 1):
        # a negation k characters back, with no clause mark in between
        live[:] = False
        live[k:] = neg[:-k]
        blocked[k:] |= stop[k - 1 : -1] if k > 1 else stop[:-1]
        out |= live & ~blocked
    return out


def _salt_start(salt: int) -> np.uint64:
    return np.uint64((salt * int(_P2)) & 0xFFFF_FFFF_FFFF_FFFF)


def _char_unigram_buckets() -> np.ndarray:
    """The bucket of every one-character n-gram, by code unit (a one-character n-gram ignores negation)."""
    pos, b = _hash_grams(np.arange(0x10000, dtype=np.uint16), 1, _SALT[("c", 1)], np.zeros(0x10000, dtype=bool))
    out = np.zeros(0x10000, dtype=np.int64)
    out[pos] = b
    return out


_UNIGRAM_BUCKETS = _char_unigram_buckets()


def batch_features(codes: np.ndarray, sounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For the clause text (uint16 codes) of messages joined by BARRIER: (message, bucket, position, length)
    of every n-gram.

    The same n-grams and buckets as `_hash_grams` per kind, computed with fewer passes: the code units widened
    once, the barrier masks shared by the character and sound n-grams (a sound is never a barrier), and the
    one-character buckets looked up in a table."""
    size = len(codes)
    is_bar = codes == _BAR
    msg_of = np.cumsum(is_bar)  # message number of every character
    wide = {"c": codes.astype(np.uint64), "s": sounds[codes].astype(np.uint64)}
    neg_p = np.where(negated_positions(codes), _P1, np.uint64(0))
    ok_pos: dict[int, np.ndarray] = {}
    for n in (1, 2, 3):
        m = size - n + 1
        if m > 0:
            ok = ~is_bar[:m]
            for k in range(1, n):
                ok &= ~is_bar[k : k + m]
            ok_pos[n] = np.flatnonzero(ok)
    msgs, buckets, poss, lens = [], [], [], []
    for kind, n in _GRAMS:
        pos = ok_pos.get(n)
        if pos is None:
            pos, b = np.empty(0, np.int64), np.empty(0, np.int64)
        elif kind == "c" and n == 1:
            b = _UNIGRAM_BUCKETS[codes[pos]]
        else:
            m = size - n + 1
            c = wide[kind]
            h = neg_p[:m] ^ _salt_start(_SALT[(kind, n)])
            for k in range(n):
                np.bitwise_xor(h, c[k : k + m], out=h)
                np.multiply(h, _P1, out=h)
            h = h[pos]
            h ^= h >> np.uint64(29)
            b = (h & np.uint64(MASK)).astype(np.int64)
        msgs.append(msg_of[pos])
        buckets.append(b)
        poss.append(pos)
        lens.append(np.full(len(pos), n, dtype=np.int8))
    return np.concatenate(msgs), np.concatenate(buckets), np.concatenate(poss), np.concatenate(lens)


def features(texts: Sequence[str], sounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse rows (message, bucket, value) for `texts`; value 1/√(n-grams of the message) per occurrence."""
    cn = normalize_clauses(BARRIER.join(t.replace(BARRIER, " ") for t in texts))
    msg, bucket, _pos, _len = batch_features(cn.codes, sounds)
    counts = np.bincount(msg, minlength=len(texts)).astype(np.float64)
    val = 1.0 / np.sqrt(np.maximum(counts, 1.0))[msg]
    return msg, bucket, val


# -- training -----------------------------------------------------------------------------------
def _adam(grad_fn, w0: np.ndarray, *, steps: int, lr: float) -> np.ndarray:
    w = w0.copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        g = grad_fn(w)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w -= lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return w


def fit_binary(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, y: np.ndarray, *, l2: float = 1e-5,
               steps: int = 300, lr: float = 0.05) -> np.ndarray:
    """Logistic regression; returns weights of size 2**BITS + 1 (the last is the bias)."""
    n = len(y)
    d = MASK + 1

    def grad(w):
        z = np.bincount(rows, weights=w[cols] * vals, minlength=n) + w[-1]
        p = 1.0 / (1.0 + np.exp(-z))
        r = (p - y) / n
        g = np.empty_like(w)
        g[:-1] = np.bincount(cols, weights=r[rows] * vals, minlength=d) + l2 * w[:-1]
        g[-1] = r.sum()
        return g

    return _adam(grad, np.zeros(d + 1), steps=steps, lr=lr)


def fit_softmax(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, y: np.ndarray, k: int, *,
                l2: float = 1e-5, steps: int = 200, lr: float = 0.05) -> np.ndarray:
    """Multinomial logistic regression; returns a (2**BITS + 1, k) matrix (the last row is the bias)."""
    n = len(y)
    d = MASK + 1
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y] = 1.0
    used = np.unique(cols)
    remap = np.searchsorted(used, cols)

    def grad(w):  # over the used buckets only
        z = np.zeros((n, k))
        np.add.at(z, rows, w[remap] * vals[:, None])
        z += w[-1]
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        r = (p - onehot) / n
        g = np.zeros_like(w)
        np.add.at(g, remap, r[rows] * vals[:, None])
        g[:-1] += l2 * w[:-1]
        g[-1] = r.sum(axis=0)
        return g

    small = _adam(grad, np.zeros((len(used) + 1, k)), steps=steps, lr=lr)
    w = np.zeros((d + 1, k))
    w[used] = small[:-1]
    w[-1] = small[-1]
    return w


@dataclass(frozen=True)
class Example:
    text: str
    violation: bool
    category: str


def load_examples(paths: Sequence[Path]) -> list[Example]:
    out = []
    for p in paths:
        for line in Path(p).read_text(encoding="utf-8").splitlines():
            if line.strip():
                o = json.loads(line)
                text = o["text"] if not o.get("previous") else o["text"]
                out.append(Example(text, o["label"] == "violation", o.get("category") or "none"))
    return out


def _scores(w: np.ndarray, rows, cols, vals, n: int) -> np.ndarray:
    return np.bincount(rows, weights=w[cols] * vals, minlength=n) + w[-1]


def cross_validate(examples: Sequence[Example], *, folds: int = 5, seed: int = 7, sounds: np.ndarray,
                   l2: float = 1e-5) -> np.ndarray:
    """Out-of-fold violation scores (logits) for every example, stratified k-fold."""
    rng = np.random.default_rng(seed)
    y = np.array([e.violation for e in examples], dtype=float)
    fold = np.empty(len(examples), dtype=int)
    for label in (0.0, 1.0):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        fold[idx] = np.arange(len(idx)) % folds
    rows, cols, vals = features([e.text for e in examples], sounds)
    oof = np.empty(len(examples))
    for f in range(folds):
        train = fold != f
        sel = train[rows]
        ids = np.flatnonzero(train)
        remap = np.full(len(examples), -1)
        remap[ids] = np.arange(len(ids))
        w = fit_binary(remap[rows[sel]], cols[sel], vals[sel], y[ids], l2=l2)
        test = np.flatnonzero(~train)
        s = _scores(w, rows, cols, vals, len(examples))
        oof[test] = s[test]
    return oof


def pick_threshold(scores: np.ndarray, violation: np.ndarray, target: float = TARGET_SPECIFICITY) -> float:
    """The lowest threshold whose specificity on the ok examples is ≥ target."""
    ok = np.sort(scores[~violation])
    if not len(ok):
        return 0.0
    k = math.ceil(target * len(ok))  # at least k ok examples must score below the threshold
    k = min(max(k, 1), len(ok))
    return float(np.nextafter(ok[k - 1], np.inf))


def figures_at(scores: np.ndarray, violation: np.ndarray, threshold: float) -> dict:
    flagged = scores >= threshold
    tp = int((flagged & violation).sum())
    fp = int((flagged & ~violation).sum())
    return {"recall": round(tp / max(1, violation.sum()), 4),
            "specificity": round(1 - fp / max(1, (~violation).sum()), 4),
            "precision": round(tp / max(1, tp + fp), 4), "threshold": round(threshold, 4)}


def train(examples: Sequence[Example], *, folds: int = 5, seed: int = 7, l2: float = 1e-5,
          target: float = TARGET_SPECIFICITY) -> tuple[dict, dict]:
    """Fit the model on every example; the threshold comes from k-fold out-of-fold scores.
    Returns (the arrays to save, a report with the cross-validated figures)."""
    sound_ids = build_sound_ids()
    sounds = sound_table(sound_ids)
    y = np.array([e.violation for e in examples])
    oof = cross_validate(examples, folds=folds, seed=seed, sounds=sounds, l2=l2)
    threshold = pick_threshold(oof, y, target)
    rows, cols, vals = features([e.text for e in examples], sounds)
    w = fit_binary(rows, cols, vals, y.astype(float), l2=l2)
    cats = sorted({e.category for e in examples if e.violation})
    vi = np.flatnonzero(y)
    remap = np.full(len(examples), -1)
    remap[vi] = np.arange(len(vi))
    sel = y[rows]
    wc = fit_softmax(remap[rows[sel]], cols[sel], vals[sel],
                     np.array([cats.index(examples[i].category) for i in vi]), len(cats), l2=l2)
    # Ship only the buckets the corpus used (the rest are zero).
    used = np.unique(cols)
    arrays = {
        "buckets": used.astype(np.int32),
        "w": w[used].astype(np.float32),
        "bias": np.float32(w[-1]),
        "wc": wc[used].astype(np.float16),
        "bias_c": wc[-1].astype(np.float32),
        "categories": np.array(cats),
        "threshold": np.float32(threshold),
        "sounds": sound_ids,
    }
    report = {"examples": len(examples), "violations": int(y.sum()), "folds": folds,
              "cv": figures_at(oof, y, threshold), "cv_at_zero": figures_at(oof, y, 0.0)}
    return arrays, report


def save(arrays: dict, path: Path = MODEL_PATH) -> None:
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)


# -- scoring ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Opinion:
    score: float  # probability of a violation, 0–1
    category: str
    start: int  # span in the original text of the n-gram that weighed most
    end: int
    reasons: tuple[str, ...]  # the n-grams that weighed most, as written in the text


class Model:
    def __init__(self, data: dict):
        self.w = np.zeros(MASK + 1, dtype=np.float32)
        self.w[data["buckets"]] = data["w"]
        self.bias = float(data["bias"])
        self.wc = np.zeros((MASK + 1, len(data["categories"])), dtype=np.float32)
        self.wc[data["buckets"]] = data["wc"].astype(np.float32)
        self.bias_c = data["bias_c"].astype(np.float32)
        self.categories = [str(c) for c in data["categories"]]
        self.threshold = float(data["threshold"])
        self.sounds = sound_table(data["sounds"])

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> Model | None:
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as d:
            return cls({k: d[k] for k in d.files})

    def opinions(self, texts: Sequence[str], *, which: Sequence[int] | None = None) -> dict[int, Opinion]:
        """The messages (by index into `texts`, among `which`) the model holds for review."""
        idx = list(range(len(texts))) if which is None else list(which)
        if not idx:
            return {}
        sub = [texts[i].replace(BARRIER, " ") for i in idx]
        cn = normalize_clauses(BARRIER.join(sub))
        bars = np.flatnonzero(cn.codes == _BAR)
        c0 = np.concatenate(([0], bars + 1))
        c1 = np.concatenate((bars, [len(cn.codes)]))
        bases = np.concatenate(([0], np.cumsum([len(t) + 1 for t in sub])[:-1]))
        return self.opinions_on_clauses(sub, cn.codes, cn.index, c0, c1, bases, ids=idx)

    def opinions_on_clauses(self, texts: Sequence[str], codes: np.ndarray, index: np.ndarray, c0: np.ndarray,
                            c1: np.ndarray, bases: np.ndarray, *, ids: Sequence[int]) -> dict[int, Opinion]:
        """`opinions` of messages whose clause text is already at hand (the wording review has it for a batch):
        `codes`/`index` the clause text of messages joined by BARRIER and the offset in the joined original of
        each code unit; message j (`texts[j]`, reported as `ids[j]`) is `codes[c0[j]:c1[j]]`, starting at
        `bases[j]` in the joined original (c0 ascending).

        A message shorter than MIN_CHARS is never held, so it is not hashed; the others' features are their
        own (no n-gram crosses a barrier), so their scores are those of `opinions` to the last bit."""
        c0 = np.asarray(c0, dtype=np.int64)
        lens = np.asarray(c1, dtype=np.int64) - c0
        n_all = len(lens)
        if not n_all:
            return {}
        # As the batch scoring has always counted lengths: the first message of a batch of several one
        # character short, the last one character long.
        counted = lens.copy()
        if n_all > 1:
            counted[0] -= 1
            counted[-1] += 1
        long = np.flatnonzero(counted >= MIN_CHARS)
        if not long.size:
            return {}
        # Gather the long messages' code units, joined by BARRIER, in one fancy index: the slot after each
        # message reads the barrier that follows it in `codes` (one is appended after the last).
        src_start, src_len = c0[long], lens[long]
        offsets = np.concatenate(([0], np.cumsum(src_len + 1)[:-1]))
        total = int(offsets[-1] + src_len[-1])
        seg = np.repeat(np.arange(len(long)), src_len + 1)[:total]
        src = src_start[seg] + (np.arange(total) - offsets[seg])
        joined = np.concatenate((codes, np.array([_BAR], dtype=codes.dtype)))[src]
        msg, bucket, pos_, glen = batch_features(joined, self.sounds)
        n = len(long)
        counts = np.bincount(msg, minlength=n).astype(np.float64)
        val = (1.0 / np.sqrt(np.maximum(counts, 1.0)))[msg]
        contrib = self.w[bucket] * val
        z = np.bincount(msg, weights=contrib, minlength=n) + self.bias
        out: dict[int, Opinion] = {}
        hot = np.flatnonzero(z >= self.threshold)
        if not hot.size:
            return out
        # The n-grams of each hot message (msg is sorted).
        keep = np.flatnonzero(np.isin(msg, hot))
        keep = keep[np.argsort(msg[keep], kind="stable")]
        lo = np.searchsorted(msg[keep], hot, side="left")
        hi = np.searchsorted(msg[keep], hot, side="right")
        for k, a0, b0 in zip(hot.tolist(), lo.tolist(), hi.tolist(), strict=True):
            j = int(long[k])
            text, base, first = texts[j], int(offsets[k]), int(c0[j])
            at = index[first : first + int(lens[j])] - int(bases[j])  # offset in the message of each code unit
            sel = keep[a0:b0]
            zc = self.wc[bucket[sel]].T @ val[sel] + self.bias_c
            cat = self.categories[int(np.argmax(zc))]
            # The reason: the n-grams of two or three characters that weighed most, merged where they overlap.
            long_grams = sel[glen[sel] >= 2]
            top = long_grams[np.argsort(-contrib[long_grams])[:4]]
            spans: list[list[int]] = []
            for t in top.tolist():
                if contrib[t] <= 0:
                    break
                a, b = int(pos_[t]) - base, int(pos_[t] + glen[t]) - base
                s, e = int(at[a]), int(at[b - 1]) + 1
                for sp in spans:
                    if s <= sp[1] and sp[0] <= e:
                        sp[0], sp[1] = min(s, sp[0]), max(e, sp[1])
                        break
                else:
                    spans.append([s, e])
            reasons = tuple(text[s:e] for s, e in spans)
            s, e = spans[0] if spans else (0, len(text))
            out[ids[j]] = Opinion(score=1 / (1 + math.exp(-float(z[k]))), category=cat, start=s, end=e,
                                  reasons=reasons)
        return out


@functools.lru_cache(maxsize=1)
def _shipped_model() -> Model | None:
    return Model.load()


_override: list[Model | None] = []


def default_model() -> Model | None:
    """The model the review uses: the shipped one, or the one `using` put in force."""
    return _override[-1] if _override else _shipped_model()


@contextlib.contextmanager
def using(model: Model | None):
    """Review with `model` (None: no second opinion) instead of the shipped one, inside the block: how
    cross-validation scores a fold with a model that never saw it."""
    _override.append(model)
    try:
        yield model
    finally:
        _override.pop()
