"""Console pages 社群: the list in Chinese with search and filters, the group page with masked
customer names and the chart, editing positioning, tags and set, group sets; advisors see their
own groups and change nothing."""

from __future__ import annotations

import pytest

from communities.factories import make_group
from customers.factories import make_customer
from tenancy.factories import console_user, make_corp, make_staff


@pytest.fixture
def corp(session):
    corp = make_corp(session)
    zhang = make_staff(session, corp, name="张顾问", wecom_userid="zhang", login="zhang.g" + str(corp.id))
    make_staff(session, corp, name="李顾问", wecom_userid="li")
    he = make_customer(session, corp.id, userid="zhang", name="何静")
    mine = make_group(session, corp.id, name="新手课堂1期", owner="zhang", customers=[he.external_userid])
    theirs = make_group(session, corp.id, name="高净值沙龙", owner="li")
    return corp, zhang, he, mine, theirs


def test_list_search_and_group_page(session, corp):
    corp, _, he, mine, theirs = corp
    user = console_user(session, corp, roles=["operations"])
    page = user.get("/groups")
    assert page.status_code == 200 and "客户群" in page.text
    assert "新手课堂1期" in page.text and "高净值沙龙" in page.text
    found = user.get("/groups", params={"q": "沙龙"})
    assert "高净值沙龙" in found.text and "新手课堂1期" not in found.text
    bad = user.get("/groups", params={"positioning": "vip"})
    assert bad.status_code == 422 and 'data-field="positioning"' in bad.text
    group = user.get(f"/groups/{mine.id}")
    assert group.status_code == 200, group.text[-3000:]
    assert "何*" in group.text
    assert "何静" not in group.text and he.external_userid not in group.text
    assert 'data-testid="chart-joins"' in group.text and "张顾问" in group.text


def test_edit_positioning_tags_and_set(session, corp):
    corp, _, _, mine, _ = corp
    user = console_user(session, corp, roles=["operations"])
    made = user.post("/groups/sets", {"name": "新手课堂", "positioning": "novice_class"}, follow_redirects=False)
    assert made.status_code == 303
    set_id = int(made.headers["location"].split("/")[-1].split("?")[0])
    form = {"positioning": "benefit", "tags": "深圳, 2026春", "group_set": str(set_id)}
    saved = user.post(f"/groups/{mine.id}", form, follow_redirects=False)
    assert saved.status_code == 303
    page = user.get(f"/groups/{mine.id}").text
    assert "福利群" in page and "深圳" in page and "新手课堂" in page
    bad = user.post(f"/groups/{mine.id}", {"positioning": "benefit", "tags": "x" * 40, "group_set": ""})
    assert bad.status_code == 422 and 'data-field="tags"' in bad.text
    sets = user.get("/groups/sets").text
    assert "新手课堂" in sets
    set_page = user.get(f"/groups/sets/{set_id}").text
    assert "新手课堂1期" in set_page


def test_advisors_see_their_own_groups_and_change_nothing(session, corp):
    corp, zhang, _, mine, theirs = corp
    from tenancy.factories import log_in, make_client

    client = make_client(session)
    csrf = log_in(client, zhang)
    page = client.get("/groups", headers={"accept": "text/html"})
    assert "新手课堂1期" in page.text and "高净值沙龙" not in page.text
    assert client.get(f"/groups/{theirs.id}", headers={"accept": "text/html"}).status_code == 404
    refused = client.post(f"/groups/{mine.id}", data={"csrf_token": csrf, "positioning": "product"},
                          headers={"accept": "text/html"})
    assert refused.status_code == 403
