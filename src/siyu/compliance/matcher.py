"""The wording dictionary compiled into an Aho–Corasick automaton (ahocorasick-rs).

Why ahocorasick-rs and not pyahocorasick, measured on a 10 MB chat corpus with 2,500 phrases
(2 cores, Python 3.11): ahocorasick-rs scans the UTF-16 bytes of the normalised text with its DFA
at ≈ 230 MB/s on one thread and releases the GIL; over `str` ≈ 105 MB/s. pyahocorasick returns
matches through a Python iterator: ≈ 27 MB/s for `iter()`, ≈ 15 MB/s for `iter_long()`.

The automaton holds each phrase's normalised form (with both forms of the few ambiguous
traditional characters, see normalize.AMBIGUOUS) and the detectors' trigger words, which tell
which messages of a batch the detectors' regexes need to look at. It matches UTF-16-LE bytes:
normalised text is BMP-only, so a byte offset halved is a character offset; a match at an odd
offset straddles two characters and is dropped, and overlapping=True ensures such a false match
cannot hide a real one.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import ahocorasick_rs
import numpy as np

from siyu.compliance.detectors import TRIGGERS
from siyu.compliance.normalize import AMBIGUOUS, BARRIER, normalize

_DFA_LIMIT = 50_000  # above this many automaton patterns use the (more compact) contiguous NFA
_MAX_VARIANTS = 64  # per phrase, of ambiguous traditional characters

# An automaton pattern that is a detector trigger word, not a phrase, has target -group (< 0).


@dataclass(frozen=True, slots=True)
class DictEntry:
    """One wording entry as the engine uses it (a row of the dictionary, or of the seed file)."""

    phrase: str
    category: str
    severity: str  # "block" | "review" | "allow"
    rule: str
    notes: str = ""
    entry_id: int | None = None
    corp_id: int | None = None


@dataclass(frozen=True, slots=True)
class Pattern:
    key: str  # normalised phrase
    entry: DictEntry
    ascii_head: bool  # the key starts/ends with an ASCII letter or digit: needs a word boundary there
    ascii_tail: bool
    trigger_group: int = 0  # the key is also a trigger word of this detector group
    source: str = "dictionary"  # "dictionary" | "phonetic" (a pinyin or abbreviated spelling of the lexicon)


def _is_ascii_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _exact_variants(key: str) -> list[str]:
    """The key with each character that has an ambiguous traditional form (后/後) in either form."""
    options = [(c, *AMBIGUOUS.get(c, ())) for c in key]
    if all(len(o) == 1 for o in options):
        return [key]
    variants = []
    for combo in itertools.product(*options):
        variants.append("".join(combo))
        if len(variants) >= _MAX_VARIANTS:
            break
    return variants


def literal_alternatives(pattern: str) -> list[str]:
    """The top-level alternatives of a regular expression that are plain text: wherever one of them
    stands, the expression has a match (`过往业绩|不代表(?:其)?未来` → ["过往业绩"])."""
    from re import _constants as sre
    from re import _parser

    try:
        parsed = list(_parser.parse(pattern))
    except re.error:  # pragma: no cover - rules compile at import
        return []
    if len(parsed) == 1 and parsed[0][0] is sre.BRANCH:
        branches = [list(b) for b in parsed[0][1][1]]
    else:
        branches = [parsed]
    return ["".join(chr(v) for _op, v in b) for b in branches if b and all(op is sre.LITERAL for op, _v in b)]


def _prune_cues(words: list[str], masks: list[int]) -> tuple[list[str], list[int]]:
    """The cue words without those whose bits their own cue-word substrings already set (wherever
    "稳稳的" stands, "稳稳" does too): the same bits per message, fewer automaton strings and matches."""
    bits = dict(zip(words, masks, strict=True))
    keep_w, keep_m = [], []
    for w, m in zip(words, masks, strict=True):
        covered = 0
        for a in range(len(w)):
            for b in range(a + 1, len(w) + 1):
                if b - a < len(w):
                    covered |= bits.get(w[a:b], 0)
        if m & ~covered:
            keep_w.append(w)
            keep_m.append(m)
    return keep_w, keep_m


_VETO_RULES = 63  # one bit each of an int64


def rule_vetoes(rules) -> dict[str, int]:
    """Words that rule a rule out wherever they stand (plain-text alternatives of its `unless`), as
    normalised text → bits of the rules (index in `rules`). Only words that normalisation leaves
    as they are: a match of one that spans no separator in the original is the same text in the
    clause text the `unless` is run on."""
    out: dict[str, int] = {}
    for i, rule in enumerate(rules[:_VETO_RULES]):
        if not rule.unless:
            continue
        for w in literal_alternatives(rule.unless):
            if w and normalize(w) == w and BARRIER not in w:
                out[w] = out.get(w, 0) | (1 << i)
    return out


# Target of an automaton string that is only a rule cue word (not a phrase, not a detector trigger).
CUE_ONLY = -(1 << 20)


class CompiledDictionary:
    """Normalised phrases and their automaton. Immutable; safe to share between threads.

    With `engine=True` (the wording review's dictionaries) the automaton also holds the pinyin,
    mixed and abbreviated spellings of the promise lexicon (phonetic.spelling_variants, as
    patterns of source "phonetic") and the cue words of the rule families (rules.CueIndex): per
    automaton string, `slot_groups` are the detector groups it triggers and `slot_cues` the rule
    cue bits it sets."""

    def __init__(self, entries: Iterable[DictEntry], *, engine: bool = False):
        by_key: dict[str, DictEntry] = {}
        skipped: list[DictEntry] = []
        for e in entries:
            key = normalize(e.phrase)
            if not key or BARRIER in key:
                skipped.append(e)
                continue
            by_key[key] = e  # later entries (a corp's own) override earlier ones (installation)
        triggers = {normalize(t): group for t, group in TRIGGERS.items()}
        self.patterns: list[Pattern] = [
            Pattern(k, e, _is_ascii_alnum(k[0]), _is_ascii_alnum(k[-1]), triggers.get(k, 0))
            for k, e in by_key.items()
        ]
        self.skipped = skipped
        self.keys: frozenset[str] = frozenset(by_key)
        cue_words: list[str] = []
        cue_masks: list[int] = []
        veto_words: dict[str, int] = {}
        if engine:
            from siyu.compliance.phonetic import LEXICON, PROMISE_RULE, spelling_variants
            from siyu.compliance.rules import CueIndex

            for lex in LEXICON:
                for v in spelling_variants(lex.phrase):
                    k = normalize(v)
                    if k and k not in by_key:
                        entry = DictEntry(phrase=v, category=lex.category, severity=lex.severity, rule=PROMISE_RULE,
                                          notes=f"{lex.phrase} 的拼音或缩写写法")
                        by_key[k] = entry
                        self.patterns.append(Pattern(k, entry, _is_ascii_alnum(k[0]), _is_ascii_alnum(k[-1]),
                                                     triggers.get(k, 0), source="phonetic"))
            cues = CueIndex()
            cue_words, cue_masks = _prune_cues(cues.words, cues.masks)
            veto_words = rule_vetoes(cues.rules)

        strings: dict[str, int] = {}  # automaton pattern → phrase index, or -group of a trigger word
        for i, pat in enumerate(self.patterns):
            for v in _exact_variants(pat.key):
                strings.setdefault(v, i)
        for t, group in triggers.items():
            strings.setdefault(t, -group)
        for w in cue_words:
            strings.setdefault(w, CUE_ONLY)
        for w in veto_words:
            strings.setdefault(w, CUE_ONLY)
        slot = {s: j for j, s in enumerate(strings)}
        self.strings: list[str] = list(strings)
        self.slot_groups = np.zeros(len(strings), dtype=np.int64)
        self.slot_cues = np.zeros(len(strings), dtype=np.int64)
        for j, target in enumerate(strings.values()):
            if target >= 0:
                self.slot_groups[j] = self.patterns[target].trigger_group
            elif target != CUE_ONLY:
                self.slot_groups[j] = -target
        for w, mask in zip(cue_words, cue_masks, strict=True):
            self.slot_cues[slot[w]] = mask
        # Per automaton string: the rules (bit i: rule i of CueIndex.rules, i < 63) whose `unless`
        # it satisfies on its own, wherever it stands in a message's clause text.
        self.slot_veto = np.zeros(len(strings), dtype=np.int64)
        for w, mask in veto_words.items():
            self.slot_veto[slot[w]] = mask
        # Per automaton string: it is a dictionary phrase's normalised form itself (not a variant
        # spelling, a trigger or a cue word only).
        self.slot_is_key = np.fromiter((s in self.keys for s in strings), dtype=np.bool_, count=len(strings))
        self._targets = np.fromiter(strings.values(), dtype=np.int64, count=len(strings))
        # Per phrase (indexed by phrase index): a disclosure (allow) entry; needs an ASCII word boundary.
        n = max(1, len(self.patterns))
        self.allow_flags = np.zeros(n, dtype=np.bool_)
        self.edge_flags = np.zeros(n, dtype=np.bool_)
        self.trigger_groups = np.zeros(n, dtype=np.int64)
        for i, p in enumerate(self.patterns):
            self.allow_flags[i] = p.entry.severity == "allow"
            self.edge_flags[i] = p.ascii_head or p.ascii_tail
            self.trigger_groups[i] = p.trigger_group
        impl = (
            ahocorasick_rs.Implementation.DFA
            if len(strings) <= _DFA_LIMIT
            else ahocorasick_rs.Implementation.ContiguousNFA
        )
        self._ac = ahocorasick_rs.BytesAhoCorasick([k.encode("utf-16-le") for k in strings], implementation=impl)

    def __len__(self) -> int:
        return len(self.patterns)

    def find_slots(self, utf16: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every occurrence (overlapping) as automaton string index, start, end — in characters."""
        arr = self._matches(utf16)
        return arr[:, 0], arr[:, 1] >> 1, arr[:, 2] >> 1

    def _matches(self, utf16: bytes) -> np.ndarray:
        """The automaton's overlapping matches as an (n, 3) array of (string index, start byte, end
        byte), without those that straddle two characters (odd start)."""
        found = self._ac.find_matches_as_indexes(utf16, overlapping=True) if utf16 else []
        # One flat pass over the tuples (np.array on a list of tuples costs 3× as much).
        arr = np.fromiter(itertools.chain.from_iterable(found), dtype=np.int64, count=3 * len(found))
        arr = arr.reshape(-1, 3)
        return arr[(arr[:, 1] & 1) == 0]

    def find(self, utf16: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every occurrence (overlapping) in normalised text given as UTF-16-LE, as three arrays:
        target (phrase index, or -group of a trigger word), start, end — in characters."""
        arr = self._matches(utf16)
        targets = self._targets[arr[:, 0]]
        return targets, arr[:, 1] >> 1, arr[:, 2] >> 1

    def find_raw(self, norm: str) -> list[tuple[int, int, int]]:
        """Phrase occurrences in a normalised str: (phrase index, start, end)."""
        targets, starts, ends = self.find(norm.encode("utf-16-le", "surrogatepass"))
        keep = targets >= 0
        return list(zip(targets[keep].tolist(), starts[keep].tolist(), ends[keep].tolist(), strict=True))


class Dictionary:
    """A wording dictionary at one version: its entries, and the automaton compiled once from them."""

    def __init__(self, entries: Iterable[DictEntry], *, version: str):
        self.entries: tuple[DictEntry, ...] = tuple(entries)
        self.version = version
        self._compiled: CompiledDictionary | None = None
        self._lock = threading.Lock()

    @property
    def compiled(self) -> CompiledDictionary:
        if self._compiled is None:
            with self._lock:
                if self._compiled is None:
                    self._compiled = CompiledDictionary(self.entries, engine=True)
        return self._compiled

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"<Dictionary {self.version} entries={len(self.entries)}>"
