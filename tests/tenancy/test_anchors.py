"""Audit anchors: the newest entries of a chain cut from its end, which the chain alone cannot see,
are found against a signed anchor of its head; forged anchors are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from siyu.db import make_engine
from siyu.jobs import registry
from siyu.tenancy import anchors, audit, service
from siyu.tenancy.models import AuditEntry
from tenancy.factories import make_corp

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def fill(session, corp_id: int, n: int = 5) -> None:
    for i in range(n):
        audit.record(session, corp_id=corp_id, actor="system", action="test.event", detail={"i": i})


@pytest.fixture
def corp(session):
    corp = make_corp(session)
    fill(session, corp.id)
    return corp


def check(session, tmp_path, key=KEY):
    return anchors.verify_anchors(session, directory=tmp_path, public_key=key.public_key())


def test_a_clean_chain_passes_its_anchor(session, corp, tmp_path):
    path = anchors.write_anchors(session, directory=tmp_path, key=KEY)
    assert path.name.startswith("audit-anchors-") and path.suffix == ".jsonl"
    fill(session, corp.id, 3)  # entries after the anchor are fine
    report = check(session, tmp_path)
    assert report["ok"], report
    assert report["anchors_checked"] >= 1 and report["problems"] == []


def test_entries_cut_from_the_end_are_found_only_with_the_anchor(session, corp, tmp_path):
    anchors.write_anchors(session, directory=tmp_path, key=KEY)
    last = session.scalar(select(AuditEntry.seq).where(AuditEntry.chain_id == corp.id)
                          .order_by(AuditEntry.seq.desc()).limit(1))
    session.execute(delete(AuditEntry).where(AuditEntry.chain_id == corp.id, AuditEntry.seq >= last - 1))
    # the chain still links up: cutting the tail is invisible to it
    assert audit.verify_chain(session, chain_id=corp.id)["ok"]
    report = check(session, tmp_path)
    assert not report["ok"]
    [problem] = [p for p in report["problems"] if p.get("chain_id") == corp.id]
    assert problem["problem"].startswith("entries cut") and problem["seq"] == last


def test_a_rewritten_anchored_entry_is_found(session, corp, tmp_path):
    anchors.write_anchors(session, directory=tmp_path, key=KEY)
    head = session.scalars(select(AuditEntry).where(AuditEntry.chain_id == corp.id)
                           .order_by(AuditEntry.seq.desc()).limit(1)).one()
    # a consistent rewrite of the head: new content with its hash recomputed
    session.execute(update(AuditEntry).where(AuditEntry.id == head.id).values(detail={"i": "rewritten"}))
    session.expire_all()
    head = session.get(AuditEntry, head.id)
    session.execute(update(AuditEntry).where(AuditEntry.id == head.id).values(hash=audit._entry_hash(head)))
    assert audit.verify_chain(session, chain_id=corp.id)["ok"]
    report = check(session, tmp_path)
    assert [p["problem"] for p in report["problems"] if p.get("chain_id") == corp.id] == ["anchored entry rewritten"]


def test_a_forged_or_altered_anchor_is_refused(session, corp, tmp_path):
    path = anchors.write_anchors(session, directory=tmp_path, key=KEY)
    lines = path.read_text().splitlines()
    altered = json.loads(lines[-1])
    altered["head_seq"] -= 1  # claim a shorter chain, to hide a cut
    forged = anchors.sign_line(anchors.Anchor(chain_id=corp.id, head_seq=1, head_hash="0" * 64, entries=1,
                                              at=anchors.utcnow()), Ed25519PrivateKey.generate())
    path.write_text("\n".join([*lines[:-1], json.dumps(altered), forged, "{not json"]) + "\n")
    report = check(session, tmp_path)
    problems = [p["problem"] for p in report["problems"]]
    assert problems.count("anchor unreadable: signature does not match (forged or altered, or another key)") == 2
    assert "anchor unreadable: not JSON" in problems
    assert all(p["file"] == path.name for p in report["problems"])


def test_no_anchors_is_said(session, corp, tmp_path):
    report = check(session, tmp_path / "empty")
    assert not report["ok"] and report["problems"][0]["problem"].startswith("no anchors found")


def test_anchors_of_a_day_accumulate(session, corp, tmp_path):
    first = anchors.write_anchors(session, directory=tmp_path, key=KEY)
    n = len(first.read_text().splitlines())
    fill(session, corp.id, 1)
    second = anchors.write_anchors(session, directory=tmp_path, key=KEY)
    assert second == first and len(second.read_text().splitlines()) == 2 * n
    assert not list(tmp_path.glob("*.tmp"))
    assert check(session, tmp_path)["ok"]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                 st.dictionaries(st.sampled_from([*anchors.FIELDS, "sig", "x"]),
                                 st.one_of(st.integers(), st.text(max_size=20), st.none())).map(json.dumps)))
def test_any_line_that_is_not_a_signed_anchor_is_refused_with_a_reason(line):
    with pytest.raises(anchors.AnchorError) as exc:
        anchors.parse_line(line, KEY.public_key())
    assert str(exc.value)


def test_the_daily_anchor_job_is_scheduled():
    registry.ensure_loaded()
    spec = {s.key: s for s in registry.builtin_schedules()}["jobs.audit_anchor"]
    assert spec.timezone == "Asia/Shanghai" and registry.get_handler(spec.name) is not None


# --- the CLI -------------------------------------------------------------------------------------------


def _siyu(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "siyu.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_cli_anchor_then_verify_finds_a_cut_tail(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env |= {"SIYU_DATABASE_URL": url, "SIYU_DATA_DIR": str(tmp_path / "var"), "SIYU_LOG_LEVEL": "WARNING",
            "SIYU_AUDIT_ANCHOR_DIR": str(tmp_path / "anchors")}
    assert _siyu(env, "db", "upgrade").returncode == 0
    engine = make_engine(url)
    try:
        with Session(engine) as s, s.begin():
            corp = service.create_corp(s, slug="anchor-bank", name="锚点银行")
            fill(s, corp.id, 4)
            corp_id = corp.id
        written = _siyu(env, "audit", "anchor")
        assert written.returncode == 0, written.stderr
        public = _siyu(env, "audit", "anchor-key").stdout.strip()
        assert len(public) == 64

        clean = _siyu(env, "audit", "verify", "--anchors", str(tmp_path / "anchors"), "--public-key", public)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert json.loads(clean.stdout)["anchors_checked"] >= 1

        with Session(engine) as s, s.begin():
            s.execute(delete(AuditEntry).where(AuditEntry.chain_id == corp_id, AuditEntry.seq >= 4))
        assert _siyu(env, "audit", "verify").returncode == 0  # the chain alone cannot tell
        cut = _siyu(env, "audit", "verify", "--anchors", str(tmp_path / "anchors"))
        assert cut.returncode == 1
        assert any(p.get("chain_id") == corp_id and p["problem"].startswith("entries cut")
                   for p in json.loads(cut.stdout)["problems"])
        other_key = anchors.public_key_hex(Ed25519PrivateKey.generate())
        wrong = _siyu(env, "audit", "verify", "--anchors", str(tmp_path / "anchors"), "--public-key", other_key)
        assert wrong.returncode == 1
        bad = _siyu(env, "audit", "verify", "--anchors", str(tmp_path / "anchors"), "--public-key", "zz")
        assert bad.returncode == 2 and "--public-key" in bad.stderr
    finally:
        engine.dispose()
