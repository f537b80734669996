"""The chat archive through WeCom's Finance SDK (会话内容存档 SDK).

WeCom hands out archived chats only through a native library, `libWeWorkFinanceSdk_C.so`, downloaded
from its admin console (no HTTP API). This module loads it with ctypes and speaks its C interface:

    NewSdk() -> sdk;  Init(sdk, corpid, secret) -> ret;  DestroySdk(sdk)
    GetChatData(sdk, seq, limit, proxy, passwd, timeout, slice) -> ret   (JSON: errcode, chatdata[])
    DecryptData(encrypt_key, encrypt_msg, slice) -> ret                  (the message JSON)
    GetMediaData(sdk, indexbuf, sdkfileid, proxy, passwd, timeout, media) -> ret  (in chunks)
    NewSlice / FreeSlice / GetContentFromSlice / GetSliceLen
    NewMediaData / FreeMediaData / GetOutIndexBuf / GetData / GetIndexLen / GetDataLen / IsMediaDataFinish

Each chat-data item carries `encrypt_random_key`, the message key encrypted (RSA, PKCS#1 v1.5) with
the corp's public key of version `publickey_ver`; Siyu opens it with the matching private key
(stored encrypted, per corp and version, `ArchiveSdkConfig`) and passes it to DecryptData. The result
is the same feed item the archive monitor already reads (`{"seq", "msgid", "publickey_ver",
"message"}`), so `archive.poll_feed` stores and scans it unchanged; the library and the feed URL
are two sources of one feed. A message whose key version Siyu has no private key for stops the poll
with an error the console shows (the cursor stays, nothing is skipped); a message the SDK cannot
decrypt is counted as rejected, as a malformed feed item is.

The library is not thread-safe for one handle, and Init costs a network round trip: one handle per
poll, destroyed after it.
"""

from __future__ import annotations

import base64
import ctypes
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.compliance.models import ArchiveSdkConfig
from siyu.config import get_settings
from siyu.errors import InvalidInput
from siyu.tenancy import audit

# Return codes of the SDK, as WeCom documents them.
SDK_ERRORS = {
    10000: "parameter error",
    10001: "network error",
    10002: "data parse error",
    10003: "system error",
    10004: "secret error (the archive app's secret is wrong)",
    10005: "file id error",
    10006: "decryption error",
    10007: "file not found",
    10008: "encrypt key error (no private key for its version, or the wrong one)",
    10009: "IP not allowed (add this server to the archive app's trusted IPs)",
    10010: "data expired",
    10011: "certificate error",
}
MAX_KEYS = 20
MAX_PEM = 16 * 1024


class SdkError(Exception):
    """The SDK answered a return code other than 0 (or could not be loaded)."""

    def __init__(self, call: str, code: int):
        self.call, self.code = call, code
        super().__init__(f"{call} answered {code}: {SDK_ERRORS.get(code, 'unknown error')}")


_loaded: dict[str, ctypes.CDLL] = {}
_load_lock = threading.Lock()


def _library(path: Path) -> ctypes.CDLL:
    key = str(path)
    with _load_lock:
        lib = _loaded.get(key)
        if lib is None:
            lib = ctypes.CDLL(key)
            c_char_p, c_int, c_void_p = ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p
            signatures: dict[str, tuple[Any, list[Any]]] = {
                "NewSdk": (c_void_p, []),
                "Init": (c_int, [c_void_p, c_char_p, c_char_p]),
                "DestroySdk": (None, [c_void_p]),
                "GetChatData": (c_int, [c_void_p, ctypes.c_ulonglong, ctypes.c_uint, c_char_p, c_char_p, c_int,
                                        c_void_p]),
                "DecryptData": (c_int, [c_char_p, c_char_p, c_void_p]),
                "GetMediaData": (c_int, [c_void_p, c_char_p, c_char_p, c_char_p, c_char_p, c_int, c_void_p]),
                "NewSlice": (c_void_p, []),
                "FreeSlice": (None, [c_void_p]),
                "GetContentFromSlice": (c_void_p, [c_void_p]),
                "GetSliceLen": (c_int, [c_void_p]),
                "NewMediaData": (c_void_p, []),
                "FreeMediaData": (None, [c_void_p]),
                "GetOutIndexBuf": (c_void_p, [c_void_p]),
                "GetData": (c_void_p, [c_void_p]),
                "GetIndexLen": (c_int, [c_void_p]),
                "GetDataLen": (c_int, [c_void_p]),
                "IsMediaDataFinish": (c_int, [c_void_p]),
            }
            for name, (restype, argtypes) in signatures.items():
                fn = getattr(lib, name)
                fn.restype, fn.argtypes = restype, argtypes
            _loaded[key] = lib
    return lib


class FinanceSdk:
    """One initialised handle of the library (use as a context manager: it is destroyed after)."""

    def __init__(self, library: Path, *, corp_id: str, secret: str, proxy: str = "", proxy_password: str = "",
                 timeout: int = 10):
        self._lib = _library(library)
        self._proxy, self._passwd, self._timeout = proxy.encode(), proxy_password.encode(), int(timeout)
        self._sdk = self._lib.NewSdk()
        if not self._sdk:
            raise SdkError("NewSdk", -1)
        ret = self._lib.Init(self._sdk, corp_id.encode(), secret.encode())
        if ret != 0:
            self.close()
            raise SdkError("Init", ret)

    def close(self) -> None:
        if self._sdk:
            self._lib.DestroySdk(self._sdk)
            self._sdk = None

    def __enter__(self) -> FinanceSdk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _slice_text(self, fill: Callable[[int], int], call: str) -> bytes:
        sl = self._lib.NewSlice()
        try:
            ret = fill(sl)
            if ret != 0:
                raise SdkError(call, ret)
            return ctypes.string_at(self._lib.GetContentFromSlice(sl), self._lib.GetSliceLen(sl))
        finally:
            self._lib.FreeSlice(sl)

    def get_chat_data(self, seq: int, limit: int) -> dict[str, Any]:
        raw = self._slice_text(lambda sl: self._lib.GetChatData(self._sdk, seq, limit, self._proxy, self._passwd,
                                                                self._timeout, sl), "GetChatData")
        try:
            data = json.loads(raw)
        except ValueError:
            raise SdkError("GetChatData", 10002) from None
        return data if isinstance(data, dict) else {"errcode": 10002}

    def decrypt(self, random_key: bytes, encrypt_msg: str) -> bytes:
        return self._slice_text(lambda sl: self._lib.DecryptData(random_key, encrypt_msg.encode(), sl), "DecryptData")

    def get_media(self, sdkfileid: str, *, max_bytes: int = 100 * 1024 * 1024) -> bytes:
        """A media file (image, voice, file) whole, read chunk by chunk as the SDK hands it out."""
        out, index = bytearray(), b""
        media = self._lib.NewMediaData()
        try:
            while True:
                ret = self._lib.GetMediaData(self._sdk, index, sdkfileid.encode(), self._proxy, self._passwd,
                                             self._timeout, media)
                if ret != 0:
                    raise SdkError("GetMediaData", ret)
                out += ctypes.string_at(self._lib.GetData(media), self._lib.GetDataLen(media))
                if len(out) > max_bytes:
                    raise SdkError("GetMediaData", 10000)
                if self._lib.IsMediaDataFinish(media):
                    return bytes(out)
                index = ctypes.string_at(self._lib.GetOutIndexBuf(media), self._lib.GetIndexLen(media))
        finally:
            self._lib.FreeMediaData(media)


# --- the corp's configuration ----------------------------------------------------------------------


@dataclass(frozen=True)
class SdkSettings:
    secret: str
    keys: dict[int, rsa.RSAPrivateKey]


def _load_key(pem: str, *, field: str) -> rsa.RSAPrivateKey:
    if not isinstance(pem, str) or not pem.strip() or len(pem) > MAX_PEM:
        raise InvalidInput("a PEM private key is required", field=field)
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise InvalidInput("not a PEM private key without a password", field=field) from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise InvalidInput("the archive key must be an RSA key of 2048 bits or more", field=field)
    return key


def set_config(session: Session, *, corp_id: int, actor: str, secret: str, private_keys: dict[int, str],
               enabled: bool = True) -> ArchiveSdkConfig:
    """Store (encrypted) the archive app's secret and the private keys by WeCom key version; audited,
    neither value is ever logged or shown again."""
    if not isinstance(secret, str) or not secret.strip() or len(secret) > 200:
        raise InvalidInput("the archive app's secret is required", field="secret")
    if not private_keys or len(private_keys) > MAX_KEYS:
        raise InvalidInput(f"between 1 and {MAX_KEYS} private keys, by key version", field="private_keys")
    for version, pem in private_keys.items():
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= 10_000:
            raise InvalidInput("a key version is a whole number from 1", field="private_keys")
        _load_key(pem, field=f"private_keys.{version}")
    row = session.get(ArchiveSdkConfig, corp_id) or ArchiveSdkConfig(corp_id=corp_id)
    row.secret = secret.strip()
    row.private_keys = json.dumps({str(v): pem for v, pem in sorted(private_keys.items())})
    row.enabled = enabled
    row.updated_by = actor[:160]
    session.add(row)
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="archive_sdk.configured", target_type="corp",
                 target_id=corp_id, detail={"key_versions": sorted(private_keys), "enabled": enabled})
    return row


def settings_for(session: Session, *, corp_id: int) -> SdkSettings | None:
    """The corp's SDK settings when the installation has the library and the corp is configured."""
    if get_settings().archive_sdk_library is None:
        return None
    row = session.get(ArchiveSdkConfig, corp_id)
    if row is None or not row.enabled:
        return None
    keys = {int(v): _load_key(pem, field="private_keys") for v, pem in json.loads(row.private_keys).items()}
    return SdkSettings(secret=row.secret, keys=keys)


def open_random_key(keys: dict[int, rsa.RSAPrivateKey], *, version: object, encrypted: object) -> bytes:
    key = keys.get(version) if isinstance(version, int) else None
    if key is None:
        raise SdkError("DecryptData", 10008)
    try:
        return key.decrypt(base64.b64decode(str(encrypted), validate=True), padding.PKCS1v15())
    except ValueError:
        raise SdkError("DecryptData", 10008) from None


def decrypt_items(sdk: FinanceSdk, keys: dict[int, rsa.RSAPrivateKey], items: list[Any]) -> list[Any]:
    """Chat-data items as the feed's: each with its decrypted `message`. An item whose key version
    Siyu does not hold raises (nothing may be skipped silently); one the SDK cannot open is passed
    on without a message, and the feed's reader counts it as rejected."""
    out: list[Any] = []
    for item in items:
        if not isinstance(item, dict):
            out.append(item)
            continue
        random_key = open_random_key(keys, version=item.get("publickey_ver"), encrypted=item.get("encrypt_random_key"))
        try:
            message = json.loads(sdk.decrypt(random_key, str(item.get("encrypt_chat_msg", ""))))
        except (SdkError, ValueError):
            message = None
        out.append({"seq": item.get("seq"), "msgid": item.get("msgid"), "publickey_ver": item.get("publickey_ver"),
                    "message": message})
    return out


# --- the archive feed, read through the SDK --------------------------------------------------------------


class SdkFetch:
    """`archive.poll_feed`'s fetch through one SDK handle (close it after the poll)."""

    def __init__(self, sdk: FinanceSdk, keys: dict[int, rsa.RSAPrivateKey]):
        self._sdk, self._keys = sdk, keys

    def __call__(self, seq: int, limit: int) -> dict[str, Any]:
        from siyu.compliance.archive import FeedError

        try:
            data = self._sdk.get_chat_data(seq, limit)
            if data.get("errcode", 0) != 0:
                raise FeedError(f"GetChatData answered errcode {data.get('errcode')}")
            items = data.get("chatdata")
            if not isinstance(items, list):
                raise FeedError("GetChatData answered no chatdata")
            return {"errcode": 0, "chatdata": decrypt_items(self._sdk, self._keys, items)}
        except SdkError as exc:
            raise FeedError(f"archive SDK: {exc}") from None

    def close(self) -> None:
        self._sdk.close()


def sdk_fetcher(*, corp_id: int) -> SdkFetch | None:
    """A fetch through the SDK when the installation has the library and the corp its archive secret
    and keys; None otherwise (the feed URL is read instead). Reads the settings in a short
    transaction of its own, before the poll's begins; Init happens here."""
    from siyu.compliance.archive import FeedError
    from siyu.db import session_scope
    from siyu.tenancy.models import Corp

    settings = get_settings()
    with session_scope() as session:
        sdk_settings = settings_for(session, corp_id=corp_id)
        wecom_corp_id = session.scalar(select(Corp.wecom_corp_id).where(Corp.id == corp_id)) if sdk_settings else None
    if sdk_settings is None:
        return None
    if not wecom_corp_id:
        raise FeedError("archive SDK: the corp has no WeCom connection")
    assert settings.archive_sdk_library is not None
    try:
        sdk = FinanceSdk(settings.archive_sdk_library, corp_id=wecom_corp_id, secret=sdk_settings.secret,
                         proxy=settings.archive_sdk_proxy,
                         proxy_password=settings.archive_sdk_proxy_password.get_secret_value(),
                         timeout=settings.archive_sdk_timeout_seconds)
    except OSError as exc:
        raise FeedError(f"archive SDK library cannot be loaded: {exc.__class__.__name__}") from None
    except SdkError as exc:
        raise FeedError(f"archive SDK: {exc}") from None
    return SdkFetch(sdk, sdk_settings.keys)
