"""The compliance officer's pages of the content gate: the wording dictionary (list, filter, add,
edit, deactivate, test a text, import/export with bad rows named), which kinds need approval, and a
welcome variant edited on its channel code's page (pending, the approved text still shown in force)."""

from __future__ import annotations

import io

from sqlalchemy import select

from compliance.gate import approve_all
from siyu.acquisition import service as acquisition
from siyu.acquisition import welcome
from siyu.compliance import content, dictionary
from siyu.tenancy.models import AuditEntry
from tenancy.factories import console_user, fast_argon2, make_staff  # noqa: F401

PAGE = "/compliance/dictionary"


def _audit(session, corp, prefix):
    return session.scalars(select(AuditEntry.action).where(AuditEntry.chain_id == corp.id,
                                                           AuditEntry.action.like(prefix + "%"))).all()


def test_dictionary_add_filter_edit_deactivate_and_test_a_text(session, corp):
    officer = console_user(session, corp, roles=("compliance",))
    page = officer.get(PAGE)
    assert page.status_code == 200 and 'data-testid="entry-form"' in page.text
    assert 'data-phrase="保本保息"' in officer.get(PAGE, params={"scope": "installation"}).text  # the seed in force
    bad = officer.post(PAGE, {"category": "nope", "phrase": "x", "severity": "block", "rule": "r"})
    assert bad.status_code == 422 and 'data-field="category"' in bad.text
    added = officer.post(PAGE, {"category": "firm", "phrase": "包赚", "severity": "block", "rule": "本行禁用：包赚"})
    assert added.status_code == 303
    (entry,) = dictionary.list_entries(session, corp_id=corp.id)
    mine = officer.get(PAGE, params={"scope": "corp", "severity": "block"})
    assert 'data-phrase="包赚"' in mine.text and mine.text.count('data-testid="entry-row"') == 1

    tested = officer.post(PAGE + "/test", {"text": "买它包赚，欢迎咨询"})
    assert tested.status_code == 200 and 'data-verdict="block"' in tested.text
    assert '<mark class="finding sev-block" data-category="firm"' in tested.text and "3–4" in tested.text
    assert "本行禁用：包赚" in tested.text

    assert officer.post(f"{PAGE}/{entry.id}", {"category": "firm", "phrase": "包赚", "severity": "review",
                                               "rule": "本行慎用"}).status_code == 303
    assert officer.post(f"{PAGE}/{entry.id}/deactivate").status_code == 303
    session.refresh(entry)
    assert (entry.severity, entry.is_active) == ("review", False)
    assert 'data-category="firm"' not in officer.post(PAGE + "/test", {"text": "买它包赚"}).text  # deactivated
    assert len(_audit(session, corp, "wording")) >= 3  # created, edited, deactivated: each audited
    auditor = console_user(session, corp, roles=("auditor",))
    assert auditor.get(PAGE).status_code == 200 and 'data-testid="entry-form"' not in auditor.get(PAGE).text
    assert auditor.post(PAGE, {"category": "firm", "phrase": "y", "severity": "block", "rule": "r"}).status_code == 403
    assert console_user(session, corp, roles=("advisor",)).get(PAGE).status_code == 403


def test_dictionary_import_refuses_a_file_with_a_bad_row_whole_and_exports(session, corp):
    officer = console_user(session, corp, roles=("compliance",))
    bad = "类别,词语,严重程度,规则\nfirm,稳稳赚,block,本行禁用\nfirm,翻倍,sometimes,本行禁用\nnope,快上车,review,x\n"
    refused = officer.post(PAGE + "/import", files={"file": ("words.csv", bad.encode("utf-8"), "text/csv")})
    assert refused.status_code == 422 and 'data-field="file"' in refused.text
    assert "row 3, column 严重程度" in refused.text and "row 4, column 类别" in refused.text
    assert dictionary.list_entries(session, corp_id=corp.id) == []  # nothing half-imported
    good = "category,phrase,severity,rule,notes\nfirm,稳稳赚,block,本行禁用,\nsuperlative,顶级,review,慎用,营销部\n"
    done = officer.post(PAGE + "/import", files={"file": ("words.csv", good.encode("utf-8"), "text/csv")})
    assert done.status_code == 200 and 'data-testid="imported"' in done.text
    assert sorted(e.phrase for e in dictionary.list_entries(session, corp_id=corp.id)) == ["稳稳赚", "顶级"]
    again = officer.post(PAGE + "/import", files={"file": ("words.csv", good.encode("utf-8"), "text/csv")})
    assert again.status_code == 200 and len(dictionary.list_entries(session, corp_id=corp.id)) == 2
    exported = officer.get(PAGE + "/export/xlsx")
    assert exported.status_code == 200 and exported.content[:2] == b"PK"
    csv = officer.get(PAGE + "/export/csv").content.decode("utf-8-sig")
    assert csv.splitlines()[0] == "category,phrase,severity,rule,notes,active" and "稳稳赚" in csv
    from openpyxl import load_workbook

    rows = list(load_workbook(io.BytesIO(exported.content)).active.values)
    assert rows[0][:3] == ("category", "phrase", "severity") and len(rows) == 3
    assert "wording_dictionary.imported" in _audit(session, corp, "wording_dictionary.")


def test_which_kinds_need_approval_is_set_by_the_officer_and_audited(session, corp):
    officer = console_user(session, corp, roles=("compliance",))
    page = officer.get("/compliance/approvals/settings")
    assert page.status_code == 200 and 'id="req-welcome" name="required" value="welcome" checked' in page.text
    assert 'value="handover" checked' not in page.text  # a handover notice: not required by default
    kinds = [k for k in content.KINDS if k != "keyword_reply"]
    assert officer.post("/compliance/approvals/settings", {"required": kinds}).status_code == 303
    required = content.requirements(session, corp_id=corp.id)
    assert required["handover"] and not required["keyword_reply"] and required["welcome"]
    assert _audit(session, corp, "content.requirements_changed")
    ops = console_user(session, corp, roles=("operations",))
    assert ops.get("/compliance/approvals/settings").status_code == 200
    assert ops.post("/compliance/approvals/settings", {"required": []}).status_code == 403


def test_a_variant_edited_on_its_code_page_is_pending_and_the_approved_text_stays_in_force(session, corp):
    make_staff(session, corp, wecom_userid="zhangsan")
    code = acquisition.create_channel_code(session, corp_id=corp.id, actor="t", name="春季投放", channel="ad",
                                           advisors=[acquisition.AdvisorSpec("zhangsan")])
    variant = welcome.add_variant(session, corp_id=corp.id, actor="t", code_id=code.id, text="您好，欢迎关注。")
    approve_all(session, corp.id)
    ops = console_user(session, corp, roles=("operations",))
    refused = ops.post(f"/acquisition/variants/{variant.id}/edit", {"text": "保本保息，稳赚不赔"})
    assert refused.status_code == 422 and "[promise, block" in refused.text
    assert ops.post(f"/acquisition/variants/{variant.id}/edit", {"text": "您好，新版欢迎语。"}).status_code == 303
    page = ops.get(f"/acquisition/codes/{code.id}")
    assert 'data-testid="variant-pending"' in page.text and "您好，新版欢迎语。" in page.text
    assert '<div style="white-space: pre-wrap" data-testid="variant-in-force">您好，欢迎关注。</div>' in page.text
    queue = console_user(session, corp, roles=("compliance",)).get("/compliance/approvals")
    assert "春季投放 · A" in queue.text and f'href="/acquisition/codes/{code.id}#variant-{variant.id}"' in queue.text
