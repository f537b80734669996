"""Ingest from the WeCom emulator's archive feed: the poll job reads from the stored cursor through the
corp's connection, stores each message once, and consent events are recorded."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import pytest
from sqlalchemy import select

from siyu.compliance import archive, archive_jobs
from siyu.compliance.models import ArchiveAlert, ArchiveCursor, ArchiveMessage
from siyu.db import session_scope, utcnow
from siyu.jobs.models import Job
from siyu.jobs.registry import JobContext
from siyu.tenancy import service as tenancy
from siyu.wecom import service as wecom
from siyu.wecom.crypto import generate_aes_key
from siyu.wecom.emulator import EmulatorState, create_emulator_app
from siyu.wecom.emulator.server import ServerThread


@pytest.fixture(scope="module")
def emulator():
    state = EmulatorState(seed=7)
    server = ServerThread(create_emulator_app(state)).start()
    yield server
    server.stop()
    state.close()


@pytest.fixture
def wired(emulator, database_url):
    wecom_id = "ww" + uuid.uuid4().hex[:16]
    secret = "secret-" + uuid.uuid4().hex
    with session_scope() as s:
        corp = tenancy.create_corp(s, slug="arc-" + uuid.uuid4().hex[:8], name="存档测试银行")
        wecom.configure_connection(s, corp_id=corp.id, actor="test", wecom_corp_id=wecom_id, secret=secret,
                                   token="tok" + uuid.uuid4().hex[:8], aes_key=generate_aes_key(),
                                   base_url=emulator.base_url + "/cgi-bin/")
        corp_id = corp.id
    admin = httpx.Client(base_url=f"{emulator.base_url}/_emulator", timeout=10)
    created = admin.post("/corps", json={"corp_id": wecom_id, "secret": secret,
                                         "staff": [{"userid": "zhangsan", "name": "张三"}]})
    assert created.status_code == 201, created.text
    wm = admin.post(f"/corps/{wecom_id}/add_contact", json={"userid": "zhangsan"}).json()["external_userid"]
    # WeCom archives a customer's chats only once they agreed (the emulator's default, as WeCom's).
    admin.post(f"/corps/{wecom_id}/archive/consent", json={"external_userid": wm, "agree": True}).raise_for_status()
    yield corp_id, wecom_id, admin, wm
    admin.close()


def _ctx(corp_id: int, name: str = "compliance.archive_poll") -> JobContext:
    now = utcnow()
    return JobContext(id=1, name=name, attempt=1, max_attempts=3, queue="default", corp_id=corp_id, run_at=now,
                      enqueued_at=now, worker_id="test")


def _say(admin, wecom_id, sender, to, text):
    r = admin.post(f"/corps/{wecom_id}/messages", json={"from": sender, "to": [to], "text": text})
    assert r.status_code == 201, r.text


def test_poll_job_reads_the_feed_from_the_cursor(wired):
    corp_id, wecom_id, admin, wm = wired
    _say(admin, wecom_id, "zhangsan", wm, "这款理财保本保息，年化8%")
    _say(admin, wecom_id, wm, "zhangsan", "保本吗？")
    with session_scope() as s:
        archive_jobs.poll(s, {}, _ctx(corp_id))
    _say(admin, wecom_id, "zhangsan", wm, "明天给您寄资料")
    with session_scope() as s:
        result = archive.poll_feed(s, corp_id=corp_id, fetch=archive.http_fetcher(corp_id=corp_id), page=1)
        assert result.stored == 1 and result.seq == 3
    with session_scope() as s:
        archive_jobs.poll(s, {}, _ctx(corp_id))  # nothing new
        messages = s.scalars(select(ArchiveMessage).where(ArchiveMessage.corp_id == corp_id)
                             .order_by(ArchiveMessage.seq)).all()
        assert [m.seq for m in messages] == [1, 2, 3] and {m.source for m in messages} == {"feed"}
        assert messages[0].sender_is_staff and not messages[1].sender_is_staff
        alerts = s.scalars(select(ArchiveAlert).where(ArchiveAlert.corp_id == corp_id)).all()
        assert len(alerts) == 1 and alerts[0].severity == "block" and alerts[0].customer_userid == wm
        cursor = s.get(ArchiveCursor, corp_id)
        assert cursor.seq == 3 and cursor.last_error == "" and cursor.polled_at is not None


def test_a_reset_cursor_stores_nothing_twice(wired):
    corp_id, wecom_id, admin, wm = wired
    _say(admin, wecom_id, "zhangsan", wm, "您好")
    with session_scope() as s:
        archive_jobs.poll(s, {}, _ctx(corp_id))
    with session_scope() as s:
        s.get(ArchiveCursor, corp_id).seq = 0
    with session_scope() as s:
        result = archive.poll_feed(s, corp_id=corp_id, fetch=archive.http_fetcher(corp_id=corp_id))
        assert result.stored == 0 and result.duplicates == 1 and result.seq == 1


def test_an_unreachable_feed_is_recorded_and_polled_again_after_a_pause(database_url):
    with session_scope() as s:
        corp = tenancy.create_corp(s, slug="arc-" + uuid.uuid4().hex[:8], name="断线银行")
        wecom.configure_connection(s, corp_id=corp.id, actor="test", wecom_corp_id="ww" + uuid.uuid4().hex[:12],
                                   secret="s", token="tok1", aes_key=generate_aes_key(),
                                   base_url="http://127.0.0.1:9/cgi-bin/")
        corp_id = corp.id

    def broken(seq, limit):
        raise archive.FeedError("archive feed unreachable: ConnectError")

    with session_scope() as s, pytest.raises(archive.FeedError):
        archive.poll_feed(s, corp_id=corp_id, fetch=broken)
    with session_scope() as s:
        assert archive.poll_feed(s, corp_id=corp_id, fetch=lambda seq, limit: {"errcode": 0, "chatdata": []}).seq == 0
    # The job: WeCom is unreachable (nothing listens on port 9). Recorded on the cursor, no retry storm:
    # the every-minute round leaves the corp alone for a pause, then tries it again.
    with session_scope() as s:
        archive_jobs.poll(s, {}, _ctx(corp_id))
    with session_scope() as s:
        cursor = archive.get_cursor(s, corp_id=corp_id)
        assert "unreachable" in cursor.last_error or "token" in cursor.last_error

    def polls_queued() -> int:
        with session_scope() as s:
            archive_jobs.poll_all(s, {}, _ctx(None, "compliance.archive_poll_all"))
            return len(s.scalars(select(Job).where(Job.name == "compliance.archive_poll",
                                                   Job.corp_id == corp_id)).all())

    assert polls_queued() == 0
    with session_scope() as s:
        archive.get_cursor(s, corp_id=corp_id).polled_at = utcnow() - archive_jobs.FAILED_POLL_PAUSE - dt.timedelta(1)
    assert polls_queued() == 1
    with session_scope() as s:
        for job in s.scalars(select(Job).where(Job.name == "compliance.archive_poll")):
            s.delete(job)  # other tests count jobs


def test_poll_all_enqueues_one_poll_per_connected_corp(wired):
    corp_id = wired[0]
    with session_scope() as s:
        archive_jobs.poll_all(s, {}, _ctx(None, "compliance.archive_poll_all"))
        archive_jobs.poll_all(s, {}, _ctx(None, "compliance.archive_poll_all"))
        jobs = s.scalars(select(Job).where(Job.name == "compliance.archive_poll", Job.corp_id == corp_id)).all()
        assert len(jobs) == 1
        for job in s.scalars(select(Job).where(Job.name == "compliance.archive_poll")):
            s.delete(job)  # other tests count jobs


def test_consent_events_are_recorded(wired):
    corp_id, _, _, wm = wired
    with session_scope() as s:
        archive_jobs.record_consent(s, {"external_userid": wm, "userid": "zhangsan"}, _ctx(corp_id))
        archive_jobs.record_consent(s, {"external_userid": wm, "userid": "zhangsan"}, _ctx(corp_id))
        archive_jobs.record_consent(s, {}, _ctx(corp_id))
    with session_scope() as s:
        got = archive.consents(s, corp_id=corp_id, external_userids=[wm])
        assert got[wm].staff_userid == "zhangsan"
