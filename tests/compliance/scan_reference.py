"""A plain, slow reference of `review.scan_many`: one message at a time, no automaton, no numpy
gating, every question asked of every message.

What `scan_many` does fast — a batch joined and normalised in one pass, one automaton for the
phrases, the detectors' trigger words and the rules' cue words, vectorised masking by
disclosures, cue bits OR-ed per message, figures looked for only where a numeric rule is cued,
clause text made only for the messages that need it, rules whose pattern or `unless` rules them
out dropped before the scope analysis — is done here the obvious way, with `str.find` and a
loop. The per-message judgement (`_resolve`, `_in_scope`, `detect`) is shared: it is the
semantics; what this pins down is that the fast paths around it decide the same messages,
hits and candidates (tests/compliance/test_scan_equivalence.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from siyu.compliance import review as rv
from siyu.compliance.detectors import DIGITS, LINK, TRIGGERS, detect
from siyu.compliance.matcher import Dictionary
from siyu.compliance.normalize import BARRIER, normalize, normalize_clauses, normalize_full
from siyu.compliance.phonetic import phonetic_index
from siyu.compliance.rules import NUMERAL_WORDS, rules_for


def _occurrences(haystack: str, needle: str) -> list[int]:
    out, pos = [], haystack.find(needle)
    while pos >= 0:
        out.append(pos)
        pos = haystack.find(needle, pos + 1)
    return out


def scan_reference(
    texts: Sequence[str],
    *,
    context: str = "outbound",
    allowed_domains: Iterable[str] = (),
    dictionary: Dictionary | None = None,
    detectors: bool = True,
    speakers: Sequence[str | None] | None = None,
    previous: Sequence[str | None] | None = None,
    lexicons: frozenset[str] | None = None,
) -> list[tuple[rv.Finding, ...]]:
    if dictionary is None:
        from siyu.compliance.seed import seed_dictionary

        dictionary = seed_dictionary()
    cd = dictionary.compiled
    severities = rv.DETECTOR_SEVERITY[context]
    allowed = tuple(allowed_domains)
    triggers = {normalize(t): g for t, g in TRIGGERS.items()}
    cues = rv._cue_index()
    rule_set = rules_for(lexicons)
    phrase_strings = [(s, int(cd._targets[j])) for j, s in enumerate(cd.strings) if cd._targets[j] >= 0]
    # The cue words of each rule, normalised as the automaton holds them.
    rule_words = {id(rule): [[normalize(w) for w in group if normalize(w)] for group in rule.cues]
                  for rule in cues.rules}
    results: list[tuple[rv.Finding, ...]] = []
    for i, original in enumerate(texts):
        text = original.replace(BARRIER, "\x00")  # NUL is a separator: offsets unchanged
        norm = normalize_full(text)
        ntext = norm.text
        customer = speakers is not None and speakers[i] == "customer"
        # Phrase hits, every occurrence of every automaton string (overlapping).
        hits = []
        for s_, target in phrase_strings:
            for s in _occurrences(ntext, s_):
                e = s + len(s_)
                hits.append((s, e, int(norm.index[s]), int(norm.index[e - 1]) + 1, cd.patterns[target]))
        for li, s, e in phonetic_index().find(norm.codes):
            key = ntext[s:e]
            if key not in cd.keys:
                hits.append((s, e, int(norm.index[s]), int(norm.index[e - 1]) + 1, rv._phonetic_pattern(li, key)))
        hits.sort(key=lambda h: (h[0], h[1]))
        found = rv._resolve(norm, hits, 0, original) if hits else []
        # Rule candidates: one cue word of each group, and a figure where the rule needs one.
        numeral = any(w in ntext for w in NUMERAL_WORDS)
        cands = []
        for rule in cues.rules:
            if rule not in rule_set:
                continue
            if not all(any(w in ntext for w in group) for group in rule_words[id(rule)]):
                continue
            if rule.numeric == "digit" and not (numeral or any(c.isascii() and c.isdigit() for c in ntext)):
                continue
            if rule.numeric == "percent" and not (numeral or "%" in text or "％" in text):
                continue
            cands.append(rule)
        answers = previous is not None and bool(previous[i]) and not customer
        if found or cands or answers:
            cn = normalize_clauses(text)
            found = rv._in_scope(original, (cn.text, cn.index), found, cands,
                                 previous[i] if previous is not None and not customer else None, dictionary, lexicons)
        if customer and found:
            cn = normalize_clauses(text)
            found = rv._customer_scope(found, lambda cn=cn: (cn.text, cn.index))
        if detectors:
            groups = 0
            for t, g in triggers.items():
                if t in ntext:
                    groups |= g
            run = 0
            for c in ntext:
                run = run + 1 if c.isascii() and c.isdigit() else 0
                if run >= 11:
                    groups |= DIGITS
                    break
            if rv._DOTTED_RE.search(text):
                groups |= LINK
            if groups:
                for hit in detect(text, allowed_domains=allowed, groups=groups):
                    found.append(rv._detector_finding(original, hit, severities))
        if len(found) > 1:
            found.sort(key=lambda f: (f.start, f.end, f.category))
        results.append(tuple(found))
    return results
