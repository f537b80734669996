"""REST API of chat-archive alerts: `alerts:read` lists and reads them without the chat's words,
`alerts:evidence` adds the text (audited), `alerts:write` resolves or marks false positives; filters,
bad input and another corp's alert."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from siyu.compliance import archive
from siyu.compliance.models import ArchiveAlert
from siyu.tenancy import audit
from tenancy.factories import api_client, fast_argon2, make_corp  # noqa: F401

MS = 1_767_225_600_000  # 2026-01-01 08:00 Asia/Shanghai


def _alert(session, corp, text="这款理财保本保息，稳赚不赔", sender="zhangsan"):
    record = {"msgid": uuid.uuid4().hex, "from": sender, "tolist": ["wmCustomer0001"], "msgtime": MS,
              "msgtype": "text", "text": {"content": text}}
    archive.ingest_records(session, corp_id=corp.id, records=[archive.parse_record(record)], source="file")
    return session.scalars(select(ArchiveAlert).where(ArchiveAlert.corp_id == corp.id)
                           .order_by(ArchiveAlert.id.desc())).first()


def test_read_scope_lists_and_reads_alerts_without_the_text(session, corp):
    alert = _alert(session, corp)
    _alert(session, corp, sender="lisi")
    client, _ = api_client(session, corp, scopes=("alerts:read",))
    listed = client.get("/api/v1/compliance/alerts", params={"advisor": "zhangsan", "status": "open",
                                                             "severity": "block", "since": "2026-01-01",
                                                             "until": "2026-01-01"})
    assert listed.status_code == 200
    assert [a["id"] for a in listed.json()["items"]] == [alert.id]
    assert client.get("/api/v1/compliance/alerts", params={"since": "2026-01-02"}).json()["items"] == []
    one = client.get(f"/api/v1/compliance/alerts/{alert.id}").json()
    assert one["severity"] == "block" and one["findings"] and one["evidence_excerpt"] is None
    assert "保本保息" not in str(one), "no chat words without alerts:evidence"
    assert client.post(f"/api/v1/compliance/alerts/{alert.id}/resolve", json={"note": "x"}).status_code == 403


def test_evidence_scope_shows_the_text_and_is_audited(session, corp):
    alert = _alert(session, corp)
    client, _ = api_client(session, corp, scopes=("alerts:read", "alerts:evidence"))
    one = client.get(f"/api/v1/compliance/alerts/{alert.id}").json()
    assert "保本保息" in one["evidence_excerpt"] and one["message_text"] == "这款理财保本保息，稳赚不赔"
    entries = audit.list_entries(session, corp_id=corp.id, limit=20)
    assert any(e.action == "archive_alert.evidence_read" and e.target_id == str(alert.id) for e in entries)


def test_write_scope_resolves_and_marks_false_positives(session, corp):
    first, second = _alert(session, corp), _alert(session, corp, text="稳赚不赔的机会")
    client, _ = api_client(session, corp, scopes=("alerts:read", "alerts:write"))
    missing = client.post(f"/api/v1/compliance/alerts/{first.id}/resolve", json={"note": "  "})
    assert missing.status_code == 422 and missing.json()["field"] == "note"
    done = client.post(f"/api/v1/compliance/alerts/{first.id}/resolve", json={"note": "已约谈"})
    assert done.status_code == 200 and done.json()["status"] == "resolved"
    assert client.post(f"/api/v1/compliance/alerts/{first.id}/false-positive", json={}).status_code == 409
    fp = client.post(f"/api/v1/compliance/alerts/{second.id}/false-positive", json={"note": "误报"})
    assert fp.status_code == 200 and fp.json()["status"] == "false_positive"
    assert [c.phrase for c in archive.false_positive_counts(session, corp_id=corp.id)] == ["稳赚不赔"]


def test_bad_filters_and_another_corps_alert(session, corp):
    other = make_corp(session, name="别家银行")
    theirs = _alert(session, other)
    client, _ = api_client(session, corp, scopes=("alerts:read", "alerts:write"))
    assert client.get(f"/api/v1/compliance/alerts/{theirs.id}").status_code == 404
    assert client.post(f"/api/v1/compliance/alerts/{theirs.id}/resolve", json={"note": "x"}).status_code == 404
    session.refresh(theirs)
    assert theirs.status == "open"
    bad = client.get("/api/v1/compliance/alerts", params={"since": "2026-02-01", "until": "2026-01-01"})
    assert bad.status_code == 422 and bad.json()["field"] == "since"
    assert client.get("/api/v1/compliance/alerts", params={"status": "closed"}).status_code == 422


def test_dates_out_of_range_are_refused(session, corp):
    client, _ = api_client(session, corp, scopes=("alerts:read",))
    bad = client.get("/api/v1/compliance/alerts", params={"since": "0001-01-01"})
    assert bad.status_code == 422 and bad.json()["field"] == "since"
