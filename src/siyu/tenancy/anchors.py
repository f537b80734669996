"""Anchors of the audit log: a signed record of each chain's head, written daily to files that
operators ship off the machine.

The hash chain finds an entry that was changed or removed in the middle, but not the newest
entries cut from the end: a chain that stops early still links up. An anchor says "chain C had
N entries, the last with hash H, at time T", signed with the installation's Ed25519 key, so a
later `siyu audit verify --anchors DIR` finds a chain cut below an anchored head or an anchored
entry rewritten. What remains open is the tail written since the last anchor that left the machine.

Ed25519 rather than an HMAC: an auditor is given the public key (`siyu audit anchor-key`) and can
check anchors without holding any secret of the installation. The private key is derived from
SIYU_SECRET_KEY (HKDF with a label of its own) unless SIYU_AUDIT_ANCHOR_KEY names a separate one."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.config import Settings, get_settings
from siyu.db import utcnow
from siyu.tenancy.models import AuditEntry

VERSION = 1
CALENDAR_ZONE = ZoneInfo("Asia/Shanghai")
FILE_RE = re.compile(r"^audit-anchors-(\d{4}-\d{2}-\d{2})\.jsonl$")
HKDF_INFO = b"siyu audit anchor v1"
FIELDS = ("v", "chain_id", "head_seq", "head_hash", "entries", "at", "key_id")


class AnchorError(ValueError):
    """An anchor line that cannot be read (the message names what is wrong)."""


def signing_key(settings: Settings | None = None) -> Ed25519PrivateKey:
    """The installation's anchor key: SIYU_AUDIT_ANCHOR_KEY (32 bytes, URL-safe base64) when set,
    else derived from the secret key."""
    settings = settings or get_settings()
    configured = settings.audit_anchor_key.get_secret_value()
    if configured:
        seed = base64.urlsafe_b64decode(configured + "=" * (-len(configured) % 4))
        if len(seed) != 32:
            raise ValueError("SIYU_AUDIT_ANCHOR_KEY must be 32 bytes in URL-safe base64")
    else:
        seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(
            settings.resolved_secret_key().encode())
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def load_public_key(hex_key: str) -> Ed25519PublicKey:
    try:
        raw = bytes.fromhex(hex_key.strip())
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise ValueError("a public key is 64 hexadecimal characters (32 bytes)") from exc


def anchor_dir(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return settings.audit_anchor_dir or settings.data_dir / "audit-anchors"


def _canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Anchor:
    chain_id: int
    head_seq: int
    head_hash: str
    entries: int
    at: dt.datetime


def chain_heads(session: Session) -> list[Anchor]:
    """The head of every chain that has entries, read in the caller's transaction."""
    now = utcnow()
    last = (
        select(AuditEntry.chain_id, func.max(AuditEntry.seq).label("seq"), func.count().label("n"))
        .group_by(AuditEntry.chain_id)
        .subquery()
    )
    rows = session.execute(
        select(last.c.chain_id, last.c.seq, last.c.n, AuditEntry.hash)
        .join(AuditEntry, (AuditEntry.chain_id == last.c.chain_id) & (AuditEntry.seq == last.c.seq))
        .order_by(last.c.chain_id)
    )
    return [Anchor(chain_id=r.chain_id, head_seq=r.seq, head_hash=r.hash, entries=r.n, at=now) for r in rows]


def sign_line(anchor: Anchor, key: Ed25519PrivateKey) -> str:
    body = {
        "v": VERSION,
        "chain_id": anchor.chain_id,
        "head_seq": anchor.head_seq,
        "head_hash": anchor.head_hash,
        "entries": anchor.entries,
        "at": anchor.at.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "key_id": public_key_hex(key)[:16],
    }
    body["sig"] = base64.b64encode(key.sign(_canonical(body))).decode()
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def parse_line(line: str, public_key: Ed25519PublicKey) -> Anchor:
    """Reads one anchor line and checks its signature; AnchorError says what is wrong."""
    try:
        body = json.loads(line)
    except ValueError:
        raise AnchorError("not JSON") from None
    if not isinstance(body, dict):
        raise AnchorError("not a JSON object")
    missing = [f for f in (*FIELDS, "sig") if f not in body]
    if missing:
        raise AnchorError(f"missing {', '.join(missing)}")
    if body["v"] != VERSION:
        raise AnchorError(f"unknown version {body['v']!r}")
    sig = body.pop("sig")
    try:
        public_key.verify(base64.b64decode(sig, validate=True), _canonical(body))
    except (InvalidSignature, ValueError, TypeError):
        raise AnchorError("signature does not match (forged or altered, or another key)") from None
    ints = (body["chain_id"], body["head_seq"], body["entries"])
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints):
        raise AnchorError("chain_id, head_seq and entries must be whole numbers")
    if not (isinstance(body["head_hash"], str) and re.fullmatch(r"[0-9a-f]{64}", body["head_hash"])):
        raise AnchorError("head_hash must be 64 hexadecimal characters")
    try:
        at = dt.datetime.fromisoformat(body["at"])
    except (TypeError, ValueError):
        raise AnchorError("at must be an ISO-8601 time") from None
    return Anchor(chain_id=body["chain_id"], head_seq=body["head_seq"], head_hash=body["head_hash"],
                  entries=body["entries"], at=at)


def write_anchors(session: Session, *, directory: Path | None = None, key: Ed25519PrivateKey | None = None) -> Path:
    """Appends a signed anchor of every chain's head to the day's file (Asia/Shanghai date),
    written anew to a temporary file, fsync'd and renamed, so a crash leaves the old file whole."""
    directory = directory or anchor_dir()
    key = key or signing_key()
    heads = chain_heads(session)
    day = utcnow().astimezone(CALENDAR_ZONE).date().isoformat()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"audit-anchors-{day}.jsonl"
    existing = path.read_bytes() if path.exists() else b""
    if existing and not existing.endswith(b"\n"):
        existing += b"\n"
    added = "".join(sign_line(h, key) + "\n" for h in heads).encode()
    tmp = path.with_suffix(".jsonl.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, existing + added)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def verify_anchors(session: Session, *, directory: Path, public_key: Ed25519PublicKey) -> dict:
    """Checks every anchor in `directory` against the database: its signature, and that its chain
    still holds the anchored head (not cut below it, the anchored entry not rewritten)."""
    problems: list[dict] = []
    files = sorted(p for p in directory.glob("audit-anchors-*.jsonl") if FILE_RE.match(p.name)) \
        if directory.is_dir() else []
    checked = 0
    latest: dict[int, Anchor] = {}
    for path in files:
        day = FILE_RE.match(path.name).group(1)
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            where = {"anchor": day, "file": path.name, "line": number}
            try:
                anchor = parse_line(line, public_key)
            except AnchorError as exc:
                problems.append({**where, "problem": f"anchor unreadable: {exc}"})
                continue
            checked += 1
            found = _check_anchor(session, anchor)
            if found:
                problems.append({**where, "chain_id": anchor.chain_id, "seq": anchor.head_seq, "problem": found})
            best = latest.get(anchor.chain_id)
            if best is None or anchor.head_seq > best.head_seq:
                latest[anchor.chain_id] = anchor
    if not files:
        problems.append({"problem": f"no anchors found in {directory}"})
    newest = max((a.at for a in latest.values()), default=None)
    return {"ok": not problems, "anchors_checked": checked, "chains_anchored": len(latest),
            "newest_anchor": newest.isoformat() if newest else None, "problems": problems}


def _check_anchor(session: Session, anchor: Anchor) -> str | None:
    head = session.execute(
        select(func.max(AuditEntry.seq), func.count()).where(AuditEntry.chain_id == anchor.chain_id)
    ).one()
    if head[0] is None or head[0] < anchor.head_seq or head[1] < anchor.entries:
        return f"entries cut: the chain ends at seq {head[0] or 0}, the anchor says {anchor.head_seq}"
    stored = session.scalar(
        select(AuditEntry.hash).where(AuditEntry.chain_id == anchor.chain_id, AuditEntry.seq == anchor.head_seq)
        .execution_options(populate_existing=True)
    )
    if stored is None:
        return "anchored entry missing"
    if stored != anchor.head_hash:
        return "anchored entry rewritten"
    return None
