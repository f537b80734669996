"""The wording dictionary service: entries per corp over the installation's, versions, history, audit."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from siyu.compliance import dictionary as svc
from siyu.compliance.review import review_text
from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.tenancy.models import AuditEntry
from siyu.tenancy.principal import Principal

RULE = "本机构营销内容管理规定"


def add(db, corp, phrase, severity, *, actor="system", category="firm"):
    return svc.add_entry(db, corp_id=corp.id, actor=actor, category=category, phrase=phrase, severity=severity,
                         rule=RULE)


def officer(corp):
    return Principal(corp_id=corp.id, kind="staff", label="合规张三", staff_id=None, roles=frozenset({"compliance"}))


def audit_actions(db, chain_id):
    return list(db.scalars(select(AuditEntry.action).where(AuditEntry.chain_id == chain_id).order_by(AuditEntry.seq)))


def test_add_edit_deactivate_with_history_versions_and_audit(db, corp):
    who = officer(corp)
    e = add(db, corp, "金葵花专享", "review", actor=who)
    assert e.phrase_key == "金葵花专享" and e.is_active
    assert svc.dictionary_versions(db, corp_id=corp.id) == (0, 1)

    svc.edit_entry(db, corp_id=corp.id, actor=who, entry_id=e.id, severity="block", notes="升级为禁止")
    svc.deactivate_entry(db, corp_id=corp.id, actor=who, entry_id=e.id, reason="活动结束")
    svc.reactivate_entry(db, corp_id=corp.id, actor=who, entry_id=e.id)
    assert svc.dictionary_versions(db, corp_id=corp.id) == (0, 4)

    history = svc.entry_history(db, corp_id=corp.id, entry_id=e.id)
    assert [(h.action, h.version, h.severity, h.is_active) for h in history] == [
        ("created", 1, "review", True), ("edited", 2, "block", True),
        ("deactivated", 3, "block", False), ("reactivated", 4, "block", True),
    ]
    assert history[0].actor == "合规张三"
    assert audit_actions(db, corp.id)[-4:] == [
        "wording_entry.created", "wording_entry.edited", "wording_entry.deactivated", "wording_entry.reactivated"
    ]
    edited = db.scalars(select(AuditEntry).where(AuditEntry.chain_id == corp.id,
                                                 AuditEntry.action == "wording_entry.edited")).one()
    assert edited.detail["changes"]["severity"] == ["review", "block"]


def test_an_edit_that_changes_nothing_is_not_a_version(db, corp):
    e = add(db, corp, "内部价", "review", actor="system")
    svc.edit_entry(db, corp_id=corp.id, actor="system", entry_id=e.id, severity="review")
    svc.deactivate_entry(db, corp_id=corp.id, actor="system", entry_id=e.id)
    svc.deactivate_entry(db, corp_id=corp.id, actor="system", entry_id=e.id)
    assert svc.dictionary_versions(db, corp_id=corp.id) == (0, 2)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"category": "nonsense"}, "category"),
        ({"severity": "maybe"}, "severity"),
        ({"phrase": ""}, "phrase"),
        ({"phrase": "！！ 。。"}, "phrase"),
        ({"phrase": "x" * 101}, "phrase"),
        ({"rule": ""}, "rule"),
    ],
)
def test_bad_input_names_the_field(db, corp, kwargs, field):
    args = {"category": "firm", "phrase": "好产品", "severity": "review", "rule": RULE, **kwargs}
    with pytest.raises(InvalidInput) as exc:
        svc.add_entry(db, corp_id=corp.id, actor="system", **args)
    assert exc.value.field == field


def test_the_same_phrase_twice_in_one_scope_conflicts(db, corp):
    add(db, corp, "稳稳的幸福", "review", actor="system")
    with pytest.raises(Conflict):
        # Same normalised form: traditional characters, full width and spaces do not make it new.
        svc.add_entry(db, corp_id=corp.id, actor="system", category="firm", phrase="穩穩的 幸福", severity="block",
                      rule=RULE)


def test_corps_do_not_see_each_others_entries(db, corp):
    from siyu.tenancy import service

    other = service.create_corp(db, slug=f"{corp.slug}-b", name="另一家")
    e = add(db, corp, "独门秘籍", "block", actor="system")
    with pytest.raises(NotFound):
        svc.edit_entry(db, corp_id=other.id, actor="system", entry_id=e.id, severity="review")
    with pytest.raises(NotFound):
        svc.deactivate_entry(db, corp_id=None, actor="system", entry_id=e.id)
    assert svc.list_entries(db, corp_id=other.id) == []
    assert review_text("独门秘籍", dictionary=svc.load_dictionary(db, corp_id=other.id)).verdict == "pass"
    assert review_text("独门秘籍", dictionary=svc.load_dictionary(db, corp_id=corp.id)).verdict == "block"


def test_load_dictionary_layers_corp_over_installation_and_follows_changes(db, corp):
    d0 = svc.load_dictionary(db, corp_id=corp.id)
    assert d0 is svc.load_dictionary(db, corp_id=corp.id)  # cached while nothing changed
    assert review_text("全市第一", dictionary=d0).verdict == "review"  # the package seed

    e = svc.add_entry(db, corp_id=corp.id, actor="system", category="superlative", phrase="第一", severity="block",
                      rule=RULE)
    d1 = svc.load_dictionary(db, corp_id=corp.id)
    assert d1 is not d0
    assert review_text("全市第一", dictionary=d1).verdict == "block"

    svc.add_entry(db, corp_id=corp.id, actor="system", category="disclosure", phrase="第一创业", severity="allow",
                  rule="机构名称")
    assert review_text("第一创业证券", dictionary=svc.load_dictionary(db, corp_id=corp.id)).verdict == "pass"

    svc.deactivate_entry(db, corp_id=corp.id, actor="system", entry_id=e.id)
    assert review_text("全市第一", dictionary=svc.load_dictionary(db, corp_id=corp.id)).verdict == "review"


def test_installation_seed_sync_and_edits(db, corp):
    result = svc.sync_installation_seed(db)
    assert result["added"] > 100
    assert svc.sync_installation_seed(db)["added"] == 0  # idempotent
    assert "wording_entry.seeded" in audit_actions(db, 0)

    entry = next(e for e in svc.list_entries(db, corp_id=None) if e.phrase == "保本")
    assert entry.corp_id is None
    svc.edit_entry(db, corp_id=None, actor="installation-admin", entry_id=entry.id, severity="review")
    d = svc.load_dictionary(db, corp_id=corp.id)
    assert review_text("保本", dictionary=d).verdict == "review"
    # A corp cannot edit installation entries.
    with pytest.raises(NotFound):
        svc.edit_entry(db, corp_id=corp.id, actor="system", entry_id=entry.id, severity="block")


def test_a_rolled_back_change_never_serves_a_stale_dictionary(db, corp):
    savepoint = db.begin_nested()
    add(db, corp, "昙花一现", "block", actor="system")
    assert review_text("昙花一现", dictionary=svc.load_dictionary(db, corp_id=corp.id)).verdict == "block"
    savepoint.rollback()
    add(db, corp, "另一个词", "block", actor="system")
    # Same version number (1) as the rolled-back change; a new stamp, so a fresh dictionary.
    d = svc.load_dictionary(db, corp_id=corp.id)
    assert review_text("昙花一现", dictionary=d).verdict == "pass"
    assert review_text("另一个词", dictionary=d).verdict == "block"
