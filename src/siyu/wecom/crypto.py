"""WXBizMsgCrypt: the signature and encryption of WeCom callbacks (回调消息加解密).

- signature: sha1 over the sorted strings token, timestamp, nonce and the encrypted text;
- key: base64 of EncodingAESKey + "=" (32 bytes); AES-256-CBC with IV = key[:16];
- plaintext: 16 random bytes + uint32 big-endian length + message + receive id (the corp id);
- PKCS#7 padding to 32-byte blocks (not AES's 16: the official samples pad to 32).

Every failure is a `CallbackCryptoError` subclass carrying the HTTP status a callback endpoint
should answer, so the edge never turns a forged or broken request into a 500."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import string
import struct
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from siyu.wecom.xmlsafe import MalformedXml as _MalformedXml
from siyu.wecom.xmlsafe import cdata, child_text, parse_xml_element

BLOCK_SIZE = 32
RANDOM_PREFIX_BYTES = 16
# A callback body is a few hundred bytes; anything far larger is not from WeCom.
MAX_BODY_BYTES = 256 * 1024


class CallbackCryptoError(ValueError):
    """A callback request that cannot be verified or decrypted."""

    status_code = 400


class InvalidSignature(CallbackCryptoError):
    status_code = 403


class DecryptionFailed(CallbackCryptoError):
    """Bad base64, a length that is not whole blocks, bad padding or a bad inner length."""


class ReceiveIdMismatch(CallbackCryptoError):
    """Decrypted correctly but addressed to another corp (or app): our key, not our message."""

    status_code = 403


class MalformedCallback(CallbackCryptoError):
    """The envelope is not the XML WeCom sends (or is missing its Encrypt element)."""


class InvalidAesKey(ValueError):
    """The EncodingAESKey is not 43 base64 characters decoding to 32 bytes (a configuration error)."""


def decode_aes_key(encoding_aes_key: str) -> bytes:
    if len(encoding_aes_key) != 43:
        raise InvalidAesKey("EncodingAESKey must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error:
        raise InvalidAesKey("EncodingAESKey is not base64") from None
    if len(key) != 32:
        raise InvalidAesKey("EncodingAESKey must decode to 32 bytes")
    return key


def generate_aes_key() -> str:
    """A fresh EncodingAESKey, as the WeCom admin console would generate one."""
    return base64.b64encode(os.urandom(32)).decode()[:43]


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


def pkcs7_pad(data: bytes, block_size: int = BLOCK_SIZE) -> bytes:
    n = block_size - len(data) % block_size  # a whole block when already aligned
    return data + bytes([n]) * n


def pkcs7_unpad(data: bytes, block_size: int = BLOCK_SIZE) -> bytes:
    if not data or len(data) % 16:
        raise DecryptionFailed("ciphertext is not whole AES blocks")
    n = data[-1]
    if not 1 <= n <= block_size or n > len(data) or data[-n:] != bytes([n]) * n:
        raise DecryptionFailed("bad padding")
    return data[:-n]


def _nonce() -> str:
    return "".join(secrets.choice(string.digits) for _ in range(10))


@dataclass(frozen=True)
class EncryptedCallback:
    """What WeCom sends for one event: the query parameters and the XML body."""

    msg_signature: str
    timestamp: str
    nonce: str
    body: str

    @property
    def params(self) -> dict[str, str]:
        return {"msg_signature": self.msg_signature, "timestamp": self.timestamp, "nonce": self.nonce}


class WXBizMsgCrypt:
    """One callback configuration: token, EncodingAESKey and the receive id (corp id, or the
    suite id for third-party apps)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if not token:
            raise ValueError("token must not be empty")
        self.token = token
        self.receive_id = receive_id
        self._key = decode_aes_key(encoding_aes_key)

    # --- primitives -------------------------------------------------------------------------

    def signature(self, timestamp: str | int, nonce: str, encrypt: str) -> str:
        return signature(self.token, str(timestamp), nonce, encrypt)

    def check_signature(self, msg_signature: str, timestamp: str | int, nonce: str, encrypt: str) -> None:
        expected = self.signature(timestamp, nonce, encrypt)
        # Constant time: the signature is the only thing standing between a forger and our inbox.
        if not hmac.compare_digest(expected.encode(), (msg_signature or "").lower().encode()):
            raise InvalidSignature("msg_signature does not match")

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def encrypt(self, message: str | bytes, *, random_prefix: bytes | None = None) -> str:
        """Encrypt a message to the base64 text of an `Encrypt` element. `random_prefix` is only
        for reproducing published test vectors."""
        msg = message.encode() if isinstance(message, str) else message
        prefix = os.urandom(RANDOM_PREFIX_BYTES) if random_prefix is None else random_prefix
        if len(prefix) != RANDOM_PREFIX_BYTES:
            raise ValueError("random_prefix must be 16 bytes")
        plain = pkcs7_pad(prefix + struct.pack(">I", len(msg)) + msg + self.receive_id.encode())
        enc = self._cipher().encryptor()
        return base64.b64encode(enc.update(plain) + enc.finalize()).decode()

    def decrypt(self, encrypt: str) -> bytes:
        """Decrypt the text of an `Encrypt` element (or an echostr) and check the receive id."""
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError):
            raise DecryptionFailed("Encrypt is not base64") from None
        if not raw or len(raw) % 16:
            raise DecryptionFailed("ciphertext is not whole AES blocks")
        dec = self._cipher().decryptor()
        plain = pkcs7_unpad(dec.update(raw) + dec.finalize())
        if len(plain) < RANDOM_PREFIX_BYTES + 4:
            raise DecryptionFailed("plaintext too short")
        (length,) = struct.unpack(">I", plain[16:20])
        end = 20 + length
        if end > len(plain):
            raise DecryptionFailed("message length exceeds the plaintext")
        if not hmac.compare_digest(plain[end:], self.receive_id.encode()):
            raise ReceiveIdMismatch("receive id does not match this corp")
        return plain[20:end]

    # --- the three things a callback endpoint does ------------------------------------------

    def verify_url(self, msg_signature: str, timestamp: str | int, nonce: str, echostr: str) -> str:
        """URL verification (GET): check the signature over echostr and return its plaintext,
        which the endpoint answers verbatim."""
        self.check_signature(msg_signature, timestamp, nonce, echostr)
        try:
            return self.decrypt(echostr).decode()
        except UnicodeDecodeError:
            raise DecryptionFailed("echostr is not UTF-8") from None

    def decrypt_message(self, body: str | bytes, msg_signature: str, timestamp: str | int, nonce: str) -> str:
        """A POSTed `<xml><Encrypt>…</Encrypt></xml>` body → the plaintext event XML."""
        try:
            root = parse_xml_element(body, max_bytes=MAX_BODY_BYTES)
        except _MalformedXml as exc:
            raise MalformedCallback(str(exc)) from None
        encrypt = child_text(root, "Encrypt")
        if not encrypt:
            raise MalformedCallback("Encrypt element is missing")
        self.check_signature(msg_signature, timestamp, nonce, encrypt)
        try:
            return self.decrypt(encrypt).decode()
        except UnicodeDecodeError:
            raise DecryptionFailed("message is not UTF-8") from None

    def encrypt_message(self, reply: str, nonce: str | None = None, timestamp: str | int | None = None) -> str:
        """A passive encrypted reply: `<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`."""
        nonce = nonce or _nonce()
        ts = str(timestamp if timestamp is not None else int(time.time()))
        encrypt = self.encrypt(reply)
        sig = self.signature(ts, nonce, encrypt)
        return (
            f"<xml><Encrypt>{cdata(encrypt)}</Encrypt><MsgSignature>{cdata(sig)}</MsgSignature>"
            f"<TimeStamp>{ts}</TimeStamp><Nonce>{cdata(nonce)}</Nonce></xml>"
        )

    def encrypt_callback(self, message: str, *, agent_id: str | int | None = None, nonce: str | None = None,
                         timestamp: str | int | None = None) -> EncryptedCallback:
        """What WeCom POSTs for an event (used by the emulator): signed query parameters and an
        `<xml><ToUserName/><Encrypt/><AgentID/></xml>` body."""
        nonce = nonce or _nonce()
        ts = str(timestamp if timestamp is not None else int(time.time()))
        encrypt = self.encrypt(message)
        agent = "" if agent_id is None else str(agent_id)
        body = (
            f"<xml><ToUserName>{cdata(self.receive_id)}</ToUserName>"
            f"<Encrypt>{cdata(encrypt)}</Encrypt><AgentID>{cdata(agent)}</AgentID></xml>"
        )
        return EncryptedCallback(msg_signature=self.signature(ts, nonce, encrypt), timestamp=ts, nonce=nonce,
                                 body=body)

    def url_verification(self, echo: str, *, nonce: str | None = None,
                         timestamp: str | int | None = None) -> dict[str, str]:
        """The query parameters of a URL-verification GET for `echo` (used by the emulator)."""
        nonce = nonce or _nonce()
        ts = str(timestamp if timestamp is not None else int(time.time()))
        echostr = self.encrypt(echo)
        return {"msg_signature": self.signature(ts, nonce, echostr), "timestamp": ts, "nonce": nonce,
                "echostr": echostr}
