"""PIPL on the H5 pages: the phone is taken only after the customer ticked consent to the corp's
privacy notice in force (versioned); the consent is on the visit and in the consent ledger."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from acquisition.test_verification import PNG
from siyu.acquisition import verification as v
from siyu.acquisition.models import GatedVisit, VerificationCode
from siyu.errors import InvalidInput
from siyu.privacy import notices
from siyu.privacy.models import ConsentRecord
from tenancy.factories import console_user, fast_argon2, make_client, make_corp, make_staff, principal_of  # noqa: F401

NOTICE_TEXT = ("本行依法处理您的手机号码，仅用于核验客户身份并邀请您加入客户社群，"
               "保存期限为服务所必需的最短期限，您可以随时撤回同意。")


def _gate(session, corp):
    return v.save_community(session, corp_id=corp.id, actor="test", name="理财会员群", verify_by="sms",
                            qr_image=PNG, join_url="https://h5.example/join/1")


def _open_page(client, link):
    page = client.get(link)
    return page, re.search(r'name="visit" value="([^"]+)"', page.text).group(1)


def test_no_phone_is_taken_without_the_tick_and_the_consent_is_recorded_with_it(session):
    corp = make_corp(session)
    community = _gate(session, corp)
    client = make_client(session)
    link = v.link_path(community, external_userid="wmCustomer042")
    page, key = _open_page(client, link)
    assert 'name="consent" value="0"' in page.text and "个人信息处理规则" in page.text

    refused = client.post(link + "/phone", data={"visit": key, "phone": "13812345678"})
    assert refused.status_code == 422 and 'data-field="consent"' in refused.text and "勾选同意" in refused.text
    visit = session.scalar(select(GatedVisit).where(GatedVisit.community_id == community.id))
    assert visit.phone is None and visit.phone_hash is None and visit.notice_version is None
    assert session.scalar(select(VerificationCode.id).where(VerificationCode.visit_id == visit.id)) is None

    sent = client.post(link + "/phone", data={"visit": key, "phone": "13812345678", "consent": "0"})
    assert sent.status_code == 200 and "138****5678" in sent.text
    session.refresh(visit)
    assert visit.notice_version == 0 and visit.consented_at is not None
    record = session.scalar(select(ConsentRecord).where(ConsentRecord.corp_id == corp.id))
    assert (record.external_userid, record.purpose, record.granted, record.source, record.notice_version) == (
        "wmCustomer042", "personal_info", True, "h5", 0)


def test_a_new_version_must_be_agreed_to_again(session):
    corp = make_corp(session)
    community = _gate(session, corp)
    officer = principal_of(make_staff(session, corp, roles=["compliance"]))
    client = make_client(session)
    link = v.link_path(community)
    _page, key = _open_page(client, link)
    published = notices.publish(session, corp_id=corp.id, actor=officer, title="个人信息处理规则（2026版）",
                                text=NOTICE_TEXT)
    assert published.version == 1
    stale = client.post(link + "/phone", data={"visit": key, "phone": "13812345678", "consent": "0"})
    assert stale.status_code == 422 and "已更新" in stale.text and 'name="consent" value="1"' in stale.text
    ok = client.post(link + "/phone", data={"visit": key, "phone": "13812345678", "consent": "1"})
    assert ok.status_code == 200
    notice = client.get(link + "/privacy?version=1")
    assert notice.status_code == 200 and NOTICE_TEXT in notice.text and "第 1 版" in notice.text
    assert "本行" not in client.get(link + "/privacy?version=0").text  # the built-in text stays readable as it was
    assert client.get(link + "/privacy?version=7").status_code == 404


def test_publishing_checks_the_text_and_never_edits_a_version(session):
    corp = make_corp(session)
    officer = principal_of(make_staff(session, corp, roles=["compliance"]))
    with pytest.raises(InvalidInput) as short:
        notices.publish(session, corp_id=corp.id, actor=officer, title="规则", text="太短")
    assert short.value.field == "text"
    with pytest.raises(InvalidInput) as untitled:
        notices.publish(session, corp_id=corp.id, actor=officer, title=" ", text=NOTICE_TEXT)
    assert untitled.value.field == "title"
    notices.publish(session, corp_id=corp.id, actor=officer, title="第一版", text=NOTICE_TEXT)
    notices.publish(session, corp_id=corp.id, actor=officer, title="第二版", text=NOTICE_TEXT + "（修订）")
    assert [n.version for n in notices.versions(session, corp_id=corp.id)] == [2, 1]
    assert notices.get_version(session, corp_id=corp.id, version=1).title == "第一版"
    assert notices.current(session, corp_id=corp.id).title == "第二版"


def test_the_console_page_publishes_for_compliance_only(session):
    corp = make_corp(session)
    officer = console_user(session, corp, roles=["compliance"])
    page = officer.get("/compliance/privacy-notice")
    assert page.status_code == 200 and "生效版本：第 0 版" in page.text
    done = officer.post("/compliance/privacy-notice", {"title": "个人信息处理规则", "text": NOTICE_TEXT})
    assert done.status_code == 303
    assert "生效版本：第 1 版" in officer.get(done.headers["location"]).text
    advisor = console_user(session, corp, roles=["advisor"])
    assert advisor.get("/compliance/privacy-notice").status_code == 403
