"""Siyu's callback endpoint and the corp's WeCom connection: what is stored, what is refused."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from siyu.app import create_app
from siyu.config import get_settings
from siyu.db import session_scope
from siyu.errors import Conflict, InvalidInput
from siyu.jobs.models import Job
from siyu.tenancy import service as tenancy
from siyu.wecom import service
from siyu.wecom.crypto import WXBizMsgCrypt, generate_aes_key
from siyu.wecom.emulator.callbacks import event_xml
from siyu.wecom.models import WecomCorpConfig, WecomInboxEvent
from tenancy.factories import console_user, fast_argon2, make_corp  # noqa: F401

TOKEN = "siyuToken2026"
WELCOME_JOB = "event:customer.added:acquisition.welcome"  # the subscriber of customer.added


@pytest.fixture(params=["journal", "database"])
def connected(database_url, request, monkeypatch):
    """A committed corp with its WeCom connection, and a client of the real app: the endpoint runs
    its own transactions (group commit), as in production. Once for each way of acknowledging:
    once journaled in the spool (the drainer stores it), once committed to the database."""
    monkeypatch.setenv("SIYU_CALLBACK_ACK", request.param)
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)
    wecom_id = "ww" + uuid.uuid4().hex[:16]
    aes_key = generate_aes_key()
    with session_scope() as s:
        corp = tenancy.create_corp(s, slug="cb-" + uuid.uuid4().hex[:8], name="回调测试银行")
        service.configure_connection(s, corp_id=corp.id, actor="test", wecom_corp_id=wecom_id,
                                     secret="contact-secret-" + uuid.uuid4().hex, token=TOKEN, aes_key=aes_key,
                                     base_url="http://127.0.0.1:9/cgi-bin/")
    crypto = WXBizMsgCrypt(TOKEN, aes_key, wecom_id)
    crypto.test_aes_key = aes_key
    return corp, crypto, TestClient(create_app(get_settings()))


def add_event(corp_id: str, *, ext: str = "wmCUSTOMER0001", at: int = 1764000000, code: str = "WELCOME1") -> str:
    return event_xml(corp_id, at, "change_external_contact", "add_external_contact",
                     [("UserID", "zhangsan"), ("ExternalUserID", ext), ("State", "ch:ad-spring"),
                      ("WelcomeCode", code)])


def post(client, corp, crypto: WXBizMsgCrypt, plaintext: str, *, tamper: bool = False):
    signed = crypto.encrypt_callback(plaintext)
    params = dict(signed.params)
    if tamper:
        params["msg_signature"] = "0" * 40
    return client.post(f"/wecom/callback/{corp.slug}", params=params, content=signed.body,
                       headers={"content-type": "text/xml"})


def settle() -> None:
    """What was acknowledged is in the database: the spool drained (journal acknowledgement)."""
    from siyu.wecom import callbacks

    result = callbacks.spool_drainer().drain_once()
    assert result.rejected == 0


def counts(crypto: WXBizMsgCrypt) -> tuple[int, int]:
    settle()
    with session_scope() as s:
        events = s.scalar(select(func.count()).select_from(WecomInboxEvent)
                          .where(WecomInboxEvent.wecom_corp_id == crypto.receive_id))
        jobs = s.scalar(select(func.count()).select_from(Job).where(Job.name == WELCOME_JOB,
                                                                    Job.payload["welcome_code"].isnot(None)))
    return events, jobs


def test_url_verification_answers_the_decrypted_echostr(connected):
    corp, crypto, client = connected
    params = crypto.url_verification("echo-1234567890")
    response = client.get(f"/wecom/callback/{corp.slug}", params=params)
    assert response.status_code == 200 and response.text == "echo-1234567890"
    bad = dict(params, msg_signature="f" * 40)
    assert client.get(f"/wecom/callback/{corp.slug}", params=bad).status_code == 403
    assert client.get("/wecom/callback/no-such-corp", params=params).status_code == 404


def test_an_event_is_stored_and_its_processing_enqueued_once_however_often_it_arrives(connected):
    corp, crypto, client = connected
    before = counts(crypto)
    for _ in range(3):  # WeCom's retries: the same plaintext, encrypted afresh each time
        response = post(client, corp, crypto, add_event(crypto.receive_id))
        assert response.status_code == 200 and response.text == "success"
    events, jobs = counts(crypto)
    assert (events - before[0], jobs - before[1]) == (1, 1)
    with session_scope() as s:
        row = s.scalar(select(WecomInboxEvent).where(WecomInboxEvent.wecom_corp_id == crypto.receive_id))
        assert row.deliveries == 3 and row.processed_at is not None
        job = s.scalar(select(Job).where(Job.name == WELCOME_JOB, Job.corp_id == corp.id))
        assert job.queue == "welcome" and job.payload["inbox_event_id"] == row.id
        # The welcome code's deadline: 20 s after the add's CreateTime, not after the enqueue.
        assert job.deadline_at == dt.datetime.fromtimestamp(1764000000 + 20, dt.UTC)
        assert job.payload["welcome_code"] == "WELCOME1" and job.payload["state"] == "ch:ad-spring"
        assert job.payload["external_userid"] == "wmCUSTOMER0001"


def test_an_unknown_change_type_is_acknowledged_and_kept(connected):
    corp, crypto, client = connected
    plaintext = event_xml(crypto.receive_id, 1764000100, "change_external_contact", "a_new_change_type",
                          [("UserID", "zhangsan"), ("ExternalUserID", "wmCUSTOMER0002")])
    response = post(client, corp, crypto, plaintext)
    assert response.status_code == 200 and response.text == "success"
    settle()
    with session_scope() as s:
        (row,) = service.recent_events(s, corp_id=corp.id)  # what the WeCom connection page lists
        assert row.change_type == "a_new_change_type" and row.plaintext == plaintext


def test_simultaneous_deliveries_from_many_connections_store_each_event_once(connected):
    corp, crypto, client = connected
    from concurrent.futures import ThreadPoolExecutor

    bodies = [add_event(crypto.receive_id, ext=f"wmSIM{i:06d}", code=f"C{i}") for i in range(40)] * 3
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda p: post(client, corp, crypto, p).status_code, bodies))
    assert set(statuses) == {200}
    settle()
    with session_scope() as s:
        rows = s.scalars(select(WecomInboxEvent).where(WecomInboxEvent.wecom_corp_id == crypto.receive_id)).all()
        assert len(rows) == 40 and {r.deliveries for r in rows} == {3}
        jobs = s.scalar(select(func.count()).select_from(Job).where(Job.corp_id == corp.id, Job.name == WELCOME_JOB))
        assert jobs == 40


@pytest.mark.parametrize("case, status", [
    ("bad signature", 403),
    ("another key", 400),
    ("another corp's message", 403),
    ("malformed envelope", 400),
    ("not an event", 400),
    ("addressed to another corp", 400),
    ("oversized", 413),
    ("unknown corp", 404),
])
def test_refused_callbacks_store_nothing(connected, case, status):
    corp, crypto, client = connected
    before = counts(crypto)
    url = f"/wecom/callback/{corp.slug}"
    if case == "bad signature":
        response = post(client, corp, crypto, add_event(crypto.receive_id), tamper=True)
    elif case == "another key":  # the signature matches, the ciphertext does not decrypt
        stranger = WXBizMsgCrypt(TOKEN, generate_aes_key(), crypto.receive_id)
        response = post(client, corp, stranger, add_event(crypto.receive_id))
    elif case == "another corp's message":  # our key, but encrypted for another receive id
        stranger = WXBizMsgCrypt(TOKEN, crypto.test_aes_key, "wwanothercorp")
        response = post(client, corp, stranger, add_event(crypto.receive_id))
    elif case == "malformed envelope":
        signed = crypto.encrypt_callback(add_event(crypto.receive_id))
        response = client.post(url, params=signed.params, content=b"<xml><Encrypt>not closed")
    elif case == "not an event":
        response = post(client, corp, crypto, "<xml><ToUserName>x</ToUserName><MsgType>text</MsgType></xml>")
    elif case == "addressed to another corp":
        response = post(client, corp, crypto, add_event("wwsomebodyelse"))
    elif case == "oversized":
        signed = crypto.encrypt_callback(add_event(crypto.receive_id))
        response = client.post(url, params=signed.params, content=b"<xml>" + b" " * 300_000 + b"</xml>")
    else:
        signed = crypto.encrypt_callback(add_event(crypto.receive_id))
        response = client.post("/wecom/callback/nobody-here", params=signed.params, content=signed.body)
    assert response.status_code == status, response.text
    assert counts(crypto) == before


def test_missing_query_parameters_are_named(connected):
    corp, crypto, client = connected
    response = client.post(f"/wecom/callback/{corp.slug}", content=b"<xml/>", headers={"accept": "application/json"})
    assert response.status_code == 422
    assert "msg_signature" in response.text


def test_connection_settings_are_validated_and_secrets_encrypted(session):
    corp = make_corp(session)
    with pytest.raises(InvalidInput) as bad:
        service.configure_connection(session, corp_id=corp.id, actor="t", wecom_corp_id="ww123456", secret="s",
                                     token=TOKEN, aes_key="too-short")
    assert bad.value.field == "aes_key"
    with pytest.raises(InvalidInput) as bad:
        service.configure_connection(session, corp_id=corp.id, actor="t", wecom_corp_id="ww123456", secret="s",
                                     token="has space", aes_key=generate_aes_key())
    assert bad.value.field == "token"
    with pytest.raises(InvalidInput) as bad:
        service.configure_connection(session, corp_id=corp.id, actor="t", wecom_corp_id="ww123456",
                                     token=TOKEN, aes_key=generate_aes_key())
    assert bad.value.field == "secret"
    secret = "very-secret-" + uuid.uuid4().hex
    wecom_id = "ww" + uuid.uuid4().hex[:12]
    service.configure_connection(session, corp_id=corp.id, actor="t", wecom_corp_id=wecom_id, secret=secret,
                                 token=TOKEN, aes_key=generate_aes_key())
    row = session.get(WecomCorpConfig, corp.id)
    assert secret not in row.secret_encrypted and TOKEN not in row.token_encrypted
    # Leaving the secrets empty keeps them (a changed base URL needs the secret again: see tests/security).
    service.configure_connection(session, corp_id=corp.id, actor="t", base_url="https://qyapi.weixin.qq.com/cgi-bin",
                                 secret=secret)
    assert service.connection_view(session, corp_id=corp.id).base_url == "https://qyapi.weixin.qq.com/cgi-bin/"
    other = make_corp(session)
    with pytest.raises(Conflict) as taken:
        service.configure_connection(session, corp_id=other.id, actor="t", wecom_corp_id=wecom_id, secret="s",
                                     token=TOKEN, aes_key=generate_aes_key())
    assert taken.value.field == "wecom_corp_id"


def test_a_welcome_that_promises_returns_is_refused_naming_the_field(session):
    corp = make_corp(session)
    service.configure_connection(session, corp_id=corp.id, actor="t", wecom_corp_id="ww" + uuid.uuid4().hex[:12],
                                 secret="s", token=TOKEN, aes_key=generate_aes_key())
    with pytest.raises(InvalidInput) as refused:
        service.set_default_welcome(session, corp_id=corp.id, actor="t", enabled=True,
                                    text="欢迎您！我们的理财产品保本保息，稳赚不赔。")
    assert refused.value.field == "welcome_text"
    cfg = service.set_default_welcome(session, corp_id=corp.id, actor="t", enabled=True,
                                      text="您好，我是您的专属顾问，有任何问题随时找我。")
    assert cfg.welcome_enabled


def test_console_page_shows_the_callback_url_and_saves_settings(session):
    corp = make_corp(session)
    admin = console_user(session, corp)
    page = admin.get("/wecom")
    assert page.status_code == 200 and f"/wecom/callback/{corp.slug}" in page.text
    bad = admin.post("/wecom/connection", {"wecom_corp_id": "ww" + uuid.uuid4().hex[:10], "secret": "s",
                                           "token": TOKEN, "aes_key": "short"})
    assert bad.status_code == 422 and 'data-field="aes_key"' in bad.text
    ok = admin.post("/wecom/connection", {"wecom_corp_id": "ww" + uuid.uuid4().hex[:10], "secret": "s3cret",
                                          "token": TOKEN, "aes_key": generate_aes_key()})
    assert ok.status_code == 303
    page = admin.get("/wecom")
    assert "s3cret" not in page.text and 'data-testid="wecom-status"' in page.text
    advisor = console_user(session, corp, roles=("advisor",))
    assert advisor.get("/wecom").status_code == 403
