"""The verification gate (门槛社群) at the service layer and over HTTP: phone → firm hook → SMS code →
verified, every limit and expiry, the signed hook and its failures, links that were tampered with,
tenancy, and the identity link made by the customers domain."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from customers.factories import job_context, make_customer
from siyu import pii
from siyu.acquisition import verification as v
from siyu.acquisition.models import CustomerVerification, GatedVisit, SmsOutbox, VerificationCode
from siyu.config import get_settings
from siyu.customers import jobs as customer_jobs
from siyu.customers.models import Customer
from siyu.errors import InvalidInput, NotFound, Unavailable
from siyu.jobs.models import Job
from tenancy.factories import console_user, fast_argon2, make_client, make_corp, make_staff  # noqa: F401

PHONE = "13812345678"
IP = "203.0.113.7"
T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SECRET = "firm-hook-secret-0123456789"


class Outbox:
    """An SMS provider that keeps what it was given (the tests read the codes from it)."""

    name = "test"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, phone: str, text: str) -> None:
        self.sent.append((phone, text))

    def last_code(self) -> str:
        return re.search(r"\d{6}", self.sent[-1][1]).group(0)


class FirmHook:
    """The firm's system: a real HTTP server that checks the signature and knows some phones."""

    def __init__(self, customers: dict[str, str]) -> None:
        self.customers, self.delay, self.status, self.requests = customers, 0.0, 200, []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                signed = hmac.compare_digest(self.headers.get("X-Siyu-Signature", ""), expected)
                hook.requests.append((json.loads(body), signed))
                time.sleep(hook.delay)
                phone = json.loads(body)["phone"]
                answer = ({"customer": phone in hook.customers, "firm_customer_id": hook.customers.get(phone)}
                          if signed else {"error": "bad signature"})
                data = json.dumps(answer).encode() if hook.status != 299 else b"not json"
                self.send_response(200 if hook.status == 299 else hook.status if signed else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/siyu/verify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def corp(session):
    return make_corp(session, name="门槛银行")


@pytest.fixture
def outbox():
    return Outbox()


@pytest.fixture
def firm(session, corp):
    hook = FirmHook({PHONE: "C0001234"})
    v.save_hook(session, corp_id=corp.id, actor="test", url=hook.url, secret=SECRET)
    yield hook
    hook.close()


def _community(session, corp, verify_by="sms", **kw):
    return v.save_community(session, corp_id=corp.id, actor="test", name=kw.pop("name", "财富会员群"),
                            verify_by=verify_by, qr_image=kw.pop("qr_image", PNG),
                            join_url=kw.pop("join_url", "https://h5.example/join/1"), **kw)


def _open(session, community, *, ext=None, ip=IP, now=T0):
    token = v.link_token(community, external_userid=ext)
    _c, visit, key = v.open_visit(session, token=token, ip=ip, now=now)
    return token, key, visit


def _send(session, token, key, outbox, *, phone=PHONE, ip=IP, now=T0):
    return v.request_code(session, token=token, key=key, phone=phone, ip=ip, now=now, provider=outbox,
                          consent_version=0)


# --- phone numbers --------------------------------------------------------------------------------------

MOBILE = st.builds(lambda second, rest: f"1{second}{rest}", st.sampled_from("3456789"),
                   st.text(alphabet="0123456789", min_size=9, max_size=9))


@given(phone=MOBILE, prefix=st.sampled_from(["", "+86", "86", "0086", "+86 "]),
       sep=st.sampled_from(["", " ", "-"]), wide=st.booleans())
@settings(max_examples=200, deadline=None)
def test_phone_normaliser_accepts_the_ways_people_write_a_mobile(phone, prefix, sep, wide):
    written = prefix + phone[:3] + sep + phone[3:7] + sep + phone[7:]
    if wide:  # full-width digits from a Chinese input method
        written = written.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789+"})
    assert v.normalise_phone(written) == phone


@given(raw=st.text(max_size=30))
@settings(max_examples=300, deadline=None)
def test_phone_normaliser_returns_a_mobile_or_refuses_naming_the_field(raw):
    try:
        phone = v.normalise_phone(raw)
    except InvalidInput as exc:
        assert exc.field == "phone"
    else:
        assert re.fullmatch(r"1[3-9]\d{9}", phone)


@pytest.mark.parametrize("raw", ["12812345678", "1381234567", "138123456789", "023-12345678", "", "１３８", None])
def test_not_a_mobile(raw):
    with pytest.raises(InvalidInput):
        v.normalise_phone(raw)


# --- the SMS flow ---------------------------------------------------------------------------------------------


def test_sms_verification_records_publishes_and_shows_the_code_only_then(session, corp, outbox):
    community = _community(session, corp)
    token, key, visit = _open(session, community, ext="wmCustomer001")
    visit = _send(session, token, key, outbox)
    assert visit.status == "code_sent" and outbox.sent[0][0] == PHONE and "5 分钟" in outbox.sent[0][1]
    code = outbox.last_code()
    stored = session.scalar(select(VerificationCode).where(VerificationCode.visit_id == visit.id))
    assert code not in stored.code_hash and stored.expires_at - stored.sent_at == dt.timedelta(minutes=5)

    done = v.enter_code(session, token=token, key=key, code=code, ip=IP, now=T0 + dt.timedelta(minutes=1))
    assert done.status == "verified"
    record = session.scalar(select(CustomerVerification).where(CustomerVerification.visit_id == visit.id))
    assert (record.method, record.external_userid, record.community_id) == ("sms", "wmCustomer001", community.id)
    assert record.phone == PHONE and record.phone_hash == pii.lookup_hash(PHONE, kind="phone")
    raw = session.execute(text("SELECT phone FROM customer_verification WHERE id = :i"), {"i": record.id}).scalar()
    assert PHONE not in raw  # encrypted at rest
    job = session.scalar(select(Job).where(Job.name == "event:customer.verified:customers.link_verified",
                                           Job.corp_id == corp.id))
    assert job.payload["external_userid"] == "wmCustomer001"
    # the code is spent: entering it again on the verified visit changes nothing, a new visit needs its own
    assert v.enter_code(session, token=token, key=key, code=code, ip=IP, now=T0).status == "verified"
    assert v.community_stats(session, corp_id=corp.id, community_ids=[community.id])[community.id] == \
        v.GateStats(opened=1, codes_sent=1, verified=1, failed=0)


def test_codes_expire_after_five_minutes(session, corp, outbox):
    token, key, _visit = _open(session, _community(session, corp))
    _send(session, token, key, outbox)
    with pytest.raises(InvalidInput, match="expired") as exc:
        v.enter_code(session, token=token, key=key, code=outbox.last_code(), ip=IP,
                     now=T0 + dt.timedelta(minutes=5))
    assert exc.value.field == "code"
    # a new code (after the 60 s interval) works
    _send(session, token, key, outbox, now=T0 + dt.timedelta(minutes=6))
    assert v.enter_code(session, token=token, key=key, code=outbox.last_code(), ip=IP,
                        now=T0 + dt.timedelta(minutes=7)).status == "verified"


def test_five_wrong_entries_kill_the_code(session, corp, outbox):
    community = _community(session, corp)
    token, key, visit = _open(session, community)
    _send(session, token, key, outbox)
    right = outbox.last_code()
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1):
        with pytest.raises(InvalidInput, match=f"{left} tries left"):
            v.enter_code(session, token=token, key=key, code=wrong, ip=IP, now=T0)
    with pytest.raises(InvalidInput, match="too often"):
        v.enter_code(session, token=token, key=key, code=wrong, ip=IP, now=T0)
    with pytest.raises(InvalidInput, match="too often"):  # dead: even the right code no longer works
        v.enter_code(session, token=token, key=key, code=right, ip=IP, now=T0)
    assert visit.status == "failed"
    assert v.community_stats(session, corp_id=corp.id, community_ids=[community.id])[community.id].failed == 1
    with pytest.raises(InvalidInput, match="6-digit"):  # not a code at all: not counted as a wrong entry
        v.enter_code(session, token=token, key=key, code="12ab", ip=IP, now=T0)


def test_a_new_code_replaces_the_previous_one(session, corp, outbox):
    token, key, _visit = _open(session, _community(session, corp))
    _send(session, token, key, outbox)
    first = outbox.last_code()
    _send(session, token, key, outbox, now=T0 + dt.timedelta(seconds=61))
    if first != outbox.last_code():
        with pytest.raises(InvalidInput):
            v.enter_code(session, token=token, key=key, code=first, ip=IP, now=T0 + dt.timedelta(seconds=62))
    assert v.enter_code(session, token=token, key=key, code=outbox.last_code(), ip=IP,
                        now=T0 + dt.timedelta(seconds=62)).status == "verified"


def test_one_code_per_minute_and_five_per_hour_per_phone(session, corp, outbox):
    community = _community(session, corp)
    token, key, _visit = _open(session, community)
    _send(session, token, key, outbox)
    with pytest.raises(v.RateLimited, match="in 31 seconds"):
        _send(session, token, key, outbox, now=T0 + dt.timedelta(seconds=30))
    # across visits too: the limit is the phone's
    for i in range(1, 5):
        token2, key2, _ = _open(session, community, now=T0 + dt.timedelta(minutes=i))
        _send(session, token2, key2, outbox, now=T0 + dt.timedelta(minutes=i))
    token3, key3, _ = _open(session, community, now=T0 + dt.timedelta(minutes=10))
    with pytest.raises(v.RateLimited, match="in 50 minutes") as exc:
        _send(session, token3, key3, outbox, now=T0 + dt.timedelta(minutes=10))
    assert exc.value.status_code == 429 and len(outbox.sent) == 5
    _send(session, token3, key3, outbox, now=T0 + dt.timedelta(minutes=61))  # an hour after the first
    assert len(outbox.sent) == 6
    # another phone is not held back by this one
    token4, key4, _ = _open(session, community, now=T0 + dt.timedelta(minutes=10))
    _send(session, token4, key4, outbox, phone="13900001111", now=T0 + dt.timedelta(minutes=10))


def test_limits_per_network(session, corp, outbox):
    community = _community(session, corp)
    for i in range(v.MAX_SENDS_PER_IP_HOUR):
        token, key, _ = _open(session, community)
        _send(session, token, key, outbox, phone=f"1390000{i:04d}")
    token, key, _ = _open(session, community)
    with pytest.raises(v.RateLimited, match="network"):
        _send(session, token, key, outbox, phone="13700000000")
    _send(session, token, key, outbox, phone="13700000000", ip="198.51.100.1")  # another network

    # wrong entries: 20 per network per hour, across codes
    other = _community(session, corp, name="第二个群")
    ip = "192.0.2.9"
    for i in range(4):
        token, key, _ = _open(session, other, ip=ip)
        _send(session, token, key, outbox, phone=f"1360000{i:04d}", ip=ip)
        wrong = f"{(int(outbox.last_code()) + 1) % 10**6:06d}"
        for _ in range(5):
            with pytest.raises(InvalidInput):
                v.enter_code(session, token=token, key=key, code=wrong, ip=ip, now=T0)
    token, key, _ = _open(session, other, ip=ip)
    _send(session, token, key, outbox, phone="13500000000", ip=ip)
    with pytest.raises(v.RateLimited, match="wrong codes"):
        v.enter_code(session, token=token, key=key, code=outbox.last_code(), ip=ip, now=T0)

    # link openings per network
    for _ in range(v.MAX_OPENS_PER_IP_HOUR):
        _open(session, other, ip="192.0.2.200")
    with pytest.raises(v.RateLimited):
        _open(session, other, ip="192.0.2.200")


def test_console_provider_masks_the_phone_and_shows_the_code_only_in_demo_mode(caplog):
    with caplog.at_level(logging.INFO, logger="siyu.acquisition.verification"):
        v.ConsoleSms(show_codes=False).send(PHONE, v.CODE_TEXT.format(code="123456"))
        v.ConsoleSms(show_codes=True).send(PHONE, v.CODE_TEXT.format(code="654321"))
    hidden, shown = caplog.messages[-2:]
    assert PHONE not in hidden + shown and "138****5678" in hidden
    assert "123456" not in hidden and "******" in hidden and "654321" in shown


@pytest.fixture
def show_codes(monkeypatch):
    monkeypatch.setenv("SIYU_SMS_SHOW_CODES", "true")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_the_outbox_keeps_texts_only_in_demo_mode(session, corp, outbox):
    token, key, _ = _open(session, _community(session, corp))
    _send(session, token, key, outbox)
    (row,) = session.scalars(select(SmsOutbox).where(SmsOutbox.corp_id == corp.id)).all()
    assert row.text == "" and row.phone == PHONE and v.sms_outbox(session, corp_id=corp.id)[0].phone == "138****5678"


def test_the_outbox_shows_the_code_in_demo_mode(session, corp, outbox, show_codes):
    token, key, _ = _open(session, _community(session, corp))
    _send(session, token, key, outbox)
    assert outbox.last_code() in v.sms_outbox(session, corp_id=corp.id)[0].text


def test_a_failing_provider_leaves_no_live_code(session, corp):
    class Broken:
        name = "broken"

        def send(self, phone, text):
            raise ConnectionError("carrier down")

    token, key, visit = _open(session, _community(session, corp))
    with pytest.raises(Unavailable):
        _send(session, token, key, Broken())
    assert session.scalar(select(VerificationCode).where(VerificationCode.visit_id == visit.id)).dead
    assert session.scalar(select(SmsOutbox.state).where(SmsOutbox.corp_id == corp.id)) == "failed"


# --- the firm's hook ------------------------------------------------------------------------------------------


def test_firm_and_sms_both_required(session, corp, outbox, firm):
    community = _community(session, corp, verify_by="both")
    token, key, visit = _open(session, community, ext="wmCustomer002")
    _send(session, token, key, outbox)
    (request, signed), = firm.requests
    assert signed and request["phone"] == PHONE and request["community_id"] == community.id
    assert visit.firm_customer_id == "C0001234"
    done = v.enter_code(session, token=token, key=key, code=outbox.last_code(), ip=IP, now=T0)
    record = session.scalar(select(CustomerVerification).where(CustomerVerification.visit_id == done.id))
    assert (record.method, record.firm_customer_id) == ("both", "C0001234")


def test_firm_says_not_a_customer_no_code_is_sent(session, corp, outbox, firm):
    """(Answered like a customer's number: tests/security/test_verification_gate.py.)"""
    token, key, visit = _open(session, _community(session, corp, verify_by="both"))
    _send(session, token, key, outbox, phone="13900009999")
    assert outbox.sent == [] and visit.status == "refused"


def test_firm_verification_still_needs_the_code(session, corp, outbox, firm):
    token, key, _ = _open(session, _community(session, corp, verify_by="firm"))
    assert _send(session, token, key, outbox).status == "code_sent" and len(outbox.sent) == 1


@pytest.mark.parametrize("failure", ["timeout", "error", "garbage", "down", "bad_secret"])
def test_firm_hook_failures_send_no_code(session, corp, outbox, firm, monkeypatch, failure):
    token, key, visit = _open(session, _community(session, corp, verify_by="both"))
    if failure == "timeout":
        monkeypatch.setattr(v, "HOOK_TIMEOUT", 0.3)
        firm.delay = 1.0
    elif failure == "error":
        firm.status = 500
    elif failure == "garbage":
        firm.status = 299
    elif failure == "down":
        firm.close()
    else:
        v.save_hook(session, corp_id=corp.id, actor="test", url=firm.url, secret="another-secret-0123456789")
    with pytest.raises(Unavailable) as exc:
        _send(session, token, key, outbox)
    assert exc.value.field == "phone" and "no code was sent" in exc.value.message
    if failure == "timeout":
        assert "in time" in exc.value.message
    assert outbox.sent == [] and visit.status == "opened" and visit.phone is None
    assert session.scalar(select(VerificationCode).where(VerificationCode.visit_id == visit.id)) is None


def test_hook_signature_is_hmac_sha256_of_the_body():
    assert v.sign("k", b'{"a":1}') == hmac.new(b"k", b'{"a":1}', hashlib.sha256).hexdigest()


def test_hook_settings(session, corp, firm):
    with pytest.raises(InvalidInput) as exc:
        v.save_hook(session, corp_id=corp.id, actor="t", url="ftp://firm", secret=SECRET)
    assert exc.value.field == "url"
    with pytest.raises(InvalidInput) as exc:
        v.save_hook(session, corp_id=make_corp(session).id, actor="t", url=firm.url, secret="short")
    assert exc.value.field == "secret"
    _community(session, corp, verify_by="firm")
    with pytest.raises(InvalidInput, match="change it first"):
        v.save_hook(session, corp_id=corp.id, actor="t", url="")
    v.save_hook(session, corp_id=corp.id, actor="t", url=firm.url + "2")  # the secret is kept
    assert v.get_hook(session, corp_id=corp.id).secret == SECRET
    raw = session.execute(text("SELECT secret FROM verification_hook WHERE corp_id = :c"), {"c": corp.id}).scalar()
    assert SECRET not in raw


# --- links, communities and tenancy -------------------------------------------------------------------------------


def test_tampered_links_are_not_found(session, corp):
    community = _community(session, corp)
    other = _community(session, corp, name="另一个群")
    token = v.link_token(community, external_userid="wmCustomer003")
    cid, ext, sig = token.split(".")
    for bad in (f"{cid}.wmSomeoneElse.{sig}", f"{other.id}.{ext}.{sig}", f"{cid}.{sig}", f"{cid}.{ext}.{sig[:-2]}AA",
                "", "1", "x.y.z", f"{cid}.{ext}.{sig}.extra", "9" * 40 + ".a"):
        with pytest.raises(NotFound) as exc:
            v.read_token(session, token=bad)
        assert exc.value.field == "token"
    assert v.read_token(session, token=token) == (community, "wmCustomer003")
    assert v.read_token(session, token=v.link_token(community)) == (community, None)
    with pytest.raises(InvalidInput):
        v.link_token(community, external_userid="not/valid")
    # a visit of one community cannot be carried on with another's link
    _c, _visit, key = v.open_visit(session, token=token, ip=IP)
    with pytest.raises(NotFound):
        v.get_visit(session, token=v.link_token(other), key=key)
    # a paused community's link stops working
    v.save_community(session, corp_id=corp.id, actor="t", name=community.name, verify_by="sms", qr_image=None,
                     join_url=community.join_url, is_active=False, community_id=community.id)
    with pytest.raises(NotFound, match="no longer"):
        v.read_token(session, token=token)


def test_links_of_another_corp_and_its_communities_stay_there(session, corp):
    mine = _community(session, corp)
    other_corp = make_corp(session, name="别家银行")
    theirs = _community(session, other_corp)
    with pytest.raises(NotFound):
        v.get_community(session, corp_id=corp.id, community_id=theirs.id)
    assert [c.id for c in v.list_communities(session, corp_id=corp.id)] == [mine.id]
    # the signature binds the corp: the same ids under another corp's key do not verify
    assert v.link_token(mine).split(".")[1] != v._signature(other_corp.id, mine.id, "")


def test_community_needs_a_group_code_and_the_hook_for_firm_checks(session, corp):
    with pytest.raises(InvalidInput) as exc:
        v.save_community(session, corp_id=corp.id, actor="t", name="群", verify_by="sms")
    assert exc.value.field == "qr_image"
    with pytest.raises(InvalidInput) as exc:
        v.save_community(session, corp_id=corp.id, actor="t", name="群", verify_by="sms", qr_image=b"GIF89a....")
    assert exc.value.field == "qr_image"
    with pytest.raises(InvalidInput) as exc:
        v.save_community(session, corp_id=corp.id, actor="t", name="群", verify_by="firm",
                         join_url="https://h5.example/j")
    assert exc.value.field == "verify_by"
    with pytest.raises(InvalidInput) as exc:
        v.save_community(session, corp_id=corp.id, actor="t", name="群", verify_by="sms", join_url="javascript:x")
    assert exc.value.field == "join_url"
    community = v.save_community(session, corp_id=corp.id, actor="t", name="群", verify_by="sms",
                                 qr_image_url="https://h5.example/qr.png")
    assert v.group_code_image(community) == "https://h5.example/qr.png"
    with pytest.raises(InvalidInput) as exc:
        v.save_community(session, corp_id=corp.id, actor="t", name="群", verify_by="sms", join_url="https://a.b")
    assert exc.value.field == "name"


def test_verified_customer_is_linked_by_the_customers_domain(session, corp, outbox, firm):
    make_staff(session, corp, name="张三", wecom_userid="zhangsan")
    customer = make_customer(session, corp.id, userid="zhangsan")
    token, key, _ = _open(session, _community(session, corp, verify_by="firm"), ext=customer.external_userid)
    _send(session, token, key, outbox)
    v.enter_code(session, token=token, key=key, code=outbox.last_code(), ip=IP, now=T0)
    job = session.scalar(select(Job).where(Job.name == "event:customer.verified:customers.link_verified",
                                           Job.corp_id == corp.id))
    customer_jobs.link_verified(session, job.payload, job_context(corp.id))
    session.expire_all()
    assert session.get(Customer, customer.id).firm_customer_id == "C0001234"
    # a contact Siyu does not know is left alone, without an error
    customer_jobs.link_verified(session, {**job.payload, "external_userid": "wmUnknown"}, job_context(corp.id))


def test_a_verified_customer_is_found_by_the_last_digits_of_the_phone(session, corp, outbox):
    from siyu.customers import service as customers
    from tenancy.factories import principal_of

    make_staff(session, corp, name="张三", wecom_userid="zhangsan")
    ops = principal_of(make_staff(session, corp, roles=["operations"]))
    customer = make_customer(session, corp.id, userid="zhangsan", name="周建国")
    other = make_customer(session, corp.id, userid="zhangsan", name="吴丽")

    def found(q: str) -> set[int]:
        page = customers.list_customers(session, principal=ops, filters=customers.make_filters(q=q))
        return {r.id for r in page.rows}

    assert found("5678") == set()  # not verified yet: no phone is known
    token, key, _ = _open(session, _community(session, corp), ext=customer.external_userid)
    _send(session, token, key, outbox)
    v.enter_code(session, token=token, key=key, code=outbox.last_code(), ip=IP, now=T0)
    job = session.scalar(select(Job).where(Job.name == "event:customer.verified:customers.link_verified",
                                           Job.corp_id == corp.id))
    customer_jobs.link_verified(session, job.payload, job_context(corp.id))  # the shared job's subscriber
    assert found("5678") == {customer.id} and found(PHONE[-4:]) == {customer.id}
    assert other.id not in found("5678") and found("9999") == set()


# --- over HTTP ----------------------------------------------------------------------------------------------------


def test_h5_page_over_http(session, corp, show_codes):
    community = _community(session, corp, name="理财会员群")
    client = make_client(session)
    link = v.link_path(community, external_userid="wmCustomer009")

    page = client.get(link)
    assert page.status_code == 200 and "验证客户身份" in page.text and "理财会员群" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "data:image/png" not in page.text and community.join_url not in page.text  # not even in the source
    key = re.search(r'name="visit" value="([^"]+)"', page.text).group(1)

    bad = client.post(link + "/phone", data={"visit": key, "phone": "12345", "consent": "0"})
    assert bad.status_code == 422 and 'data-field="phone"' in bad.text and "请输入 11 位手机号码" in bad.text

    sent = client.post(link + "/phone", data={"visit": key, "phone": "138 1234 5678", "consent": "0"})
    assert sent.status_code == 200 and "138****5678" in sent.text
    assert community.join_url not in sent.text and "data:image/png" not in sent.text
    again = client.post(link + "/phone", data={"visit": key, "phone": PHONE, "consent": "0"})
    assert again.status_code == 429 and "秒后再重新获取" in again.text

    code = re.search(r"\d{6}", v.sms_outbox(session, corp_id=corp.id)[0].text).group(0)
    wrong = client.post(link + "/code", data={"visit": key, "code": f"{(int(code) + 1) % 10**6:06d}"})
    assert wrong.status_code == 422 and "还可尝试 4 次" in wrong.text and 'data-field="code"' in wrong.text

    done = client.post(link + "/code", data={"visit": key, "code": code})
    assert done.status_code == 200 and "已验证" in done.text
    assert "data:image/png;base64," in done.text and community.join_url in done.text
    assert session.scalar(select(GatedVisit.status).where(GatedVisit.community_id == community.id)) == "verified"

    english = client.get(link + "?lang=en")
    assert "Verify that you are our customer" in english.text

    tampered = client.get(link.replace("wmCustomer009", "wmCustomer010"))
    assert tampered.status_code == 404 and 'data-field="token"' in tampered.text
    stale = client.post(link + "/code", data={"visit": "x" * 30, "code": code})
    assert stale.status_code == 404 and "this page has expired" in stale.text  # English chosen above, kept


def test_console_pages_and_roles(session, corp):
    ops = console_user(session, corp, roles=("operations",))
    r = ops.client.post("/acquisition/gated", data={"name": "高净值客户群", "verify_by": "sms",
                                                    "join_url": "https://h5.example/join/9",
                                                    "csrf_token": ops.csrf},
                        files={"qr_image": ("qr.png", PNG, "image/png")}, follow_redirects=False)
    assert r.status_code == 303, r.text
    community = v.list_communities(session, corp_id=corp.id)[0]
    assert community.qr_image == PNG
    detail = ops.client.get(r.headers["location"])
    assert "高净值客户群" in detail.text and "/h5/gated/" in detail.text
    personal = ops.client.get(f"/acquisition/gated/{community.id}", params={"external_userid": "wmAbc"})
    assert v.link_token(community, external_userid="wmAbc") in personal.text
    refused = ops.client.post("/acquisition/gated", data={"name": "", "verify_by": "sms", "csrf_token": ops.csrf})
    assert refused.status_code == 422 and 'data-field="name"' in refused.text
    assert ops.client.get(f"/acquisition/gated/{community.id}/qr").content == PNG
    assert ops.client.get("/acquisition/sms-outbox").status_code == 403  # the administrator's

    auditor = console_user(session, corp, roles=("auditor",))
    listing = auditor.client.get("/acquisition/gated")
    assert listing.status_code == 200 and "高净值客户群" in listing.text
    assert 'data-testid="gated-form"' not in listing.text  # reads, does not edit
    assert auditor.client.post("/acquisition/gated", data={"name": "x", "verify_by": "sms",
                                                           "csrf_token": auditor.csrf}).status_code == 403
    advisor = console_user(session, corp, roles=("advisor",))
    assert advisor.client.get("/acquisition/gated").status_code == 403
