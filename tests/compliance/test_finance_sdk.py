"""The chat archive through WeCom's Finance SDK: Siyu's ctypes adapter against a stand-in library
with the same C interface, built here from tests/compliance/standin/finance_sdk_standin.c. Message
keys are RSA-encrypted with the corp's public key, as WeCom does; Siyu opens them with the private
key stored (encrypted) for that key version, and the archive monitor stores and scans the messages."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import select, text

from siyu.compliance import archive_jobs, finance_sdk
from siyu.compliance.models import ArchiveAlert, ArchiveCursor, ArchiveMessage, ArchiveSdkConfig
from siyu.config import get_settings
from siyu.db import session_scope, utcnow
from siyu.errors import InvalidInput
from siyu.jobs.registry import JobContext
from siyu.tenancy import service as tenancy

STANDIN = Path(__file__).parent / "standin" / "finance_sdk_standin.c"
SECRET = "archive-secret-" + "x" * 20


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    compiler = shutil.which("gcc") or shutil.which("cc")
    assert compiler, "a C compiler is needed to build the SDK stand-in (scripts/install-system-deps installs gcc)"
    out = tmp_path_factory.mktemp("sdk") / "libWeWorkFinanceSdk_C.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(out), str(STANDIN)], check=True)
    return out


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class WeComArchive:
    """What WeCom's side holds for one corp: its archive secret, chat data encrypted for the corp's
    public key of each version, and media files (the stand-in reads them from a directory)."""

    def __init__(self, root: Path, keys: dict[int, rsa.RSAPrivateKey]):
        self.root, self.keys, self.seq = root, keys, 0
        (root / "media").mkdir(parents=True)
        (root / "secret").write_text(SECRET + "\n")
        (root / "chatdata.jsonl").write_text("")

    def say(self, sender: str, to: str, text: str, *, version: int = 1) -> str:
        self.seq += 1
        msgid = f"msg{self.seq}-{uuid.uuid4().hex[:6]}"
        message = {"msgid": msgid, "action": "send", "from": sender, "tolist": [to], "roomid": "",
                   "msgtime": int(utcnow().timestamp() * 1000), "msgtype": "text", "text": {"content": text}}
        random_key = uuid.uuid4().hex  # the per-message key WeCom makes
        plain = b"OK:" + json.dumps(message, ensure_ascii=False).encode()
        cipher = bytes(b ^ random_key.encode()[i % len(random_key)] for i, b in enumerate(plain)).hex()
        encrypted_key = self.keys[version].public_key().encrypt(random_key.encode(), padding.PKCS1v15())
        item = {"seq": self.seq, "msgid": msgid, "publickey_ver": version,
                "encrypt_random_key": base64.b64encode(encrypted_key).decode(), "encrypt_chat_msg": cipher}
        with (self.root / "chatdata.jsonl").open("a") as fh:
            fh.write(json.dumps(item, separators=(",", ":")) + "\n")
        return msgid


@pytest.fixture
def wecom_archive(tmp_path, monkeypatch, library, database_url) -> tuple[int, WeComArchive]:
    keys = {1: rsa.generate_private_key(public_exponent=65537, key_size=2048),
            2: rsa.generate_private_key(public_exponent=65537, key_size=2048)}
    store = WeComArchive(tmp_path / "wecom", keys)
    monkeypatch.setenv("FINANCE_STANDIN_DIR", str(store.root))
    monkeypatch.setenv("SIYU_ARCHIVE_SDK_LIBRARY", str(library))
    get_settings.cache_clear()
    with session_scope() as s:
        corp = tenancy.create_corp(s, slug="sdk-" + uuid.uuid4().hex[:8], name="存档SDK银行",
                                   wecom_corp_id="ww" + uuid.uuid4().hex[:16])
        finance_sdk.set_config(s, corp_id=corp.id, actor="test", secret=SECRET, private_keys={1: _pem(keys[1])})
        corp_id = corp.id
    yield corp_id, store
    get_settings.cache_clear()


def _poll(corp_id: int) -> None:
    now = utcnow()
    with session_scope() as s:
        archive_jobs.poll(s, {}, JobContext(id=1, name="compliance.archive_poll", attempt=1, max_attempts=3,
                                            queue="default", corp_id=corp_id, run_at=now, enqueued_at=now,
                                            worker_id="test"))


def test_messages_are_read_through_the_sdk_decrypted_stored_and_scanned(wecom_archive):
    corp_id, wecom = wecom_archive
    wecom.say("zhangsan", "wmCustomer01", "这款理财保本保息，年化8%")
    wecom.say("wmCustomer01", "zhangsan", "好的，我考虑一下")
    _poll(corp_id)
    wecom.say("zhangsan", "wmCustomer01", "明天给您寄资料")
    _poll(corp_id)
    _poll(corp_id)  # nothing new: nothing stored twice
    with session_scope() as s:
        messages = s.scalars(select(ArchiveMessage).where(ArchiveMessage.corp_id == corp_id)
                             .order_by(ArchiveMessage.seq)).all()
        assert [m.seq for m in messages] == [1, 2, 3]
        assert messages[0].text == "这款理财保本保息，年化8%" and messages[0].sender_is_staff
        alerts = s.scalars(select(ArchiveAlert).where(ArchiveAlert.corp_id == corp_id)).all()
        assert len(alerts) == 1 and alerts[0].severity == "block"
        cursor = s.get(ArchiveCursor, corp_id)
        assert cursor.seq == 3 and cursor.last_error == ""


def test_a_key_version_siyu_does_not_hold_stops_the_poll_and_skips_nothing(wecom_archive):
    corp_id, wecom = wecom_archive
    wecom.say("zhangsan", "wmCustomer01", "您好")
    wecom.say("zhangsan", "wmCustomer01", "新密钥加密的消息", version=2)  # WeCom rotated the key
    _poll(corp_id)
    with session_scope() as s:
        cursor = s.get(ArchiveCursor, corp_id)
        assert cursor.seq == 0 and "10008" in cursor.last_error  # the page is not taken half
        assert s.scalar(select(ArchiveMessage.id).where(ArchiveMessage.corp_id == corp_id)) is None
        finance_sdk.set_config(s, corp_id=corp_id, actor="test", secret=SECRET,
                               private_keys={1: _pem(wecom.keys[1]), 2: _pem(wecom.keys[2])})
    _poll(corp_id)
    with session_scope() as s:
        texts = s.scalars(select(ArchiveMessage.text).where(ArchiveMessage.corp_id == corp_id)
                          .order_by(ArchiveMessage.seq)).all()
        assert texts == ["您好", "新密钥加密的消息"] and s.get(ArchiveCursor, corp_id).last_error == ""


def test_a_wrong_secret_is_shown_on_the_cursor(wecom_archive):
    corp_id, wecom = wecom_archive
    wecom.say("zhangsan", "wmCustomer01", "您好")
    with session_scope() as s:
        row = s.get(ArchiveSdkConfig, corp_id)
        row.secret = "not-the-secret"
    _poll(corp_id)
    with session_scope() as s:
        assert "10004" in s.get(ArchiveCursor, corp_id).last_error
        assert s.scalar(select(ArchiveMessage.id).where(ArchiveMessage.corp_id == corp_id)) is None


def test_media_is_read_whole_across_chunks(library, tmp_path, monkeypatch):
    root = tmp_path / "wecom"
    (root / "media").mkdir(parents=True)
    (root / "secret").write_text(SECRET)
    data = bytes(range(256)) * 3 + b"tail"  # 772 bytes: 13 chunks of the stand-in's 64
    (root / "media" / "file-abc").write_bytes(data)
    monkeypatch.setenv("FINANCE_STANDIN_DIR", str(root))
    with finance_sdk.FinanceSdk(library, corp_id="wwcorp", secret=SECRET) as sdk:
        assert sdk.get_media("file-abc") == data
        with pytest.raises(finance_sdk.SdkError) as missing:
            sdk.get_media("no-such-file")
        assert missing.value.code == 10005


def test_settings_refuse_what_is_not_a_key_and_keep_nothing_in_clear(database_url):
    with session_scope() as s:
        corp = tenancy.create_corp(s, slug="sdk-" + uuid.uuid4().hex[:8], name="存档SDK银行")
        with pytest.raises(InvalidInput) as bad:
            finance_sdk.set_config(s, corp_id=corp.id, actor="test", secret=SECRET, private_keys={1: "not a key"})
        assert bad.value.field == "private_keys.1"
        with pytest.raises(InvalidInput) as no_secret:
            finance_sdk.set_config(s, corp_id=corp.id, actor="test", secret=" ", private_keys={})
        assert no_secret.value.field == "secret"
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        finance_sdk.set_config(s, corp_id=corp.id, actor="test", secret=SECRET, private_keys={3: _pem(key)})
        corp_id = corp.id
    with session_scope() as s:
        raw = s.execute(text("SELECT secret, private_keys FROM archive_sdk_config WHERE corp_id = :c"),
                        {"c": corp_id}).one()  # as stored, not through the column type
        assert SECRET not in raw.secret and "PRIVATE KEY" not in raw.private_keys
