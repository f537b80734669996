"""Personal information at rest: AES-256-GCM encryption, keyed hashes for lookup, masking.

The key comes from SIYU_PII_KEY (32 bytes, URL-safe base64). Ciphertexts carry a version byte
so the key can be rotated later without guessing which key wrote a value."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import String, Text
from sqlalchemy.types import TypeDecorator

from siyu.config import get_settings

_VERSION = b"\x01"


class PiiError(ValueError):
    pass


@lru_cache(maxsize=8)
def _keys(raw: bytes) -> tuple[AESGCM, bytes]:
    # Separate sub-keys for encryption and for lookup hashes.
    enc = hmac.new(raw, b"siyu/pii/enc", hashlib.sha256).digest()
    lookup = hmac.new(raw, b"siyu/pii/lookup", hashlib.sha256).digest()
    return AESGCM(enc), lookup


@lru_cache(maxsize=8)
def _decoded(configured: str, data_dir: str) -> bytes:
    return get_settings().resolved_pii_key()


def _current() -> tuple[AESGCM, bytes]:
    # Decoded once per configured value (SIYU_PII_KEY, or the key file of the data directory when it
    # is unset): settings that change (a test setting another key) get their own key. lru_cache is
    # thread-safe; at worst two threads decode the same value once each.
    settings = get_settings()
    return _keys(_decoded(settings.pii_key.get_secret_value(), str(settings.data_dir)))


def encrypt(plaintext: str, *, context: str = "") -> str:
    aead, _ = _current()
    nonce = os.urandom(12)
    ct = aead.encrypt(nonce, plaintext.encode(), context.encode() or None)
    return base64.urlsafe_b64encode(_VERSION + nonce + ct).decode()


def decrypt(token: str, *, context: str = "") -> str:
    aead, _ = _current()
    try:
        raw = base64.urlsafe_b64decode(token.encode())
    except (ValueError, TypeError) as exc:
        raise PiiError("not an encrypted value") from exc
    if len(raw) < 1 + 12 + 16 or raw[:1] != _VERSION:
        raise PiiError("not an encrypted value")
    try:
        return aead.decrypt(raw[1:13], raw[13:], context.encode() or None).decode()
    except Exception as exc:  # InvalidTag: wrong key or tampered value
        raise PiiError("cannot decrypt: wrong key or altered value") from exc


def lookup_hash(value: str, *, kind: str) -> str:
    """A keyed hash to find a record by an exact value (phone, ID number) without storing it in clear."""
    _, key = _current()
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def blind_index(values: list[str], *, kind: str) -> list[int]:
    """Keyed 63-bit tokens of short values (n-grams of a name) for a searchable index that stores no
    clear text: equal values give equal tokens, and without the key a token says nothing of its value.
    A separate sub-key from the lookup hashes; `kind` separates the indexes (and corps) from each other."""
    base = _blind_base(_current()[1], kind)
    out = []
    for value in values:
        h = base.copy()
        h.update(value.encode())
        out.append(int.from_bytes(h.digest()[:8], "big") >> 1)  # non-negative: fits a signed BIGINT
    return out


@lru_cache(maxsize=256)
def _blind_base(lookup_key: bytes, kind: str):
    key = hmac.new(lookup_key, b"siyu/pii/blind", hashlib.sha256).digest()
    return hmac.new(key, f"{kind}\x00".encode(), hashlib.sha256)


class EncryptedString(TypeDecorator):
    """A column holding text encrypted with the PII key; Python sees the clear text."""

    impl = String
    cache_ok = True

    def __init__(self, context: str = "", length: int = 512):
        super().__init__(length)
        self.context = context

    def process_bind_param(self, value, dialect):
        return None if value is None else encrypt(value, context=self.context)

    def process_result_value(self, value, dialect):
        return None if value is None else decrypt(value, context=self.context)


class EncryptedText(EncryptedString):
    """EncryptedString for long values (an export bundle): an unbounded text column."""

    impl = Text
    cache_ok = True

    def __init__(self, context: str = "", length: int | None = None):
        super().__init__(context, length)


# --- masking (what the UI and exports show by default) ---------------------------------------


def mask_phone(phone: str | None) -> str:
    if not phone:
        return ""
    digits = phone.strip()
    if len(digits) >= 8:
        # 138****5678: the first three and last four stay, as Chinese services show phones.
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    return "*" * len(digits)


def mask_id_number(value: str | None) -> str:
    if not value:
        return ""
    v = value.strip()
    return v[:4] + "*" * max(0, len(v) - 8) + v[-4:] if len(v) > 8 else "*" * len(v)


def mask_bank_card(value: str | None) -> str:
    if not value:
        return ""
    v = value.replace(" ", "")
    return "**** " + v[-4:] if len(v) > 4 else "*" * len(v)


def mask_name(value: str | None) -> str:
    if not value:
        return ""
    return value[0] + "*" * (len(value) - 1) if len(value) > 1 else "*"
