"""Phonetic folding of the promise lexicon (谐音、拼音与缩写).

Evasions that are not separators: 保夲 / 饱本 / 宝本 for 保本, 稳转 for 稳赚, 无疯险 for 无风险, "bao本",
"baoben", "wen赚", and letter abbreviations such as "wfx". Two mechanisms, both precomputed once
per process from the pronunciation data of pypinyin:

- **Homophones and near-homophones.** Every CJK character whose reading (any of its readings,
  tones dropped) is one of the syllables of the promise lexicon is mapped to a token for that
  syllable; every other character to a filler token. The batch's normalised text is folded with
  one numpy table look-up and scanned by a second, small Aho–Corasick automaton that holds the
  lexicon as syllable-token strings. Near-homophones are folded into the same syllable: the
  retroflex and flat initials (zh/z, ch/c, sh/s), n/l, and the front and back nasal finals
  (in/ing, en/eng, an/ang) that many speakers do not distinguish.
- **Pinyin and mixed spellings, abbreviations.** Each lexicon phrase in pinyin ("baoben"),
  every mix of pinyin and characters ("bao本", "保ben"), and for phrases of three or more
  syllables its initials ("wfx"), are extra patterns of the wording automaton
  (`spelling_variants`), with a word boundary required where they begin or end with a letter.

Only the promise lexicon is folded: phrases whose sound is common in harmless text (保底 / 宝地,
刚兑 / 刚对, 不亏 / 不愧) are not in it. A hit whose characters are the phrase itself (or another
dictionary phrase) is left to the dictionary, which applies its own scope rules.
"""

from __future__ import annotations

import functools
import itertools
import unicodedata
from dataclasses import dataclass

import numpy as np

PROMISE_RULE = (
    "《中华人民共和国广告法》第二十五条：招商等有投资回报预期的商品或者服务广告，不得对未来效果、收益或者与其相关的"
    "情况作出保证性承诺，明示或者暗示保本、无风险或者保收益；《商业银行理财业务监督管理办法》：不得宣传或承诺保本保收益"
)


@dataclass(frozen=True, slots=True)
class Lexeme:
    phrase: str
    category: str
    severity: str


# The canonical promises whose homophones and spellings are evasions. Two-syllable phrases only
# where their sound is rare in harmless text.
LEXICON: tuple[Lexeme, ...] = tuple(
    Lexeme(p, "promise", "block")
    for p in (
        "保本", "稳赚", "无风险", "零风险", "没风险", "稳赚不赔", "稳赚不亏", "保本保息", "保本保收益", "保证收益",
        "保收益", "刚性兑付", "保证本金", "稳赚钱", "躺赚", "必赚", "包赚", "只赚不赔", "不会亏本", "不亏本",
        "旱涝保收", "本金无忧", "绝对安全",
    )
)
# Phrases matched by spelling only: their sound is common in harmless text (余额宝收益 → bao shou yi).
NOT_BY_SOUND = frozenset({"保收益"})
# Abbreviations by initials are used for phrases of at least this many syllables ("bb" is too common).
_MIN_ABBREV = 3


def _fold_syllable(s: str) -> str:
    """Tone-less, near-homophone-folded syllable: zh/ch/sh → z/c/s, n → l, -ng → -n."""
    s = "".join(c for c in unicodedata.normalize("NFD", s) if not unicodedata.combining(c))
    s = s.replace("ü", "v").lower()
    for a, b in (("zh", "z"), ("ch", "c"), ("sh", "s")):
        if s.startswith(a):
            s = b + s[2:]
            break
    if s.startswith("n") and len(s) > 1:
        s = "l" + s[1:]
    if s.endswith("ng") and len(s) > 2 and s not in ("ng",):
        s = s[:-1]
    return s


def _readings(ch: str) -> list[str]:
    from pypinyin import pinyin_dict

    raw = pinyin_dict.pinyin_dict.get(ord(ch))
    return raw.split(",") if raw else []


def _plain(ch: str) -> str:
    """The main reading of a character without tone (for spelling variants)."""
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(ch, style=Style.NORMAL)[0].replace("ü", "v")


_FILLER = 0xE7FF
_TOKEN_BASE = 0xE000


class PhoneticIndex:
    """The folding table and the syllable automaton of the lexicon. Built once per process."""

    def __init__(self, lexicon: tuple[Lexeme, ...] = LEXICON):
        import ahocorasick_rs
        from pypinyin import pinyin_dict

        self.lexicon = lexicon
        syllables: dict[str, int] = {}
        phrase_tokens: list[str] = []
        self.indexes: list[int] = []
        for li, lex in enumerate(lexicon):
            if lex.phrase in NOT_BY_SOUND:
                continue
            self.indexes.append(li)
            toks = []
            for ch in lex.phrase:
                readings = _readings(ch)
                syl = _fold_syllable(readings[0]) if readings else ch
                code = syllables.setdefault(syl, _TOKEN_BASE + len(syllables))
                toks.append(chr(code))
            phrase_tokens.append("".join(toks))
        table = np.full(0x10000, _FILLER, dtype=np.uint16)
        for cp, raw in pinyin_dict.pinyin_dict.items():
            if cp > 0xFFFF:
                continue
            for r in raw.split(","):
                code = syllables.get(_fold_syllable(r))
                if code is not None:
                    table[cp] = code
                    break
        self.table = table
        self._lexemes = np.asarray(self.indexes, dtype=np.int64)
        self.syllables = syllables
        self._ac = ahocorasick_rs.BytesAhoCorasick([t.encode("utf-16-le") for t in phrase_tokens])
        # The same folding one byte per character (syllable k → k, anything else → 255) and the
        # same automaton over it: half the bytes to scan, and no match can straddle two characters.
        if len(syllables) < 255:
            self._table8: np.ndarray | None = np.where(table == _FILLER, 255, table - _TOKEN_BASE).astype(np.uint8)
            self._ac8 = ahocorasick_rs.BytesAhoCorasick(
                [bytes(ord(c) - _TOKEN_BASE for c in t) for t in phrase_tokens])
        else:  # pragma: no cover - a lexicon of more than 254 syllables folds to two bytes a character
            self._table8 = None

    def find_arrays(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`find` as three arrays: lexeme index, start, end."""
        if not len(codes):
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        if self._table8 is not None:
            found = self._ac8.find_matches_as_indexes(self._table8[codes].tobytes(), overlapping=True)
            arr = np.fromiter(itertools.chain.from_iterable(found), dtype=np.int64, count=3 * len(found))
            arr = arr.reshape(-1, 3)
            return self._lexemes[arr[:, 0]], arr[:, 1], arr[:, 2]
        found = self._ac.find_matches_as_indexes(self.table[codes].tobytes(), overlapping=True)
        arr = np.fromiter(itertools.chain.from_iterable(found), dtype=np.int64, count=3 * len(found)).reshape(-1, 3)
        arr = arr[(arr[:, 1] & 1) == 0]
        return self._lexemes[arr[:, 0]], arr[:, 1] >> 1, arr[:, 2] >> 1

    def find(self, codes: np.ndarray) -> list[tuple[int, int, int]]:
        """(lexeme index, start, end) of every sound-alike of a lexicon phrase in normalised text
        given as its uint16 code units (overlapping matches are all reported)."""
        if not len(codes):
            return []
        folded = self.table[codes].tobytes()
        return [
            (self.indexes[i], s >> 1, e >> 1)
            for i, s, e in self._ac.find_matches_as_indexes(folded, overlapping=True)
            if not s & 1
        ]


@functools.lru_cache(maxsize=1)
def phonetic_index() -> PhoneticIndex:
    return PhoneticIndex()


def spelling_variants(phrase: str) -> list[str]:
    """Pinyin and mixed pinyin–character spellings of a phrase, and its initials when it has at
    least three syllables; the phrase itself is not included."""
    syl = [_plain(ch) for ch in phrase]
    out: list[str] = []
    for combo in itertools.product((False, True), repeat=len(phrase)):
        if not any(combo):
            continue
        out.append("".join(s if use else ch for ch, s, use in zip(phrase, syl, combo, strict=True)))
    if len(phrase) >= _MIN_ABBREV:
        out.append("".join(s[0] for s in syl))
    return out
