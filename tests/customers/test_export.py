"""Export of the customer list: the current filter as CSV or Excel, names masked, no phones,
audited with the filter (a searched name masked) and the row count; operators only."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from siyu.tenancy.models import AuditEntry, Role
from tenancy.factories import console_user, fast_argon2, make_corp, make_staff  # noqa: F401


@pytest.fixture
def corp(session):
    return make_corp(session, name="导出银行")


@pytest.fixture
def ops(session, corp):
    return console_user(session, corp, roles=(Role.OPERATIONS,))


def test_customer_export_is_masked_filtered_and_audited(session, corp, ops):
    from siyu.customers import contacts

    make_staff(session, corp, name="顾问甲", wecom_userid="gw1")
    contacts.record_add(session, corp_id=corp.id, external_userid="wmEXPORT1", wecom_userid="gw1",
                        at=dt.datetime(2026, 3, 2, tzinfo=dt.UTC), state="ch0001")
    customer = contacts.get_by_external_id(session, corp_id=corp.id, external_userid="wmEXPORT1")
    customer.name, customer.name_hash = "欧阳娜娜", contacts.name_hash("欧阳娜娜")
    session.flush()
    r = ops.get("/customers/export/csv?q=欧阳娜娜")
    text = r.content.decode("utf-8-sig")
    assert r.status_code == 200 and "欧***" in text and "欧阳娜娜" not in text and "wmEXPORT1" in text
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "customers.exported"))
    assert entry.detail["rows"] == 1 and entry.detail["filter"] == {"q": "欧***"}
    assert ops.get("/customers/export/xlsx").content.startswith(b"PK")
    advisor = console_user(session, corp, roles=(Role.ADVISOR,))
    assert advisor.get("/customers/export/csv").status_code == 403
