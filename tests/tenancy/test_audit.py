"""The audit log: an append-only hash chain per corp, its checks, and `siyu audit verify`."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from siyu.db import make_engine
from siyu.tenancy import audit, service
from siyu.tenancy.models import AuditEntry
from tenancy.factories import make_corp, make_staff, principal_of


@pytest.fixture
def corp(session):
    return make_corp(session)


def fill(session, corp_id: int, n: int = 5) -> list[AuditEntry]:
    return [
        audit.record(session, corp_id=corp_id, actor="system", action="test.event", target_type="thing",
                     target_id=i, detail={"i": i, "名字": "张伟"}, ip="127.0.0.1")
        for i in range(n)
    ]


def chain(session, corp_id: int) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).where(AuditEntry.chain_id == corp_id).order_by(AuditEntry.seq)))


def test_record_links_each_entry_to_the_previous(session, corp):
    entries = chain(session, corp.id) + fill(session, corp.id)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert entries[0].prev_hash == audit.GENESIS
    for prev, entry in zip(entries, entries[1:], strict=False):
        assert entry.prev_hash == prev.hash and len(entry.hash) == 64
    assert audit.verify_chain(session, chain_id=corp.id) == {
        "ok": True, "chains": 1, "entries_checked": len(entries), "problems": []}


def test_record_keeps_who_did_it(session, corp):
    admin = make_staff(session, corp, roles=["administrator"], password=None)
    entry = audit.record(session, corp_id=corp.id, actor=principal_of(admin), action="x.y", ip="10.1.2.3")
    assert (entry.actor, entry.actor_staff_id, entry.ip) == (admin.login, admin.id, "10.1.2.3")
    installation = audit.record(session, corp_id=None, actor="cli", action="install.checked")
    assert installation.chain_id == 0


def test_hashes_survive_a_round_trip_through_the_database(session, corp):
    fill(session, corp.id)
    session.expire_all()
    assert audit.verify_chain(session, chain_id=corp.id)["ok"]
    assert audit.verify_chain(session)["ok"]


def test_a_changed_entry_is_found(session, corp):
    entries = fill(session, corp.id)
    session.execute(update(AuditEntry).where(AuditEntry.id == entries[2].id).values(detail={"i": 99}))
    report = audit.verify_chain(session, chain_id=corp.id)
    assert not report["ok"]
    assert report["problems"] == [{"chain_id": corp.id, "seq": entries[2].seq, "problem": "entry changed"}]


@pytest.mark.parametrize("column", ["actor", "action", "target_id", "ip"])
def test_any_changed_column_is_found(session, corp, column):
    entries = fill(session, corp.id)
    session.execute(update(AuditEntry).where(AuditEntry.id == entries[1].id).values({column: "forged"}))
    assert audit.verify_chain(session, chain_id=corp.id)["problems"][0]["problem"] == "entry changed"


def test_a_changed_time_is_found(session, corp):
    entries = fill(session, corp.id)
    session.execute(update(AuditEntry).where(AuditEntry.id == entries[1].id)
                    .values(at=entries[1].at - dt.timedelta(hours=1)))
    assert audit.verify_chain(session, chain_id=corp.id)["problems"][0]["problem"] == "entry changed"


def test_a_deleted_entry_in_the_middle_is_found(session, corp):
    entries = fill(session, corp.id)
    session.execute(delete(AuditEntry).where(AuditEntry.id == entries[2].id))
    report = audit.verify_chain(session, chain_id=corp.id)
    assert report["problems"] == [{"chain_id": corp.id, "seq": entries[2].seq, "problem": "missing entry"}]


def test_a_deleted_first_entry_is_found(session, corp):
    first = chain(session, corp.id)[0]
    fill(session, corp.id, 2)
    session.execute(delete(AuditEntry).where(AuditEntry.id == first.id))
    assert audit.verify_chain(session, chain_id=corp.id)["problems"][0] == {
        "chain_id": corp.id, "seq": 1, "problem": "missing entry"}


def test_a_broken_link_is_found(session, corp):
    entries = fill(session, corp.id)
    victim = entries[3]
    # forge the link and make the entry's own hash consistent with it: only the link is wrong
    victim.prev_hash = "f" * 64
    victim.hash = audit._entry_hash(victim)
    session.flush()
    report = audit.verify_chain(session, chain_id=corp.id)
    assert report["problems"] == [{"chain_id": corp.id, "seq": victim.seq, "problem": "link broken"}]


def test_a_rewritten_entry_with_a_recomputed_hash_breaks_the_next_link(session, corp):
    entries = fill(session, corp.id)
    victim = entries[1]
    victim.detail = {"i": "rewritten"}
    victim.hash = audit._entry_hash(victim)
    session.flush()
    report = audit.verify_chain(session, chain_id=corp.id)
    assert report["problems"] == [{"chain_id": corp.id, "seq": entries[2].seq, "problem": "link broken"}]


def test_chains_are_checked_separately(session, corp):
    other = make_corp(session)
    fill(session, other.id)
    entries = fill(session, corp.id)
    session.execute(update(AuditEntry).where(AuditEntry.id == entries[0].id).values(action="forged"))
    assert audit.verify_chain(session, chain_id=other.id)["ok"]
    report = audit.verify_chain(session)
    assert [p["chain_id"] for p in report["problems"]] == [corp.id]


def test_page_entries_newest_first_with_filter(session, corp):
    fill(session, corp.id, 7)
    audit.record(session, corp_id=corp.id, actor="system", action="other.event")
    first = audit.page_entries(session, corp_id=corp.id, action="test.event", limit=3)
    assert [e.detail["i"] for e in first.entries] == [6, 5, 4]
    second = audit.page_entries(session, corp_id=corp.id, action="test.event", limit=3,
                                before_seq=first.next_before_seq)
    assert [e.detail["i"] for e in second.entries] == [3, 2, 1]
    last = audit.page_entries(session, corp_id=corp.id, action="test.event", limit=3,
                              before_seq=second.next_before_seq)
    assert [e.detail["i"] for e in last.entries] == [0] and last.next_before_seq is None
    assert audit.page_entries(session, corp_id=corp.id, limit=1).entries[0].action == "other.event"
    assert audit.distinct_actions(session, corp_id=corp.id) == ["corp.created", "other.event", "test.event"]
    assert audit.count_entries(session, corp_id=corp.id) == 9


@pytest.mark.parametrize("action", ["no such", "x\x00", "A" * 81])
def test_an_impossible_action_filter_matches_nothing(session, corp, action):
    assert audit.list_entries(session, corp_id=corp.id, action=action) == []


@pytest.mark.parametrize("before_seq", [0, -5, 2**70])
def test_odd_page_cursors_are_harmless(session, corp, before_seq):
    fill(session, corp.id, 2)
    page = audit.page_entries(session, corp_id=corp.id, before_seq=before_seq)
    assert len(page.entries) == (3 if before_seq > 0 else 0)


def test_daily_counts_use_the_china_calendar(session, corp):
    a, b = fill(session, corp.id, 2)
    today = dt.date(2025, 3, 10)
    # 2025-03-09 17:30 UTC is already 2025-03-10 01:30 in Shanghai
    a.at = dt.datetime(2025, 3, 9, 17, 30, tzinfo=dt.UTC)
    b.at = dt.datetime(2025, 3, 9, 15, 30, tzinfo=dt.UTC)
    session.flush()
    days = audit.daily_counts(session, corp_id=corp.id, actions=["test.event"], days=3, today=today)
    assert days == {dt.date(2025, 3, 8): {}, dt.date(2025, 3, 9): {"test.event": 1},
                    dt.date(2025, 3, 10): {"test.event": 1}}


def test_service_changes_are_audited_in_the_same_transaction(session, corp):
    admin = make_staff(session, corp, roles=["administrator"], password=None)
    staff = make_staff(session, corp, password=None)
    savepoint = session.begin_nested()
    service.set_roles(session, corp_id=corp.id, staff_id=staff.id, roles=["auditor"], actor=principal_of(admin))
    savepoint.rollback()
    assert audit.list_entries(session, corp_id=corp.id, action="staff.roles_changed") == []
    assert audit.verify_chain(session, chain_id=corp.id)["ok"]


# --- the CLI -------------------------------------------------------------------------------------------


def _siyu(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "siyu.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_cli_audit_verify_exits_1_on_tampering(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env |= {"SIYU_DATABASE_URL": url, "SIYU_DATA_DIR": str(tmp_path / "var"), "SIYU_LOG_LEVEL": "WARNING"}
    upgraded = _siyu(env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr

    engine = make_engine(url)
    try:
        with Session(engine) as s, s.begin():
            corp = service.create_corp(s, slug="cli-bank", name="CLI 银行")
            for i in range(4):
                audit.record(s, corp_id=corp.id, actor="system", action="test.event", detail={"i": i})
            corp_id = corp.id

        clean = _siyu(env, "audit", "verify")
        assert clean.returncode == 0, clean.stdout + clean.stderr
        report = json.loads(clean.stdout)
        assert report["ok"] is True and report["entries_checked"] == 5

        with Session(engine) as s, s.begin():
            s.execute(update(AuditEntry).where(AuditEntry.chain_id == corp_id, AuditEntry.seq == 3)
                      .values(detail={"i": "tampered"}))
        tampered = _siyu(env, "audit", "verify")
        assert tampered.returncode == 1, tampered.stdout + tampered.stderr
        assert json.loads(tampered.stdout)["problems"] == [{"chain_id": corp_id, "seq": 3, "problem": "entry changed"}]
    finally:
        engine.dispose()
