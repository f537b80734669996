"""Leads at the service layer: staged import (per-row errors, nothing written until commit, skip
imports only the good rows, GB18030 and .xlsx files, duplicates, tenancy), calls and retries,
and the customer.added state that converts a lead."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from siyu import pii
from siyu.acquisition import leads
from siyu.acquisition.models import Lead, LeadCall, LeadList, LeadStagingRow
from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.tenancy.models import AuditEntry, Role
from siyu.tenancy.principal import Principal
from tenancy.factories import fast_argon2, make_corp, make_staff  # noqa: F401

HEADER = ["姓名", "手机号", "客群", "顾问"]


@pytest.fixture
def corp(session):
    corp = make_corp(session, name="线索测试银行")
    make_staff(session, corp, name="张顾问", login="zhang.gw", wecom_userid="zhangsan")
    make_staff(session, corp, name="李顾问", login="li.gw", wecom_userid="lisi")
    return corp


def _opener(session):
    @contextlib.contextmanager
    def open_session():
        with session.begin_nested():
            yield session
    return open_session


def _csv(rows, header=HEADER, encoding="utf-8") -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode(encoding)


def _xlsx(rows, header=HEADER) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(header)
    for r in rows:
        ws.append(r)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _import(session, corp, data: bytes, file_name="leads.csv", name="存量客户") -> LeadList:
    lead_list = leads.create_list(session, corp_id=corp.id, actor="test", name=name, file_name=file_name,
                                  stream=io.BytesIO(data), script="您好，我是您的理财顾问", enqueue_parse=False)
    leads.parse_list(_opener(session), corp_id=corp.id, list_id=lead_list.id, chunk_rows=3)
    session.refresh(lead_list)
    return lead_list


def _leads(session, corp) -> list[Lead]:
    return list(session.scalars(select(Lead).where(Lead.corp_id == corp.id).order_by(Lead.row_number)))


def _commit(session, corp, lead_list, *, skip_bad=False) -> int:
    leads.request_commit(session, corp_id=corp.id, actor="test", list_id=lead_list.id, skip_bad=skip_bad,
                         enqueue_commit=False)
    n = leads.commit_list(session, corp_id=corp.id, list_id=lead_list.id)
    session.flush()
    return n


GOOD = [["王芳", "13812345678", "代发", "zhangsan"], ["李强", "+86 139-0000-1111", "", "li.gw"],
        ["赵敏", "15000002222", "信用卡", "张顾问"], ["孙丽", "18612340000", "房贷", "lisi"]]


def test_a_clean_file_is_staged_then_imported_encrypted_and_masked(session, corp):
    lead_list = _import(session, corp, _csv(GOOD))
    assert (lead_list.status, lead_list.rows_parsed, lead_list.good_rows, lead_list.bad_rows) == ("parsed", 4, 4, 0)
    assert _leads(session, corp) == []  # nothing is a lead before the commit
    preview = leads.preview(session, corp_id=corp.id, list_id=lead_list.id)
    assert [r["phone"] for r in preview.first_rows][:2] == ["138****5678", "139****1111"]
    assert preview.first_rows[0]["name"] == "王*"
    assert _commit(session, corp, lead_list) == 4
    got = _leads(session, corp)
    assert [(d.name, d.phone, d.segment, d.status) for d in got][:2] == [
        ("王芳", "13812345678", "代发", "new"), ("李强", "13900001111", "", "new")]
    raw = session.execute(text("SELECT phone, name FROM lead WHERE corp_id = :c"), {"c": corp.id}).first()
    assert "1381234" not in raw[0] and "王芳" not in raw[1]  # encrypted at rest
    assert got[0].phone_hash == pii.lookup_hash("13812345678", kind=leads.PHONE_HASH_KIND)
    assert len({d.state for d in got}) == 4 and all(leads.is_lead_state(d.state) and len(d.state) <= 30 for d in got)
    assert session.scalar(select(func.count()).select_from(LeadStagingRow)
                          .where(LeadStagingRow.list_id == lead_list.id)) == 0
    session.refresh(lead_list)
    assert (lead_list.status, lead_list.imported_rows) == ("committed", 4)


def test_bad_rows_are_reported_by_row_and_column_and_block_import_all(session, corp):
    rows = [*GOOD[:2], ["", "12345", "代发", "nobody"], ["周杰", "13812345678", "x" * 101, "lisi"], GOOD[2]]
    lead_list = _import(session, corp, _csv(rows))
    assert (lead_list.good_rows, lead_list.bad_rows) == (3, 2)
    problems = list(leads.bad_rows(session, corp_id=corp.id, list_id=lead_list.id))
    assert (4, "name", "this column is empty") in problems
    assert (4, "phone", "not a mainland mobile number (11 digits starting with 13-19)") in problems
    assert (4, "advisor", "no active staff member of the corp has this WeCom id, login or name") in problems
    assert (5, "segment", "longer than 100 characters") in problems
    assert (5, "phone", "the same phone as row 2") in problems
    with pytest.raises(InvalidInput) as refused:
        leads.request_commit(session, corp_id=corp.id, actor="test", list_id=lead_list.id, skip_bad=False,
                             enqueue_commit=False)
    assert refused.value.field == "mode"
    assert _leads(session, corp) == []
    assert _commit(session, corp, lead_list, skip_bad=True) == 3
    assert [d.row_number for d in _leads(session, corp)] == [2, 3, 6]


def test_duplicates_against_earlier_lists_and_a_commit_race(session, corp):
    first = _import(session, corp, _csv(GOOD[:2]))
    second = _import(session, corp, _csv(GOOD[1:3]), name="第二批")  # parsed before the first is committed
    assert second.bad_rows == 0
    _commit(session, corp, first)
    third = _import(session, corp, _csv(GOOD[:1]), name="第三批")
    assert list(leads.bad_rows(session, corp_id=corp.id, list_id=third.id)) == [
        (2, "phone", "already a lead of an earlier list")]
    # The second list's row 2 became a duplicate meanwhile: its commit imports nothing and shows it.
    assert _commit(session, corp, second) == 0
    session.refresh(second)
    assert (second.status, second.bad_rows, second.good_rows) == ("parsed", 1, 1)
    assert len(_leads(session, corp)) == 2
    assert _commit(session, corp, second, skip_bad=True) == 1
    assert len(_leads(session, corp)) == 3


def test_gb18030_csv_and_xlsx_files(session, corp):
    gb = _import(session, corp, _csv(GOOD[:2], header=["客户姓名", "手机号码", "客户分层", "客户经理"],
                                     encoding="gb18030"), file_name="名单.csv")
    assert (gb.good_rows, gb.bad_rows) == (2, 0)
    assert leads.preview(session, corp_id=corp.id, list_id=gb.id).first_rows[0]["segment"] == "代发"
    xlsx_rows = [["赵敏", 15000002222, "信用卡", "zhangsan"], ["孙丽", "186 1234 0000", "房贷", "lisi"], [None, None]]
    wb = _import(session, corp, _xlsx(xlsx_rows, header=["Name", "Mobile", "Segment", "Assigned advisor"]),
                 file_name="list.xlsx")
    assert (wb.file_format, wb.good_rows, wb.bad_rows) == ("xlsx", 2, 0)
    _commit(session, corp, wb)
    assert {d.phone for d in _leads(session, corp)} == {"15000002222", "18612340000"}


def test_unreadable_files_and_missing_columns_fail_the_list(session, corp):
    no_advisor = _import(session, corp, _csv(GOOD, header=["姓名", "手机号", "客群", "备注"]))
    assert no_advisor.status == "failed" and "advisor" in no_advisor.detail
    broken = _import(session, corp, b"PK\x03\x04 not really a workbook", file_name="x.xlsx")
    assert broken.status == "failed"
    with pytest.raises(InvalidInput):
        leads.create_list(session, corp_id=corp.id, actor="test", name="旧格式", file_name="old.xls",
                          stream=io.BytesIO(b"\xd0\xcf\x11\xe0rest"), enqueue_parse=False)
    with pytest.raises(InvalidInput):
        leads.create_list(session, corp_id=corp.id, actor="test", name="", file_name="a.csv",
                          stream=io.BytesIO(b"a"), enqueue_parse=False)


def test_another_corp_sees_nothing_and_its_advisors_are_not_ours(session, corp):
    other = make_corp(session, name="别家银行")
    make_staff(session, other, name="外行顾问", wecom_userid="outsider")
    lead_list = _import(session, corp, _csv([["王芳", "13812345678", "", "outsider"]]))
    assert lead_list.bad_rows == 1  # a staff member of another corp is no advisor of ours
    with pytest.raises(NotFound):
        leads.get_list(session, corp_id=other.id, list_id=lead_list.id)
    with pytest.raises(NotFound):
        leads.request_commit(session, corp_id=other.id, actor="test", list_id=lead_list.id, skip_bad=True,
                             enqueue_commit=False)
    # The same phone in another corp is no duplicate.
    theirs = _import(session, other, _csv([["王芳", "13812345678", "", "outsider"]]))
    assert theirs.bad_rows == 0


@given(st.text(alphabet="0123456789 -+()", max_size=20))
@settings(max_examples=300, deadline=None)
def test_phone_parser_accepts_exactly_mainland_mobiles(text):
    try:
        phone = leads.normalize_phone(text)
    except leads.RowProblem as problem:
        assert problem.column == "phone"
        return
    assert len(phone) == 11 and phone[0] == "1" and phone[1] in "3456789" and phone.isdigit()
    assert phone in "".join(c for c in text if c.isdigit())


@given(st.integers(min_value=13000000000, max_value=19999999999), st.sampled_from(["", "+86", "86", "0086 "]),
       st.sampled_from(["", " ", "-"]))
def test_phone_parser_normalizes_written_forms(number, prefix, sep):
    digits = str(number)
    written = prefix + digits[:3] + sep + digits[3:7] + sep + digits[7:]
    if digits[1] in "012":
        with pytest.raises(leads.RowProblem):
            leads.normalize_phone(written)
    else:
        assert leads.normalize_phone(written) == digits


@given(st.lists(st.text(max_size=30), min_size=0, max_size=6))
@settings(max_examples=200, deadline=None)
def test_row_parser_reports_problems_never_crashes(cells):
    columns = {"name": 0, "phone": 1, "segment": 2, "advisor": 3, "do_not_call": 4}
    row = leads.parse_row(7, cells, columns, {"zhangsan": 1})
    assert row.row_number == 7
    assert all(e["column"] in leads.COLUMNS for e in row.errors)
    if not row.errors:
        assert row.advisor_staff_id == 1 and len(row.phone) == 11


# --- calls -------------------------------------------------------------------------------------------------

def _advisor(session, corp, userid="zhangsan") -> Principal:
    from siyu.tenancy.models import Staff

    staff = session.scalar(select(Staff).where(Staff.corp_id == corp.id, Staff.wecom_userid == userid))
    return Principal(corp_id=corp.id, kind="staff", label=staff.login, staff_id=staff.id,
                     department_id=staff.department_id, roles=frozenset({Role.ADVISOR.value}))


def _imported(session, corp, rows=GOOD):
    lead_list = _import(session, corp, _csv(rows))
    _commit(session, corp, lead_list)
    return _leads(session, corp)


SH = dt.timezone(dt.timedelta(hours=8))


def test_no_answer_is_retried_within_working_hours_then_the_lead_is_unreachable(session, corp):
    lead = _imported(session, corp)[0]
    me = _advisor(session, corp)
    monday_10 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=SH)
    leads.record_outcome(session, principal=me, lead_id=lead.id, outcome="no_answer", now=monday_10)
    assert (lead.status, lead.next_call_at) == ("retry", dt.datetime(2026, 3, 2, 12, 0, tzinfo=SH))
    due, later = leads.queue(session, corp_id=corp.id, staff_id=me.staff_id, now=monday_10)
    assert lead in later and lead not in due
    friday_17 = dt.datetime(2026, 3, 6, 17, 0, tzinfo=SH)
    leads.record_outcome(session, principal=me, lead_id=lead.id, outcome="no_answer", now=friday_17)
    assert lead.next_call_at == dt.datetime(2026, 3, 9, 9, 0, tzinfo=SH)  # next Monday's opening
    leads.record_outcome(session, principal=me, lead_id=lead.id, outcome="no_answer", now=friday_17)
    assert (lead.status, lead.next_call_at, lead.attempts) == ("unreachable", None, 3)
    with pytest.raises(Conflict):
        leads.record_outcome(session, principal=me, lead_id=lead.id, outcome="reached")
    audits = session.scalars(select(AuditEntry).where(AuditEntry.action == "acquisition.lead_called",
                                                      AuditEntry.target_id == str(lead.id))).all()
    assert len(audits) == 3 and audits[0].detail["outcome"] == "no_answer"


def test_do_not_call_and_wrong_number_end_calling_and_leave_the_queue(session, corp):
    a, b, c, _d = _imported(session, corp)
    me = _advisor(session, corp)
    assert {a.id, c.id} <= {x.id for x in leads.queue(session, corp_id=corp.id, staff_id=me.staff_id)[0]}
    leads.record_outcome(session, principal=me, lead_id=a.id, outcome="do_not_call")
    leads.record_outcome(session, principal=me, lead_id=c.id, outcome="wrong_number")
    assert (a.status, a.do_not_call, c.status) == ("do_not_call", True, "wrong_number")
    assert leads.queue(session, corp_id=corp.id, staff_id=me.staff_id) == ([], [])
    with pytest.raises(Conflict):
        leads.record_outcome(session, principal=me, lead_id=a.id, outcome="reached")
    with pytest.raises(Conflict):
        leads.reveal_phone(session, principal=me, lead_id=a.id)
    with pytest.raises(NotFound):  # another advisor's lead
        leads.record_outcome(session, principal=me, lead_id=b.id, outcome="reached")
    with pytest.raises(InvalidInput):
        leads.record_outcome(session, principal=_advisor(session, corp, "lisi"), lead_id=b.id, outcome="maybe")
    assert session.scalar(select(func.count()).select_from(LeadCall).where(LeadCall.lead_id == b.id)) == 0


def test_dnc_column_in_the_file_keeps_the_lead_out_of_calls(session, corp):
    rows = [["王芳", "13812345678", "", "zhangsan", "是"], ["李强", "13900001111", "", "zhangsan", "否"],
            ["赵敏", "15000002222", "", "zhangsan", "maybe"]]
    lead_list = _import(session, corp, _csv(rows, header=[*HEADER, "勿扰"]))
    assert list(leads.bad_rows(session, corp_id=corp.id, list_id=lead_list.id)) == [
        (4, "do_not_call", "write 是 / 否 (yes / no)")]
    _commit(session, corp, lead_list, skip_bad=True)
    dnc, ok = _leads(session, corp)
    assert (dnc.do_not_call, dnc.status, ok.status) == (True, "do_not_call", "new")
    assert leads.queue(session, corp_id=corp.id, staff_id=_advisor(session, corp).staff_id)[0] == [ok]


def test_the_add_with_the_lead_state_converts_it_and_conversion_counts(session, corp):
    a, b, c, d = _imported(session, corp)
    zhang, li = _advisor(session, corp), _advisor(session, corp, "lisi")
    leads.record_outcome(session, principal=zhang, lead_id=a.id, outcome="agreed")
    leads.record_outcome(session, principal=zhang, lead_id=c.id, outcome="no_answer")
    leads.record_outcome(session, principal=li, lead_id=b.id, outcome="refused")
    at = dt.datetime(2026, 3, 2, 3, 0, tzinfo=dt.UTC)
    assert leads.mark_converted(session, corp_id=corp.id, state=a.state, external_userid="wmAAA", at=at) is a
    assert (a.status, a.external_userid, a.converted_at) == ("converted", "wmAAA", at)
    assert leads.mark_converted(session, corp_id=corp.id, state="chabcdef", external_userid="x", at=at) is None
    other = make_corp(session, name="别家")
    assert leads.mark_converted(session, corp_id=other.id, state=b.state, external_userid="x", at=at) is None
    funnels = leads.conversion(session, corp_id=corp.id)
    by_advisor = {f.label: (f.leads, f.called, f.reached, f.agreed, f.added) for f in funnels["by_advisor"]}
    assert by_advisor == {"张顾问": (2, 2, 1, 1, 1), "李顾问": (2, 1, 1, 0, 0)}
    (per_list,) = funnels["by_list"]
    assert (per_list.leads, per_list.called, per_list.added, per_list.add_rate) == (4, 3, 1, "33.3%")


def test_the_attribution_subscriber_converts_leads_and_keeps_channel_codes(session, corp):
    from siyu.acquisition import jobs
    from siyu.jobs.registry import JobContext

    lead = _imported(session, corp)[0]
    now = dt.datetime.now(dt.UTC)
    ctx = JobContext(id=1, name="acquisition.attribute", attempt=1, max_attempts=5, queue="default",
                     corp_id=corp.id, run_at=now, enqueued_at=now, worker_id="t")
    jobs.attribute(session, {"inbox_event_id": 991, "state": lead.state, "userid": "zhangsan",
                             "external_userid": "wmLEAD", "received_at": now.isoformat()}, ctx)
    assert (lead.status, lead.external_userid) == ("converted", "wmLEAD")
    # A channel-code state still goes to channel attribution (no code of that state: nothing, no error).
    jobs.attribute(session, {"inbox_event_id": 992, "state": "ch0000000001", "userid": "zhangsan",
                             "external_userid": "wmX"}, ctx)


def test_export_masks_and_is_audited(session, corp):
    from openpyxl import load_workbook

    _imported(session, corp)
    ops = Principal(corp_id=corp.id, kind="staff", label="ops", staff_id=None, department_id=None,
                    roles=frozenset({"operations"}))
    out = io.BytesIO()
    n = leads.export_leads(session, principal=ops, filters=leads.make_filters(), fmt="csv", out=out)
    text = out.getvalue().decode("utf-8-sig")
    assert n == 4 and "138****5678" in text and "13812345678" not in text and "王*" in text and "王芳" not in text
    out = io.BytesIO()
    assert leads.export_leads(session, principal=_advisor(session, corp), filters=leads.make_filters(), fmt="xlsx",
                              out=out) == 2  # an advisor: their own
    ws = load_workbook(io.BytesIO(out.getvalue()), read_only=True).worksheets[0]
    assert len(list(ws.iter_rows())) == 3
    entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "acquisition.leads_exported")).all()
    assert [e.detail["rows"] for e in entries] == [4, 2] and entries[0].detail["filter"] == {}
    with pytest.raises(InvalidInput):
        leads.make_filters(status="bogus")
