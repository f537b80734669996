"""Console page 词库回归测试: the corp's labelled messages (imported, or added from a closed alert in one
click), a dictionary draft and what it changes on them, publishing it; roles; bad input."""

from __future__ import annotations

import io
import json
import uuid

from sqlalchemy import select

from siyu.compliance import archive, drafts, labelled
from siyu.compliance import dictionary as wording
from siyu.compliance.models import ArchiveAlert, LabelledMessage, WordingEntry
from siyu.compliance.review import review_text
from tenancy.factories import console_user, fast_argon2, make_corp  # noqa: F401

MS = 1_767_225_600_000

LINES = [
    {"id": "v1", "text": "这款理财保本保息，放心买", "label": "violation", "expected": "block",
     "category": "principal_guarantee"},
    {"id": "v2", "text": "鑫享专属福利：本周买满5万元送食用油一桶", "label": "violation", "expected": "block",
     "category": "purchase_incentive"},
    {"id": "v3", "text": "这个产品是懒人神器，闭着眼睛买就行", "label": "violation", "expected": "review",
     "category": "superlative"},
    {"id": "o1", "text": "理财非存款，产品有风险，投资须谨慎", "label": "ok", "expected": "pass"},
    {"id": "o2", "text": "您好，懒人神器这个说法我们不用，产品请看说明书", "label": "ok", "expected": "pass"},
]


def _jsonl(rows) -> bytes:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode()


def _alert(session, corp, text):
    record = {"msgid": uuid.uuid4().hex, "from": "zhangsan", "tolist": ["wmCustomer0001"], "msgtime": MS,
              "msgtype": "text", "text": {"content": text}}
    archive.ingest_records(session, corp_id=corp.id, records=[archive.parse_record(record)], source="file")
    return session.scalars(select(ArchiveAlert).where(ArchiveAlert.corp_id == corp.id)
                           .order_by(ArchiveAlert.id.desc())).first()


def test_import_draft_comparison_and_publish(session, corp):
    officer = console_user(session, corp, roles=("compliance",), name="合规李")
    empty = officer.get("/compliance/wording-tests")
    assert empty.status_code == 200 and "词库回归测试" in empty.text and 'data-testid="no-labelled"' in empty.text
    up = officer.post("/compliance/wording-tests/import",
                      files={"file": ("set.jsonl", io.BytesIO(_jsonl(LINES)), "application/json")})
    assert up.status_code == 303
    page = officer.get("/compliance/wording-tests")
    assert 'data-testid="count-violation"' in page.text and labelled.counts(session, corp_id=corp.id) == {
        "violation": 3, "ok": 2}
    assert 'data-testid="no-changes"' in page.text  # no draft: nothing changes
    # A draft that adds a phrase: one new hit agrees with its label (v3), one does not (o2 talks about
    # the phrase without using it): what the officer must see before publishing.
    assert officer.post("/compliance/wording-tests/draft", {
        "action": "add", "phrase": "懒人神器", "category": "superlative", "severity": "review",
        "rule": "《广告法》第九条"}).status_code == 303
    # ... and one that takes a phrase out: 保本保息 is an installation entry, so the corp gets an "allow"
    # entry for it, which also masks the 保本 inside it: v1 drops from block to review (放心买 stays).
    removed = officer.post("/compliance/wording-tests/draft", {"action": "remove", "phrase": "保本保息"})
    assert removed.status_code == 303
    reg = drafts.regression(session, corp_id=corp.id)
    kinds = {c.id: (c.kind, c.good) for c in reg.changes}
    assert kinds["v3"] == ("new_hit", True)
    assert kinds["o2"] == ("new_hit", False)
    assert kinds["v1"] == ("severity", True)
    assert reg.after.total.recall > reg.before.total.recall
    page = officer.get("/compliance/wording-tests")
    assert 'data-kind="new_hit" data-ref="v3"' in page.text and "闭着眼睛买就行" in page.text
    assert 'data-kind="new_hit" data-ref="o2"' in page.text and 'class="disagree"' in page.text
    # The dictionary in force has not changed yet.
    assert review_text("懒人神器", dictionary=wording.load_dictionary(session, corp_id=corp.id)).verdict == "pass"
    assert officer.post("/compliance/wording-tests/draft/publish", {}).status_code == 303
    assert drafts.edits(session, corp_id=corp.id) == []
    current = wording.load_dictionary(session, corp_id=corp.id)
    assert review_text("懒人神器", dictionary=current).verdict == "review"
    # 保本保息 was an installation entry: the corp got its own allow entry for it.
    own = session.scalar(select(WordingEntry).where(WordingEntry.corp_id == corp.id, WordingEntry.phrase == "保本保息"))
    assert own is not None and own.severity == "allow"
    # What was published is what the draft showed.
    assert review_text(LINES[0]["text"], dictionary=current).verdict == "review"
    assert drafts.regression(session, corp_id=corp.id).changes == []


def test_bad_input_is_named_and_nothing_is_stored(session, corp):
    officer = console_user(session, corp, roles=("compliance",))
    bad = _jsonl(LINES[:2]) + b'\n{"id": "x", "text": "hi", "label": "maybe"}\n'
    r = officer.post("/compliance/wording-tests/import", files={"file": ("set.jsonl", io.BytesIO(bad), "text/plain")})
    assert r.status_code == 422 and 'data-field="file"' in r.text and "label" in r.text
    assert labelled.counts(session, corp_id=corp.id) == {"violation": 0, "ok": 0}
    r = officer.post("/compliance/wording-tests/draft", {"action": "add", "phrase": " ", "category": "superlative",
                                                         "severity": "review", "rule": "x"})
    assert r.status_code == 422
    r = officer.post("/compliance/wording-tests/draft", {"action": "remove", "phrase": "从未听说的词"})
    assert r.status_code == 422 and 'data-field="phrase"' in r.text
    assert officer.post("/compliance/wording-tests/draft/publish", {}).status_code == 409
    assert officer.post("/compliance/wording-tests/lexicons", {"lexicons": ["bank", "casino"]}).status_code == 422


def test_one_click_from_an_alert(session, corp):
    alert = _alert(session, corp, "这是第一次给您打电话，稳赚不赔")
    officer = console_user(session, corp, roles=("compliance",))
    detail = officer.get(f"/compliance/alerts/{alert.id}")
    assert 'data-testid="label-form"' not in detail.text  # an open alert is not labelled yet
    r = officer.post(f"/compliance/alerts/{alert.id}/label", {})
    assert r.status_code == 409, r.text[-3000:]
    assert officer.post(f"/compliance/alerts/{alert.id}/false-positive", {"note": "误报"}).status_code == 303
    assert 'data-testid="label-form"' in officer.get(f"/compliance/alerts/{alert.id}").text
    assert officer.post(f"/compliance/alerts/{alert.id}/label", {}).status_code == 303
    assert officer.post(f"/compliance/alerts/{alert.id}/label", {}).status_code == 303  # twice: one row
    rows = session.scalars(select(LabelledMessage).where(LabelledMessage.corp_id == corp.id)).all()
    assert [(r.ref, r.label, r.text, r.source) for r in rows] == [
        (f"alert:{alert.id}", "ok", "这是第一次给您打电话，稳赚不赔", "alert")]
    assert 'data-testid="labelled-done"' in officer.get(f"/compliance/alerts/{alert.id}").text
    other = console_user(session, make_corp(session), roles=("compliance",))
    assert other.post(f"/compliance/alerts/{alert.id}/label", {}).status_code == 404


def test_roles_and_lexicons(session, corp):
    labelled.import_lines(session, corp_id=corp.id, actor="test", lines=[_jsonl(LINES[:1])])
    auditor = console_user(session, corp, roles=("auditor",))
    page = auditor.get("/compliance/wording-tests")
    assert page.status_code == 200 and 'data-testid="draft-form"' not in page.text
    assert "保本保息" not in page.text  # message texts: compliance officers only
    assert auditor.post("/compliance/wording-tests/draft", {"action": "remove", "phrase": "保本"}).status_code == 403
    assert console_user(session, corp, roles=("operations",)).get("/compliance/wording-tests").status_code == 403
    admin = console_user(session, corp, roles=("administrator",))
    assert admin.post("/compliance/wording-tests/lexicons", {"lexicons": ["bank", "fund"]}).status_code == 303
    assert wording.corp_lexicons(session, corp_id=corp.id) == frozenset({"bank", "fund"})
    # A consumer-lending promise is a rule of the bank and consumer-finance lexicons; private-fund
    # promotion belongs to bank, broker and fund — an insurer that switched only its own lexicon has neither.
    assert admin.post("/compliance/wording-tests/lexicons", {"lexicons": ["insurance"]}).status_code == 303
    text = "征信不好也能贷，秒批"
    assert review_text(text).verdict == "block"
    assert review_text(text, lexicons=wording.corp_lexicons(session, corp_id=corp.id)).verdict == "pass"
