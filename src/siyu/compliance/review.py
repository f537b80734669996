"""Review of text against the wording dictionary and the detectors (合规审查的文本引擎).

`review_text` is pure: no database, no I/O. `review_many`/`scan_many` review a batch in bulk:
the messages are joined by BARRIER, normalised in one vectorised pass (with the map back to
original offsets), matched by one automaton call; detectors' regexes run only on the messages
that hold a trigger word, a run of 11+ digits or a dotted name. Python-level work is per hit,
not per character or per message.

Rules on top of plain matching:
- A disclosure entry (severity "allow", e.g. 理财非存款…, 预期收益不代表实际收益, 不保本, 第一次) masks
  every hit that lies inside its span — unless sentence punctuation splits it in the original.
- A hit contained in a longer hit of the same or higher severity is not reported twice.
- Negation: a hit directly preceded (in normalised text) by a negation cue — 不, 非, 无, 未, 并非, 不是,
  无法, 不能, 不承诺, 不保证, 谨防, 警惕, 严禁… optionally followed by a filler such as 任何/一定/绝对 —
  passes, unless sentence punctuation stands between the cue and the hit in the original
  ("不，保本！" is not a negation). A hit right after a negated one, joined by nothing or a
  conjunction, is negated too ("不保本保收益", "谨防保本、高收益骗局").
- A question ("保本吗？", "是不是保本") is at most "review": asking is not promising.
- Phrases that begin or end with an ASCII letter/digit need a word boundary there in the
  original ("NO.1" is found, "no123" does not hold "no1").
"""

from __future__ import annotations

import functools
import re
import time
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from siyu.compliance.classifier import CUSTOMER_CATEGORIES as MODEL_CUSTOMER_CATEGORIES
from siyu.compliance.classifier import RULE as MODEL_RULE
from siyu.compliance.classifier import default_model
from siyu.compliance.detectors import DIGITS, LINK, DetectorHit, detect
from siyu.compliance.matcher import _VETO_RULES, DictEntry, Dictionary, Pattern
from siyu.compliance.normalize import (
    BARRIER,
    Normalized,
    digit_chars,
    normalize,
    normalize_clauses,
    normalize_full,
)
from siyu.compliance.phonetic import PROMISE_RULE, phonetic_index
from siyu.compliance.rules import (
    CATEGORY_LEXICONS,
    CUSTOMER_CATEGORIES,
    EDUCATION,
    ESCALATED,
    NUMERAL_BIT,
    RETURN_OR_SAFETY,
    SOLICITED_PROMISES,
    CueIndex,
    Rule,
    asks_for_help,
    clause_bounds,
    customer_solicits,
    exempt_reason,
    inner_refusal,
    plausible_sound_alike,
    rules_for,
    scope_reason,
    sentence_asks,
)
from siyu.compliance.schemas import Context


@dataclass(frozen=True, slots=True)
class Finding:
    """One hit; `start`/`end` are character offsets into the original text (`text[start:end] == match`).

    (A plain dataclass: the engine makes tens of thousands per second; schemas.FindingOut is the API shape.)"""

    category: str
    rule: str
    start: int
    end: int
    match: str
    severity: str  # "block" | "review"
    source: str = "dictionary"  # "dictionary" | "detector"
    phrase: str | None = None
    note: str | None = None

    def as_dict(self) -> dict:
        return {"category": self.category, "rule": self.rule, "start": self.start, "end": self.end,
                "match": self.match, "severity": self.severity}


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: str  # "block" | "review" | "pass"
    findings: tuple[Finding, ...] = ()
    # Recipients the message must not reach (marketing to a customer who withdrew consent).
    refused: frozenset[str] = frozenset()

    @property
    def blocked(self) -> bool:
        return self.verdict == "block"


_NEGATION_CUES = (
    "不", "非", "无", "未", "没", "别", "勿", "没有", "并非", "绝非", "不是", "并不", "从不", "无法", "不能", "不可",
    "不会", "不得", "不要", "不承诺", "不保证", "不提供", "不代表", "不构成", "不等于", "不属于", "谈不上", "算不上",
    "禁止", "严禁", "切勿", "谨防", "警惕", "防范", "杜绝", "拒绝", "远离", "识破", "不信", "不存在", "哪有",
)
_NEGATION_FILLERS = (
    "任何", "一定", "必然", "绝对", "完全", "百分之百", "100", "所谓", "所谓的", "什么",
    "会", "能", "是", "为", "作", "做", "对",
)
_QUESTION_PREFIXES = ("是不是", "是否", "会不会", "能不能", "有没有", "可不可以", "敢不敢", "真的", "难道")


def _reversed_alternation(words) -> str:
    return "|".join(re.escape(w[::-1]) for w in sorted(words, key=len, reverse=True))


# Matched at the start of the reversed text before a hit: one anchored attempt instead of a search.
_NEGATION_REV_RE = re.compile(
    "(?:" + _reversed_alternation(_NEGATION_FILLERS) + ")?(?:" + _reversed_alternation(_NEGATION_CUES) + ")"
)
_QUESTION_REV_RE = re.compile(_reversed_alternation(_QUESTION_PREFIXES))
_QUESTION_SUFFIX = frozenset("吗么嘛")
_QUESTION_MARKS = frozenset("?？")
_CLAUSE_BREAK_RE = re.compile("[，。！？；,.!?;\n\r…]")
_WINDOW = 10
# A hit right after a negated one, joined by nothing or a conjunction, is negated too
# ("不保本保收益", "谨防保本、高收益骗局").
_CONJUNCTIONS = frozenset(("", "或", "和", "及", "与", "或者", "也不", "且", "亦不", "更不"))

_SEVERITY_RANK = {"allow": 0, "review": 1, "block": 2}

# How each detector weighs in each context. Outbound: staff or a template is about to send it —
# customer PII in it needs a look, a personal WeChat/QQ id or an outside link is blocked.
# Archive: a conversation already happened — everything becomes an alert for review.
DETECTOR_SEVERITY: dict[str, dict[str, str]] = {
    "outbound": {
        "phone": "review",
        "id_number": "review",
        "bank_card": "review",
        "wechat_id": "block",
        "qr_code": "review",
        "red_packet": "review",
        "external_link": "block",
    },
    "archive": {
        "phone": "review",
        "id_number": "review",
        "bank_card": "review",
        "wechat_id": "review",
        "qr_code": "review",
        "red_packet": "review",
        "external_link": "review",
    },
}

DETECTOR_RULES: dict[str, str] = {
    "phone": "《个人信息保护法》：处理个人信息应当具有明确、合理的目的；"
             "手机号码在外发内容和会话中须核实用途（亦可能为员工私人联系方式）",
    "id_number": "《个人信息保护法》：处理个人信息应当限于实现处理目的的最小范围；"
                 "身份证件号码不得通过聊天收集或外发（机构自定）",
    "bank_card": "《个人信息保护法》：金融账户信息属于敏感个人信息；银行卡号不得通过聊天收集或外发（机构自定）",
    "wechat_id": "本机构企业微信客户经营规范（机构自定）：不得引导客户添加个人微信/QQ",
    "qr_code": "本机构企业微信客户经营规范（机构自定）：二维码和图片须为经审核的机构物料，不得为个人二维码",
    "red_packet": "本机构企业微信客户经营规范（机构自定）：员工与客户之间的红包、转账须合规审核",
    "external_link": "本机构营销内容管理规定（机构自定）：外发链接仅限白名单域名",
}


def _is_word_char(ch: str) -> bool:
    """An ASCII letter or digit, also in full-width or another compatibility form."""
    if ch.isascii():
        return ch.isalnum()
    n = normalize(ch)
    return len(n) == 1 and n.isascii() and n.isalnum()


def _resolve(
    norm: Normalized, hits: list[tuple[int, int, int, int, Pattern]], base: int, message: str
) -> list[Finding]:
    """Findings of one message from its phrase hits: (start, end) in the batch's normalised text,
    (start, end) in the batch's original, pattern; `base` is the message's offset in the batch,
    `message` the message as given (findings quote it)."""
    text = norm.original
    ntext = norm.text
    allow: list[tuple[int, int]] = []
    cands: list[tuple[int, int, int, int, Pattern]] = []
    for h in hits:
        s, e, o_start, o_end, pat = h
        # Word boundaries are judged in the original: "NO.1" is a phrase, "no123" is not "no1".
        if pat.ascii_head and o_start > base and _is_word_char(text[o_start - 1]):
            continue
        if pat.ascii_tail and o_end < len(text) and _is_word_char(text[o_end]):
            continue
        if pat.entry.severity == "allow":
            # A disclosure split by sentence punctuation ("不，保本！") masks nothing.
            if not _CLAUSE_BREAK_RE.search(text, o_start, o_end):
                allow.append((s, e))
        else:
            cands.append(h)
    if not cands:
        return []
    if allow:
        cands = [h for h in cands if not any(a <= h[0] and h[1] <= b for a, b in allow)]
    if len(cands) > 1:
        # Keep the longest of nested hits (unless the inner one is stricter).
        ranked = [(h[0], h[1], _SEVERITY_RANK[h[4].entry.severity]) for h in cands]
        kept = []
        for h, (s, e, rank) in zip(cands, ranked, strict=True):
            for s2, e2, rank2 in ranked:
                if s2 <= s and e <= e2 and e2 - s2 > e - s and rank2 >= rank:
                    break
            else:
                kept.append(h)
        kept.sort(key=_span_key)
    else:
        kept = cands
    findings: list[Finding] = []
    negated_end = -1
    for s, e, o_start, o_end, pat in kept:
        # The message's own normalised text before the hit (BARRIER ends the previous message).
        before = ntext[max(0, s - _WINDOW) : s]
        cut = before.rfind(BARRIER)
        if cut >= 0:
            before = before[cut + 1 :]
        before = before[::-1]
        severity = pat.entry.severity
        if True:
            if negated_end >= 0 and s >= negated_end and ntext[negated_end:s] in _CONJUNCTIONS:
                cue_start = negated_end - 1
            else:
                m = _NEGATION_REV_RE.match(before)
                cue_start = s - m.end() if m is not None else -1
            if cue_start >= 0 and not _CLAUSE_BREAK_RE.search(text, int(norm.index[cue_start]), o_start):
                negated_end = max(negated_end, e)
                continue
        entry = pat.entry
        findings.append(
            Finding(
                category=entry.category,
                rule=entry.rule,
                start=o_start - base,
                end=o_end - base,
                match=message[o_start - base : o_end - base],
                severity=severity,
                source=pat.source,
                phrase=entry.phrase,
                note=entry.notes or None,
            )
        )
    return findings


def _span_key(h: tuple) -> tuple[int, int]:
    return h[0], h[1]


def _detector_finding(text: str, hit: DetectorHit, severities: dict[str, str]) -> Finding:
    category, start, end = hit.category, hit.start, hit.end
    return Finding(category, DETECTOR_RULES[category], start, end, text[start:end], severities[category], "detector",
                   None, hit.kind if hit.kind != category else None)


_ELEVEN_DIGITS = b"\x01" * 11
_BARRIER_CODE = np.uint16(ord(BARRIER))
_DOTTED_RE = re.compile(r"\.[A-Za-z]")
_PERCENT_RE = re.compile("[%％]")
# Any character that normalises to an ASCII digit (full-width, circled, mathematical …).
_DIGIT_LIKE_RE = re.compile("[" + "".join(re.escape(c) for c in digit_chars()) + "]")
_SPAN = 1 << 16  # (start, length) of a hit as one integer: start * _SPAN + length


def _digit_runs(norm: Normalized) -> list[int]:
    """Normalised offsets of runs of 11+ digits (separators are gone, so "138 0013 8000" is one run):
    the only places where a phone, ID or card number can be."""
    data = ((norm.codes - np.uint16(48)) <= 9).view(np.uint8).tobytes()  # uint16 wraps below "0"
    found: list[int] = []
    pos = data.find(_ELEVEN_DIGITS)
    while pos >= 0:
        found.append(pos)
        end = data.find(b"\x00", pos)
        if end < 0:
            break
        pos = data.find(_ELEVEN_DIGITS, end)
    return found


def scan_many(
    texts: Sequence[str],
    *,
    context: Context = "outbound",
    allowed_domains: Iterable[str] = (),
    dictionary: Dictionary | None = None,
    detectors: bool = True,
    speakers: Sequence[str | None] | None = None,
    previous: Sequence[str | None] | None = None,
    lexicons: frozenset[str] | None = None,
    second_opinion: bool = True,
    stages: dict[str, float] | None = None,
) -> list[tuple[Finding, ...]]:
    """Findings for each text, in order (each sorted by start).

    `speakers` (per text: "advisor", "firm", "customer" or None) — a customer's own words are not
    the firm's claims: only the detectors look at them. `previous` (per text: the message it
    answers, or None) — an answer that confirms a guarantee the previous message asked about
    ("保本吗？" — "是的，放心") is a block. `lexicons`: the firm-type lexicons in force (None: all).
    `second_opinion`: the statistical model (classifier.py) may hold for review a message that nothing else holds.
    `stages`: when given, the CPU seconds of each stage are added to it (see STAGES)."""
    if context not in DETECTOR_SEVERITY:
        raise ValueError(f"unknown context {context!r}: outbound or archive")
    if dictionary is None:
        from siyu.compliance.seed import seed_dictionary

        dictionary = seed_dictionary()
    cd = dictionary.compiled
    texts = originals = list(texts)
    results: list[tuple[Finding, ...]] = [()] * len(texts)
    if not texts:
        return results
    lap = _Laps(stages)
    norm = normalize_full(BARRIER.join(texts))
    # Message i spans normalised (barriers[i-1], barriers[i]) and starts at msg_start[i] in the batch.
    barriers = np.flatnonzero(norm.codes == _BARRIER_CODE)
    if len(barriers) != len(texts) - 1:
        texts = [t.replace(BARRIER, "\x00") for t in texts]  # NUL is a separator: offsets unchanged
        norm = normalize_full(BARRIER.join(texts))
        barriers = np.flatnonzero(norm.codes == _BARRIER_CODE)
    joined = norm.original
    msg_start = np.empty(len(texts), dtype=np.int64)
    msg_start[0] = 0
    msg_start[1:] = norm.index[barriers] + 1
    n_start = np.empty(len(texts), dtype=np.int64)  # each message's first offset in normalised text
    n_start[0] = 0
    n_start[1:] = barriers + 1

    lap("normalise")
    slots, starts, ends = cd.find_slots(norm.utf16())
    targets = cd._targets[slots]
    msgs = np.searchsorted(barriers, starts, side="right")
    phrase_hits: dict[int, list[tuple[int, int, int, int, Pattern]]] = defaultdict(list)
    need: dict[int, int] = defaultdict(int)  # message → detector groups to run
    is_phrase = targets >= 0
    if is_phrase.any():
        patterns = cd.patterns
        t_safe = np.maximum(targets, 0)
        o_starts = norm.index[starts]
        o_ends = norm.index[ends - 1] + 1
        allow = is_phrase & cd.allow_flags[t_safe]
        violation = is_phrase & ~allow
        # Messages whose every violation lies inside a disclosure need no closer look. Decided here
        # only for disclosures that hold no separator (so no sentence break) and need no word
        # boundary; anything else goes to _resolve, which applies the full rules.
        clean_allow = np.flatnonzero(allow & ~cd.edge_flags[t_safe] & ((o_ends - o_starts) == (ends - starts)))
        v_idx = np.flatnonzero(violation)
        if clean_allow.size and v_idx.size:
            order = np.argsort(starts[clean_allow], kind="stable")
            a_starts = starts[clean_allow][order]
            a_reach = np.maximum.accumulate(ends[clean_allow][order])
            k = np.searchsorted(a_starts, starts[v_idx], side="right") - 1
            masked = (k >= 0) & (a_reach[np.maximum(k, 0)] >= ends[v_idx])
            v_idx = v_idx[~masked]
        sel = is_phrase & np.isin(msgs, np.unique(msgs[v_idx]))
        for m, t, s, e, os_, oe in zip(msgs[sel].tolist(), targets[sel].tolist(), starts[sel].tolist(),
                                       ends[sel].tolist(), o_starts[sel].tolist(), o_ends[sel].tolist(), strict=True):
            phrase_hits[m].append((s, e, os_, oe, patterns[t]))
    lap("automaton")
    # Sound-alikes of the promise lexicon (a second, small automaton over the folded syllables).
    phon = phonetic_index()
    p_lex, p_start, p_end = phon.find_arrays(norm.codes)
    if p_lex.size:
        # A sound-alike whose characters are a dictionary phrase (the phrase itself, or another
        # phrase) is left to the dictionary: the main automaton found it at the same span.
        exact = cd.slot_is_key[slots]
        taken = starts[exact] * _SPAN + (ends[exact] - starts[exact])
        keep = ~np.isin(p_start * _SPAN + (p_end - p_start), taken)
        if keep.any():
            p_lex, p_start, p_end = p_lex[keep], p_start[keep], p_end[keep]
            p_msgs = np.searchsorted(barriers, p_start, side="right")
            p_os, p_oe = norm.index[p_start], norm.index[p_end - 1] + 1
            codes = norm.codes
            for li, s, e, m, os_, oe in zip(p_lex.tolist(), p_start.tolist(), p_end.tolist(), p_msgs.tolist(),
                                           p_os.tolist(), p_oe.tolist(), strict=True):
                key = codes[s:e].tobytes().decode("utf-16-le")
                phrase_hits[m].append((s, e, os_, oe, _phonetic_pattern(li, key)))
    lap("sound_alikes")
    # Rule cues: per message, the OR of the cue bits of the words found in it.
    rule_set = {id(rule) for rule in rules_for(lexicons)}  # by identity: Rule equality compares every field
    cue_idx = np.flatnonzero(cd.slot_cues[slots])
    rule_cands: dict[int, list[Rule]] = {}
    if cue_idx.size:
        msg_bits = np.zeros(len(texts), dtype=np.int64)
        # OR the cue bits of each message's matches at once (sorted by message, one run each).
        order = np.argsort(msgs[cue_idx], kind="stable")
        cue_msgs = msgs[cue_idx][order]
        runs = np.concatenate(([0], np.flatnonzero(np.diff(cue_msgs)) + 1))
        msg_bits[cue_msgs[runs]] = np.bitwise_or.reduceat(cd.slot_cues[slots[cue_idx]][order], runs)
        # Rules ruled out by a plain-text alternative of their `unless` that spans no separator
        # (so it is the same text in the clause text): per message, the OR of their bits.
        msg_veto = np.zeros(len(texts), dtype=np.int64)
        veto_idx = np.flatnonzero(cd.slot_veto[slots])
        if veto_idx.size:
            vs, ve = starts[veto_idx], ends[veto_idx]
            clean = (norm.index[ve - 1] + 1 - norm.index[vs]) == (ve - vs)
            veto_idx = veto_idx[clean]
            np.bitwise_or.at(msg_veto, msgs[veto_idx], cd.slot_veto[slots[veto_idx]])
        has_figure: dict[tuple[str, int], bool] = {}
        cue_index = _cue_index()
        for ri, rule in enumerate(cue_index.rules):
            if id(rule) not in rule_set:
                continue
            nd = cue_index.need[ri]
            hit = (msg_bits & nd) == nd
            if ri < _VETO_RULES:
                hit &= (msg_veto & (1 << ri)) == 0
            for m in np.flatnonzero(hit).tolist():
                if rule.numeric:
                    # A figure in the message: a numeral word, or a digit ("digit") or a per cent
                    # sign ("percent") — looked at only in the messages that hold the rule's cues.
                    fig = has_figure.get((rule.numeric, m))
                    if fig is None:
                        fig = bool(msg_bits[m] & NUMERAL_BIT) or (
                            _DIGIT_LIKE_RE.search(texts[m]) is not None if rule.numeric == "digit"
                            else _PERCENT_RE.search(texts[m]) is not None)
                        has_figure[(rule.numeric, m)] = fig
                    if not fig:
                        continue
                rule_cands.setdefault(m, []).append(rule)
    if detectors:
        groups = cd.slot_groups[slots]
        asked = np.flatnonzero(groups)
        for m, g in zip(msgs[asked].tolist(), groups[asked].tolist(), strict=True):
            need[m] |= g
        runs = _digit_runs(norm)
        if runs:
            for m in np.searchsorted(barriers, np.asarray(runs), side="right").tolist():
                need[m] |= DIGITS
        if "." in joined:
            dots = [m.start() for m in _DOTTED_RE.finditer(joined)]
            if dots:
                for m in (np.searchsorted(msg_start, np.asarray(dots), side="right") - 1).tolist():
                    need[m] |= LINK

    lap("gating")
    allowed = tuple(allowed_domains)
    severities = DETECTOR_SEVERITY[context]
    asks: set[int] = set()
    if previous is not None:
        asks = {i for i, p in enumerate(previous) if p}
    todo = sorted(phrase_hits.keys() | need.keys() | rule_cands.keys() | asks)
    # Clause text (normalize_clauses) only of the messages that may need scope or rules: one
    # vectorised pass over them joined, not over the whole batch.
    scoped = [i for i in todo if i in phrase_hits or i in rule_cands or i in asks]
    clause_of: dict[int, int] = {i: k for k, i in enumerate(scoped)}
    if scoped:
        cn = normalize_clauses(BARRIER.join([texts[i] for i in scoped]))
        ctext_all, cindex_all = cn.text, cn.index
        cbar = np.flatnonzero(cn.codes == _BARRIER_CODE)
        c0 = np.concatenate(([0], cbar + 1)).tolist()
        c1 = np.concatenate((cbar, [len(cn.codes)])).tolist()
        sub_start = np.concatenate(([0], cindex_all[cbar] + 1)).tolist()  # each message's offset in the join

    def clause_text(i: int) -> tuple[str, np.ndarray]:
        """Message i's clause text and the offset in the message of each of its characters."""
        k = clause_of[i]
        return ctext_all[c0[k]:c1[k]], cindex_all[c0[k]:c1[k]] - sub_start[k]

    # Per message whose rule candidates were filtered: some rule's `unless` does not match it (for the second opinion).
    unexcused: dict[int, bool] = {}
    for i in todo:
        customer = speakers is not None and speakers[i] == "customer"
        found: list[Finding] = []
        if i in phrase_hits:
            found = _resolve(norm, phrase_hits[i], int(msg_start[i]), originals[i])
        cands = rule_cands.get(i, ())
        answers = i in asks and not customer
        if cands and not found and not answers:
            # Only rules that can fire: their `unless` does not match and their pattern does.
            k = clause_of[i]
            ctext = ctext_all[c0[k]:c1[k]]
            cands = [r for r in cands if r.unless_regex is None or not r.unless_regex.search(ctext)]
            unexcused[i] = bool(cands)
            cands = [r for r in cands if r.regex.search(ctext)]
        if found or cands or answers:
            found = _in_scope(originals[i], clause_text(i), found, cands,
                              previous[i] if previous is not None and not customer else None, dictionary, lexicons)
        if customer and found:
            # A customer's own words are not the firm's claims; what third parties solicit in a group still counts,
            # unless the customer asks about it (有人让我转到安全账户，这是你们发的吗？).
            found = _customer_scope(found, lambda i=i: clause_text(i))
        groups = need.get(i, 0)
        if groups:
            for hit in detect(texts[i], allowed_domains=allowed, groups=groups):
                found.append(_detector_finding(originals[i], hit, severities))
        if len(found) > 1:
            found.sort(key=lambda f: (f.start, f.end, f.category))
        results[i] = tuple(found)
    lap("messages")
    if second_opinion and rule_cands:
        # Cued: a rule family's cue words are there, its rules found nothing that stands, and none of them was
        # excused by its own exemption (首付至少30% is a loan's down payment, not a return).
        cued = []
        for i, rules in rule_cands.items():
            if results[i]:
                continue
            ok = unexcused.get(i)
            if ok is None:
                k = clause_of[i]
                ctext = ctext_all[c0[k]:c1[k]]
                ok = any(r.unless_regex is None or not r.unless_regex.search(ctext) for r in rules)
            if ok:
                cued.append(i)
        _second_opinion(originals, results, speakers, lexicons, cued,
                        (cn.codes, cindex_all, c0, c1, sub_start, clause_of))
    lap("second_opinion")
    return results


_DISCLOSED = re.compile(r"有风险[，,、；;\s]*(?:投资|理财|购买|选择)?[须需应]?谨慎|过往业绩不代表|理财非存款")


def _customer_scope(found: list[Finding], clause) -> list[Finding]:
    """A customer's own words are not the firm's claims; what third parties solicit in a group still counts,
    unless the customer asks about it (有人让我转到安全账户，这是你们发的吗？). `clause`: a callable giving the
    message's clause text and offsets."""
    if any(f.category in SOLICITED_PROMISES and f.severity == "block" for f in found):
        # A member's promise with an invitation (…真的零风险，有想加入的私我) is fund-raising in the group.
        ctext = clause()[0]
        if customer_solicits(ctext):
            found = [replace(f, category="illegal_fundraising", note=f"群内招揽：{f.note or f.category}")
                     if f.category in SOLICITED_PROMISES and f.severity == "block" else f for f in found]
    found = [f for f in found if f.category in CUSTOMER_CATEGORIES]
    if found and any(f.source != "detector" for f in found):
        ctext, cindex = clause()
        index = cindex.tolist()
        # A request to the group (谁能帮我收个码？) solicits; it is not a question to the firm.
        found = [f for f in found if f.source == "detector"
                 or not sentence_asks(ctext, k := bisect_left(index, f.start)) or asks_for_help(ctext, k)]
    return found


def _second_opinion(texts: Sequence[str], results: list[tuple[Finding, ...]],
                    speakers: Sequence[str | None] | None, lexicons: frozenset[str] | None,
                    cued: Iterable[int], clauses: tuple | None = None) -> None:
    """The statistical model's "review" on the messages nothing else holds (it never clears or lowers a hit).

    It is asked only about messages that hold the cue words of a rule family (`cued`) whose rules found nothing
    that stands: a second look where the rules looked, not a verdict on every chat line (ordinary service chat
    has no cue and is not the model's to judge). `clauses`: when given, scan_many's clause text of its scoped
    messages (code units, offsets, each message's start and end in them, its start in the joined original, and
    the message → scoped number map), so that the model does not normalise the messages again."""
    model = default_model()
    if model is None:
        return
    # A message already held gains nothing from it; one that carries a standard risk disclosure (appended by
    # attach_disclosure to product content) is the rules' to judge: the disclosure's words weigh in the model.
    which = sorted(i for i in cued if not results[i] and not _DISCLOSED.search(texts[i]))
    if clauses is None:
        opinions = model.opinions(texts, which=which)
    else:  # the clause text the rules looked at is the model's input too: not normalised again
        codes, index, c0, c1, bases, clause_of = clauses
        ks = [clause_of[i] for i in which]
        opinions = model.opinions_on_clauses([texts[i].replace(BARRIER, " ") for i in which], codes, index,
                                             np.asarray(c0)[ks], np.asarray(c1)[ks], np.asarray(bases)[ks], ids=which)
    for i, op in opinions.items():
        if speakers is not None and speakers[i] == "customer" and (
                op.category not in MODEL_CUSTOMER_CATEGORIES or "？" in texts[i] or "?" in texts[i]):
            continue  # a customer's question is never held
        if lexicons is not None and op.category in CATEGORY_LEXICONS and not CATEGORY_LEXICONS[op.category] & lexicons:
            continue  # a firm-type lexicon the corp has not switched on
        f = Finding(category=op.category, rule=MODEL_RULE, start=op.start, end=op.end,
                    match=texts[i][op.start:op.end], severity="review", source="model", phrase=None,
                    note=f"模型评分 {op.score:.2f}；依据：" + "、".join(op.reasons))
        results[i] = tuple(sorted((*results[i], f), key=lambda f: (f.start, f.end, f.category)))


# The stages of scan_many, in order: normalisation of the batch; the automaton pass and the phrase
# hits; sound-alikes; which messages the rules and detectors must look at; the messages' own
# review (clause text, disclosures, negation and scope, rule patterns, detectors, findings); the statistical
# second opinion on the cued messages nothing else holds.
STAGES = ("normalise", "automaton", "sound_alikes", "gating", "messages", "second_opinion")


class _Laps:
    """CPU time per stage, added to a caller's dict (nothing is timed without one)."""

    __slots__ = ("stages", "t")

    def __init__(self, stages: dict[str, float] | None):
        self.stages = stages
        self.t = time.process_time() if stages is not None else 0.0

    def __call__(self, name: str) -> None:
        if self.stages is not None:
            now = time.process_time()
            self.stages[name] = self.stages.get(name, 0.0) + now - self.t
            self.t = now


@functools.lru_cache(maxsize=1)
def _cue_index() -> CueIndex:
    return CueIndex()


@functools.lru_cache(maxsize=256)
def _phonetic_pattern(lexeme: int, key: str) -> Pattern:
    lex = phonetic_index().lexicon[lexeme]
    entry = DictEntry(phrase=lex.phrase, category=lex.category, severity=lex.severity, rule=PROMISE_RULE,
                      notes=f"谐音：{key} → {lex.phrase}")
    return Pattern(key, entry, False, False, 0, source="phonetic")


_AFFIRM_RE = re.compile(r"^(?:是的|是啊|是呀|是滴|对的|对啊|对呀|对|当然|肯定|那肯定|没错|放心|必须的|必须|那必须|"
                        r"可以的|没问题|绝对|保证|包的|嗯|恩|yes|是(?=[，。！？!]|$)|一定|百分百|妥妥)(?!不|是不)")


def _in_scope(message: str, clause: tuple[str, np.ndarray], found: list[Finding], rule_cands, previous: str | None,
              dictionary: Dictionary, lexicons: frozenset[str] | None) -> list[Finding]:
    """Clause-level scope for the message's phrase findings, and the rule families' findings.
    `clause`: the message's clause text and the offset in the message of each of its characters."""
    ctext, cindex = clause
    education = bool(EDUCATION.search(ctext))
    kept: list[Finding] = []
    index = cindex.tolist()
    for f in found:
        if f.source == "phonetic" and not plausible_sound_alike(message, f.start, f.end):
            continue
        cs = bisect_left(index, f.start)
        ce = max(cs, bisect_right(index, f.end - 1))
        bounds = clause_bounds(ctext, cs, ce)
        if (scope_reason(ctext, cs, ce, education=education, bounds=bounds) is None
                and exempt_reason(ctext, cs, ce, f.category, f.severity, bounds) is None):
            kept.append(f)
    for rule in rule_cands:
        if rule.unless_regex is not None and rule.unless_regex.search(ctext):
            continue
        for m in rule.regex.finditer(ctext):
            cs, ce = m.span()
            if ce <= cs:
                continue
            if rule.inner_negation and inner_refusal(ctext[cs:ce]):
                continue
            if rule.scoped:
                bounds = clause_bounds(ctext, cs, ce)
                if (scope_reason(ctext, cs, ce, education=education, bounds=bounds) is not None
                        or exempt_reason(ctext, cs, ce, rule.category, rule.severity, bounds) is not None):
                    continue
            start, end = index[cs], index[ce - 1] + 1
            rank = _SEVERITY_RANK[rule.severity]
            if any(k.start < end and start < k.end and _SEVERITY_RANK[k.severity] >= rank for k in kept):
                continue
            kept.append(Finding(category=rule.category, rule=rule.rule, start=start, end=end, match=message[start:end],
                                severity=rule.severity, source="rule", phrase=None,
                                note=rule.note or rule.rule_id))
            break  # one finding per rule and message
    if any(f.severity == "review" and f.category in ESCALATED for f in kept) and RETURN_OR_SAFETY.search(ctext):
        kept = [
            replace(f, severity="block", note=f"{f.note + '；' if f.note else ''}涉及收益或安全，升为拦截")
            if f.severity == "review" and f.category in ESCALATED else f
            for f in kept
        ]
    if previous and not any(f.severity == "block" for f in kept) and _AFFIRM_RE.match(ctext):
        # An answer confirming what the previous message asked ("保本吗？" — "是的，放心").
        asked = _asked_promise(previous, dictionary, lexicons)
        if asked is not None:
            m = _AFFIRM_RE.match(ctext)
            end = int(cindex[m.end() - 1]) + 1
            kept.append(Finding(category=asked.category, rule=asked.rule, start=int(cindex[0]), end=end,
                                match=message[int(cindex[0]):end], severity="block", source="context",
                                phrase=asked.phrase, note=f"答复确认了对方所问：{asked.match}"))
    return kept


def _asked_promise(previous: str, dictionary: Dictionary, lexicons: frozenset[str] | None) -> Finding | None:
    """A promise (block) the previous message asks about — found as if it were stated."""
    cn = normalize_clauses(previous)
    if "？" not in cn.text and not re.search(r"(?:吗|么|嘛)$", cn.text.rstrip("。")):
        return None
    # Drop the question marks and particles, then review it as a statement.
    stated = re.sub(r"(?:吗|么|嘛|呢)?[?？]", "。", previous)
    stated = re.sub(r"(?:是不是|是否|会不会|能不能|有没有|请问|真的)", "", stated)
    for f in scan_many([stated], dictionary=dictionary, detectors=False, lexicons=lexicons,
                       second_opinion=False)[0]:
        if f.severity == "block":
            return f
    return None


def verdict_of(findings: Sequence[Finding]) -> str:
    worst = "pass"
    for f in findings:
        if f.severity == "block":
            return "block"
        worst = "review"
    return worst


_PASS = Verdict("pass", ())


def review_many(
    texts: Sequence[str],
    *,
    context: Context = "outbound",
    allowed_domains: Iterable[str] = (),
    dictionary: Dictionary | None = None,
    speakers: Sequence[str | None] | None = None,
    previous: Sequence[str | None] | None = None,
    lexicons: frozenset[str] | None = None,
) -> list[Verdict]:
    return [
        Verdict(verdict_of(f), f) if f else _PASS
        for f in scan_many(texts, context=context, allowed_domains=allowed_domains, dictionary=dictionary,
                           speakers=speakers, previous=previous, lexicons=lexicons)
    ]


def review_text(
    text: str,
    *,
    context: Context = "outbound",
    allowed_domains: Iterable[str] = (),
    dictionary: Dictionary | None = None,
    speaker: str | None = None,
    previous: str | None = None,
    lexicons: frozenset[str] | None = None,
) -> Verdict:
    """Review one text: verdict block/review/pass and findings with offsets into `text`.

    `speaker` ("advisor", "firm", "customer"), `previous` (the message this one answers) and
    `lexicons` (the corp's firm-type lexicons, None: all): see scan_many."""
    return review_many([text], context=context, allowed_domains=allowed_domains, dictionary=dictionary,
                       speakers=None if speaker is None else [speaker],
                       previous=None if previous is None else [previous], lexicons=lexicons)[0]
