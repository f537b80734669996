"""Detectors for personal data, off-platform contact, payments and links (regex + checksums).

Each detector scans the original text (no normalisation) and returns character offsets into it.
The regexes begin with a character class or a literal so that `re` skips quickly to candidate
positions; boundaries that would need a look-behind are checked in Python on the few candidates.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

_FW_DIGITS = str.maketrans("０１２３４５６７８９ｘＸ", "0123456789xX")

# GB 11643-1999: weights 2^(17-i) mod 11, check character from the sum mod 11.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_check_char(first17: str) -> str:
    return _ID_CHECK[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def id_number_valid(s: str, *, today: dt.date | None = None) -> bool:
    """An 18-character mainland resident ID (公民身份号码): region, birth date, sequence, check character."""
    s = s.upper()
    if len(s) != 18 or not s[:17].isdigit() or not (s[17].isdigit() or s[17] == "X"):
        return False
    if s[0] not in "12345678":
        return False
    try:
        born = dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    if born.year < 1900 or born > (today or dt.date.today()):
        return False
    return id_check_char(s[:17]) == s[17]


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_check_digit(payload: str) -> str:
    for d in "0123456789":
        if luhn_valid(payload + d):
            return d
    raise ValueError(payload)  # pragma: no cover


def bank_card_valid(digits: str) -> bool:
    """16–19 digits, a common issuer prefix (UnionPay 62, Visa 4, Mastercard 51–55) and a valid Luhn digit."""
    if not (16 <= len(digits) <= 19) or not digits.isdigit():
        return False
    if not (digits.startswith(("62", "4")) or digits[:2] in ("51", "52", "53", "54", "55")):
        return False
    return luhn_valid(digits)


_PHONE_RE = re.compile(r"1[3-9][0-9]{9}")


def phone_valid(digits: str) -> bool:
    """A mainland mobile number, with or without the 86 country code."""
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return len(digits) == 11 and _PHONE_RE.fullmatch(digits) is not None


# Detector groups, as bits: a batch records per message which groups it needs to run.
DIGITS, WECHAT, QR, PAY, LINK = 1, 2, 4, 8, 16
ALL_GROUPS = DIGITS | WECHAT | QR | PAY | LINK

# Words (normalised: lower case, full width folded) of which one occurs in any text where the
# group's regexes match. The automaton looks for them with the phrases, so that in a batch only
# the messages holding one are scanned with those regexes. Digit runs and dotted names have their
# own bulk pre-filters (review.py).
TRIGGERS: dict[str, int] = {
    **dict.fromkeys(("微信", "weixin", "wechat", "vx", "wx", "v信", "薇信", "威信", "徽信", "卫星号", "qq", "扣扣"),
                    WECHAT),
    **dict.fromkeys(("二维码", "扫码", "扫一扫", "qr", "图片", "image"), QR),
    **dict.fromkeys(("红包", "转账", "收款", "付款码", "redpacket", "transfer"), PAY),
    **dict.fromkeys(("http", "www"), LINK),
}


@dataclass(frozen=True, slots=True)
class DetectorHit:
    category: str
    start: int
    end: int
    kind: str  # what exactly: "phone", "id_number", "bank_card", "wechat", "qq", "url", ...


# Runs of digits with single spaces/hyphens between them (138 0013 8000, 6222-0202-…), maybe ending in X.
_DIGIT_RUN = re.compile(r"[0-9０-９](?:[ \-\u00a0\u3000]?[0-9０-９])+(?:[xXｘＸ](?![A-Za-z0-9]))?")
_GROUP_SPLIT = re.compile(r"[ \u00a0\u3000]+")
_SEPS_IN_RUN = str.maketrans("", "", " -\u00a0\u3000")


def _classify_digits(d: str) -> str | None:
    n = len(d)
    if n in (11, 13) and phone_valid(d):
        return "phone"
    if n == 18 and id_number_valid(d):
        return "id_number"
    if 16 <= n <= 19 and bank_card_valid(d):
        return "bank_card"
    return None


def _digit_hits(text: str) -> Iterable[DetectorHit]:
    for m in _DIGIT_RUN.finditer(text):
        start, end = m.span()
        run = m.group()
        if end - start < 11:
            continue
        if start and text[start - 1].isascii() and text[start - 1].isalpha():
            continue  # part of a code such as an order number "A1380013800012"
        digits = run.translate(_FW_DIGITS).translate(_SEPS_IN_RUN)
        kind = _classify_digits(digits)
        if kind is not None:
            if kind == "phone" and start and text[start - 1] in "+＋":
                start -= 1
            yield DetectorHit(kind, start, end, kind)
            continue
        # Several numbers separated by spaces: classify each group on its own.
        pos = start
        for group in _GROUP_SPLIT.split(run):
            g_start = text.index(group, pos)
            pos = g_start + len(group)
            if len(group) < 11:
                continue
            kind = _classify_digits(group.translate(_FW_DIGITS).replace("-", ""))
            if kind is not None:
                yield DetectorHit(kind, g_start, pos, kind)


_WECHAT_RE = re.compile(
    r"(?:微信号?|[wWｗＷ][eEｅＥ][iIｉＩ][xXｘＸ][iIｉＩ][nNｎＮ]|[wWｗＷ][eEｅＥ][cCｃＣ][hHｈＨ][aAａＡ][tTｔＴ]"
    r"|[vVwWｖＶｗＷ][xXｘＸ]|[vVｖＶ]信|薇信|威信|徽信|卫星号|[qQｑＱ][qQｑＱ]|扣扣)"
    r"[ \t\u3000]*号?[ \t\u3000]*(?:是|为)?[ \t\u3000]*[:：]?[ \t\u3000]*"
    r"([A-Za-zＡ-Ｚａ-ｚ][-_A-Za-z0-9Ａ-Ｚａ-ｚ０-９－＿]{5,19}|1[3-9][0-9]{9}|[1-9][0-9]{4,11})"
    r"(?![-_A-Za-z0-9Ａ-Ｚａ-ｚ０-９])"
)
_QR_RE = re.compile(r"二维码|扫码|扫一扫|(?:[qQ][rR] ?(?:[cC]ode|CODE|码))|\[图片\]|\[image\]|\[Image\]|\[IMAGE\]")
_PAY_RE = re.compile(r"\[(?:微信)?(?:红包|转账|收款)\]|红包|转账|收款码|付款码|\[(?:redpacket|transfer)\]")
_URL_TAIL = r"[^\s\x00-\x1f\uffff<>\"'，。！？、；：“”‘’（）《》【】]"
_URL_RE = re.compile(r"(?:[hH][tT][tT][pP][sS]?://|[wW][wW][wW]\.)" + _URL_TAIL + "+")
_TLDS = (
    "com|cn|net|org|top|xyz|vip|cc|io|me|info|biz|club|site|online|shop|link|app|tv|co|hk|tw|ly|to|gl|ink|work|pro"
)
_BARE_DOMAIN_RE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*\.(?:" + _TLDS + r")(?![A-Za-z0-9-])(?:[/?#]" + _URL_TAIL + "*)?"
)
_HOST_RE = re.compile(r"^(?:[a-zA-Z]+://)?([^/:?#\s]+)")
_TRAILING = ".,;:!?)]}'\""


def url_host(url: str) -> str:
    m = _HOST_RE.match(url)
    return (m.group(1) if m else url).lower().rstrip(".")


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    for d in allowed:
        d = d.lower().strip().lstrip("*").lstrip(".")
        if d and (host == d or host.endswith("." + d)):
            return True
    return False


def _link_hits(text: str, allowed: tuple[str, ...]) -> Iterable[DetectorHit]:
    taken: list[tuple[int, int]] = []
    for m in _URL_RE.finditer(text):
        start, end = m.span()
        while end > start and text[end - 1] in _TRAILING:
            end -= 1
        taken.append((start, end))
        if not host_allowed(url_host(text[start:end]), allowed):
            yield DetectorHit("external_link", start, end, "url")
    if "." not in text:
        return
    for m in _BARE_DOMAIN_RE.finditer(text):
        start, end = m.span()
        if start and (text[start - 1].isascii() and (text[start - 1].isalnum() or text[start - 1] in "-./@:")):
            continue
        if any(s <= start < e for s, e in taken):
            continue
        while end > start and text[end - 1] in _TRAILING:
            end -= 1
        host = url_host(text[start:end])
        if host.replace(".", "").isdigit():
            continue
        if not host_allowed(host, allowed):
            yield DetectorHit("external_link", start, end, "domain")


def detect(text: str, *, allowed_domains: Iterable[str] = (), groups: int = ALL_GROUPS) -> list[DetectorHit]:
    """The hits of the detectors of `groups` (all by default) in `text`, sorted by start."""
    hits: list[DetectorHit] = list(_digit_hits(text)) if groups & DIGITS else []
    if groups & WECHAT:
        for m in _WECHAT_RE.finditer(text):
            start = m.start()
            if start and text[start - 1].isascii() and text[start - 1].isalnum() and text[start].isascii():
                continue  # "vx" inside an English word
            kind = "qq" if m.group()[:1] in "qQｑＱ扣" else "wechat"
            hits.append(DetectorHit("wechat_id", start, m.end(), kind))
    if groups & QR:
        for m in _QR_RE.finditer(text):
            hits.append(DetectorHit("qr_code", m.start(), m.end(), "qr_code"))
    if groups & PAY:
        for m in _PAY_RE.finditer(text):
            kind = "transfer" if "转账" in m.group() else "red_packet"
            hits.append(DetectorHit("red_packet", m.start(), m.end(), kind))
    if groups & LINK:
        hits.extend(_link_hits(text, tuple(allowed_domains)))
    if len(hits) > 1:
        hits.sort(key=lambda h: (h.start, h.end))
    return hits
