"""The home page per role: each role sees its own section of today's work, and every figure that
counts something equals the number of rows on the page it links to."""

from __future__ import annotations

import re

import pytest

from siyu.acquisition.models import KeywordTask, WelcomeFollowUp
from siyu.console.home import home_sections, sections_for
from siyu.jobs.models import Job
from siyu.privacy import service as privacy
from tenancy.factories import console_user, make_corp, make_staff, principal_of


@pytest.fixture
def corp(session):
    return make_corp(session)


def tile_values(page: str) -> dict[str, tuple[str, str]]:
    """tile key -> (value text, link)"""
    out = {}
    for m in re.finditer(r'<a class="card tile[^"]*" href="([^"]+)" data-testid="tile-([a-z0-9_]+)">(.*?)</a>',
                         page, re.S):
        value = re.search(r'data-testid="value">\s*(.*?)\s*</div>', m.group(3), re.S).group(1)
        out[m.group(2)] = (value, m.group(1).replace("&amp;", "&"))
    return out


def sections(page: str) -> list[str]:
    return re.findall(r'data-testid="section-([a-z]+)"', page)


def test_each_role_sees_its_own_sections(session, corp):
    assert sections_for(principal_of(make_staff(session, corp, roles=["advisor"], password=None))) == ["advisor"]
    everyone = make_staff(session, corp, roles=["administrator", "operations", "advisor", "compliance"],
                          password=None)
    assert sections_for(principal_of(everyone)) == ["advisor", "operations", "compliance", "administrator"]

    advisor = console_user(session, corp, roles=["advisor"], wecom_userid="adv-home")
    assert sections(advisor.get("/").text) == ["advisor"]
    officer = console_user(session, corp, roles=["compliance"])
    assert sections(officer.get("/").text) == ["compliance"]
    admin = console_user(session, corp, roles=["administrator"])
    page = admin.get("/").text
    assert sections(page) == ["operations", "compliance", "administrator"]
    # what every role saw before: staff and department counts; gone from the home page
    assert 'data-testid="figure-staff"' not in page
    assert "今日" in page and "系统状态" in page


def test_an_advisors_figures_match_the_lists_they_link_to(session, corp):
    advisor = console_user(session, corp, roles=["advisor"], wecom_userid="adv-home")
    other = "someone-else"
    for i in range(3):
        session.add(KeywordTask(corp_id=corp.id, msgid=f"m-{i}", advisor_userid="adv-home",
                                external_userid=f"wm-{i}", reply_text="您好", state="open"))
    session.add(KeywordTask(corp_id=corp.id, msgid="m-x", advisor_userid=other, external_userid="wm-x",
                            reply_text="您好", state="open"))
    session.add(KeywordTask(corp_id=corp.id, msgid="m-done", advisor_userid="adv-home", external_userid="wm-d",
                            reply_text="您好", state="sent"))
    for i in range(2):
        session.add(WelcomeFollowUp(corp_id=corp.id, inbox_event_id=1000 + i, advisor_userid="adv-home",
                                    external_userid=f"wf-{i}"))
    session.add(WelcomeFollowUp(corp_id=corp.id, inbox_event_id=2000, advisor_userid=other, external_userid="wf-x"))
    session.flush()

    tiles = tile_values(advisor.get("/").text)
    value, href = tiles["tasks_open"]
    assert value == "3"
    assert advisor.get(href).text.count('data-testid="keyword-task-row"') == 3
    value, href = tiles["follow_ups_open"]
    assert value == "2"
    assert advisor.get(href).text.count('data-testid="follow-up-row"') == 2
    assert tiles["leads_due"][0] == "0"


def test_compliance_and_operations_figures_match_their_lists(session, corp):
    admin = console_user(session, corp, roles=["administrator", "compliance"])
    for i in range(2):
        privacy.create_request(session, corp_id=corp.id, actor=principal_of(admin.staff), external_userid=f"wm-dsr-{i}",
                               kind="export", verification_note="身份证件已核验")
    for i in range(4):
        session.add(Job(name="jobs.noop", queue="default", corp_id=corp.id, state="dead", attempt=3,
                        max_attempts=3, payload={}, idempotency_key=f"home-dead-{i}"))
    session.flush()

    tiles = tile_values(admin.get("/").text)
    value, href = tiles["data_requests_open"]
    assert value == "2"
    assert admin.get(href).text.count('data-testid="dsr-row"') == 2
    value, href = tiles["jobs_dead"]
    assert value == "4" and href == "/jobs?state=dead"
    assert admin.get(href).text.count('data-state="dead"') == 4
    assert tiles["wecom_connection"][0] == "未连接"


def test_the_home_page_says_each_label_in_chinese(session, corp):
    staff = make_staff(session, corp, roles=["administrator", "operations", "advisor", "compliance", "auditor"],
                       password=None)
    from siyu.console.i18n import translations

    gettext = translations("zh_CN").gettext
    labels = [t.label for s in home_sections(session, principal=principal_of(staff)) for t in s["tiles"]]
    assert len(labels) >= 12
    assert [label for label in labels if gettext(label) == label] == []
