"""Names, not code: every audit action the code writes and every job kind the worker runs has a
readable label (Chinese by default, English available), and the raw value stays on hover."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from siyu.console import labels
from siyu.console.i18n import translations
from siyu.jobs import registry
from siyu.jobs import service as jobs
from siyu.tenancy.models import Role
from tenancy.factories import console_user, fast_argon2, make_corp  # noqa: F401 (autouse)

SRC = Path(__file__).resolve().parents[2] / "src" / "siyu"
LITERAL = re.compile(r'action="([a-z_]+\.[a-z_.]+)"')
FAMILY = re.compile(r'action=f"([a-z_]+)\.\{')


def _source() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in SRC.rglob("*.py"))


def test_every_audit_action_written_in_the_code_has_a_label():
    source = _source()
    actions = set(LITERAL.findall(source))
    assert len(actions) > 80  # the scan finds the audit calls
    zh = translations("zh_CN").gettext
    unlabelled = sorted(a for a in actions if labels.audit_action_label(a, zh) == a)
    assert unlabelled == []
    families = set(FAMILY.findall(source))
    assert families and families <= set(labels.AUDIT_OBJECTS)


def test_every_registered_job_has_a_label_in_chinese_and_english():
    registry.ensure_loaded()
    zh, en = translations("zh_CN").gettext, translations("en").gettext
    names = registry.handler_names()
    assert [n for n in names if labels.job_kind_label(n, zh) == n] == []
    assert labels.job_kind_label("event:customer.added:together:default", zh) == "新增客户 → 写入数据库"
    assert labels.job_kind_label("event:customer.added:acquisition.welcome", en) == "Customer added → welcome message"
    assert labels.job_kind_label("compliance.handover_run", zh) == "执行继承"
    assert labels.job_kind_label("made.up", zh) == "made.up"  # unknown: shown as it is


def test_audit_family_labels_compose_object_and_verb():
    zh = translations("zh_CN").gettext
    assert labels.audit_action_label("content.approved", zh) == "内容 · 审批通过"
    assert labels.audit_action_label("dsr.erased", zh) == "个人信息请求 · 删除数据"
    assert labels.audit_action_label("content.flew_away", zh) == "content.flew_away"


@pytest.fixture
def corp(session):
    return make_corp(session, name="甲银行")


def test_the_jobs_and_audit_pages_show_labels_with_the_raw_value_on_hover(session, corp):
    jobs.enqueue(session, name="compliance.handover_run", queue="labels-test", corp_id=corp.id)
    admin = console_user(session, corp, roles=(Role.ADMINISTRATOR,))
    page = admin.get("/jobs").text
    assert '<div title="compliance.handover_run" data-testid="job-kind">执行继承</div>' in page
    audit = admin.get("/audit").text
    assert 'title="corp.created" data-testid="audit-action">创建企业<' in audit
    # who did it: the staff member's name, the login on hover
    assert re.search(r'<td title="[^"]+" data-testid="audit-actor">[^<]+</td>', audit)
    assert 'title="compliance.handover_run" data-testid="job-kind">Run a handover<' in admin.get("/jobs?lang=en").text
