"""Console pages 客户: the list in Chinese with its filters, chart and pages; the 360 page; notes
added over HTMX with CSRF; unmasking audited; advisors see only their own customers, another corp's
staff nothing."""

from __future__ import annotations

import re

import pytest

from customers.factories import make_customer
from siyu.tenancy import audit
from tenancy.factories import console_user, log_in, make_client, make_corp, make_staff


@pytest.fixture
def corp(session):
    corp = make_corp(session)
    zhang = make_staff(session, corp, name="张顾问", wecom_userid="zhang", login="zhang.adv" + str(corp.id))
    make_staff(session, corp, name="李顾问", wecom_userid="li")
    make_customer(session, corp.id, userid="zhang", name="周杰", state="qr-branch-1", tags=[("t1", "意向", "基金")])
    make_customer(session, corp.id, userid="li", name="吴敏", state="ad-1", stage="invested")
    return corp, zhang


def _row_names(html: str) -> list[str]:
    return re.findall(r'<a class="strong" href="/customers/\d+">([^<]+)</a>', html)


def test_the_list_in_chinese_with_chart_and_counts(session, corp):
    corp, _zhang = corp
    user = console_user(session, corp, roles=["operations"])
    page = user.get("/customers")
    assert page.status_code == 200
    assert "<h1>客户</h1>" in page.text and "共 2 位客户" in page.text
    assert sorted(_row_names(page.text)) == ["吴*", "周*"]
    assert "周杰" not in page.text and "吴敏" not in page.text
    assert 'data-testid="chart-stages"' in page.text and "客户生命周期分布" in page.text
    assert "已投资" in page.text and "qr-branch-1" in page.text


def test_filters_and_search(session, corp):
    corp, zhang = corp
    user = console_user(session, corp, roles=["operations"])
    assert _row_names(user.get("/customers", params={"stage": "invested"}).text) == ["吴*"]
    assert _row_names(user.get("/customers", params={"q": "周杰"}).text) == ["周*"]
    assert _row_names(user.get("/customers", params={"staff_id": str(zhang.id)}).text) == ["周*"]
    assert _row_names(user.get("/customers", params={"state": "ad-"}).text) == ["吴*"]
    filtered = user.get("/customers", params={"q": "周杰"})
    assert "符合条件的客户 1 位" in filtered.text


def test_bad_filters_are_shown_next_to_the_field(session, corp):
    corp, _zhang = corp
    user = console_user(session, corp, roles=["operations"])
    bad = user.get("/customers", params={"added_from": "2026-02-30"})
    assert bad.status_code == 422 and 'data-field="added_from"' in bad.text
    bad = user.get("/customers", params={"after": "garbage"})
    assert bad.status_code == 422 and 'data-field="after"' in bad.text


def test_next_page_keeps_the_filters(session, corp):
    corp, _zhang = corp
    for i in range(55):
        make_customer(session, corp.id, userid="li", name=f"客{i}", state="bulk")
    user = console_user(session, corp, roles=["operations"])
    first = user.get("/customers", params={"state": "bulk"})
    assert len(_row_names(first.text)) == 50
    link = re.search(r'href="(/customers\?[^"]+)" data-testid="next-page"', first.text).group(1).replace("&amp;", "&")
    assert "state=bulk" in link
    second = user.get(link)
    assert len(_row_names(second.text)) == 5 and 'data-testid="next-page"' not in second.text


def test_an_advisor_sees_only_their_customers(session, corp):
    corp, zhang = corp
    client = console_user(session, corp, roles=["advisor"], wecom_userid="li2")
    assert _row_names(client.get("/customers").text) == []
    zhang_client = make_client(session)
    log_in(zhang_client, zhang)
    page = zhang_client.get("/customers", headers={"accept": "text/html"})
    assert _row_names(page.text) == ["周*"]
    other_id = re.search(r'href="/customers/(\d+)"', console_user(session, corp, roles=["operations"])
                         .get("/customers", params={"q": "吴敏"}).text).group(1)
    assert zhang_client.get(f"/customers/{other_id}", headers={"accept": "text/html"}).status_code == 404


def test_the_360_page_notes_and_unmask(session, corp):
    corp, zhang = corp
    user = console_user(session, corp, roles=["operations"])
    customer_id = re.search(r'href="/customers/(\d+)"', user.get("/customers", params={"q": "周杰"}).text).group(1)
    page = user.get(f"/customers/{customer_id}")
    assert page.status_code == 200
    assert "客户 360 视图" in page.text and "周*" in page.text and "周杰" not in page.text
    assert "张顾问" in page.text and "qr-branch-1" in page.text and "基金" in page.text
    assert "尚未评估" in page.text and "添加了顾问" in page.text

    added = user.post(f"/customers/{customer_id}/notes", {"text": "客户想了解养老理财"}, htmx=True)
    assert added.status_code == 200 and 'id="notes"' in added.text and "客户想了解养老理财" in added.text
    assert 'id="timeline" data-testid="timeline" hx-swap-oob="true"' in added.text and "添加了跟进记录" in added.text
    empty = user.post(f"/customers/{customer_id}/notes", {"text": "  "}, htmx=True)
    assert empty.status_code == 422 and 'data-field="text"' in empty.text
    no_csrf = user.client.post(f"/customers/{customer_id}/notes", data={"text": "x"},
                               headers={"accept": "text/html"})
    assert no_csrf.status_code == 403

    shown = user.post(f"/customers/{customer_id}/unmask", htmx=True)
    assert shown.status_code == 200 and "周杰" in shown.text and 'id="profile"' in shown.text
    assert "hx-swap-oob" in shown.text
    (entry,) = audit.list_entries(session, corp_id=corp.id, action="customer.unmasked")
    assert entry.target_id == customer_id and entry.actor == user.staff.login


def test_compliance_reads_but_writes_no_notes(session, corp):
    corp, _zhang = corp
    user = console_user(session, corp, roles=["compliance"])
    customer_id = re.search(r'href="/customers/(\d+)"', user.get("/customers").text).group(1)
    page = user.get(f"/customers/{customer_id}")
    assert page.status_code == 200 and 'data-testid="note-form"' not in page.text
    assert user.post(f"/customers/{customer_id}/notes", {"text": "x"}).status_code == 403


def test_another_corps_staff_see_nothing(session, corp):
    corp, _zhang = corp
    own = console_user(session, corp, roles=["operations"])
    customer_id = re.search(r'href="/customers/(\d+)"', own.get("/customers").text).group(1)
    other = console_user(session, make_corp(session), roles=["administrator"])
    assert _row_names(other.get("/customers").text) == []
    assert other.get(f"/customers/{customer_id}").status_code == 404
    assert other.post(f"/customers/{customer_id}/unmask").status_code == 404
    assert other.post(f"/customers/{customer_id}/notes", {"text": "x"}).status_code == 404


def test_the_home_page_shows_customer_figures(session, corp):
    corp, _zhang = corp
    page = console_user(session, corp, roles=["operations"]).get("/")
    assert 'data-testid="tile-new_customers_today"' in page.text and "今日新客户" in page.text
    assert "每日新增客户" in page.text
