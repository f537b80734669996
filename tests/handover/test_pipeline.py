"""Customer handover end to end over real HTTP: Siyu's worker hands a resigned advisor's 120
customers and their groups to another advisor at the emulated WeCom (two calls of at most 100),
WeCom's 24 h are driven by the emulator clock, transfer_result is polled until everything is
settled, the follow relations move in Siyu; a customer the take-over advisor already has fails
(transfer_fail callback), is retried and then escalated. An in-service transfer carries its
reviewed message, and a customer who refuses is escalated."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select

from siyu.customers import contacts
from siyu.customers.models import CustomerFollow
from siyu.db import session_scope, utcnow
from siyu.handover import jobs as handover_jobs
from siyu.handover import service
from siyu.tenancy import service as tenancy
from siyu.wecom import service as wecom
from siyu.wecom.crypto import generate_aes_key
from siyu.wecom.models import WecomOutbound
from wecom.conftest import emulator  # noqa: F401  (the emulator server fixture)
from wecom.test_pipeline import siyu_server, wait_for, worker  # noqa: F401  (server and worker fixtures)

pytestmark = pytest.mark.slow

DAY = 24 * 3600
RESIGNED_CALL = "externalcontact/resigned/transfer_customer"


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(handover_jobs, "POLL_SECONDS", 0.3)
    monkeypatch.setattr(handover_jobs, "RETRY_SECONDS", 0.0)


def _wire(emulator, siyu_server, *, customers: int, also_lisi: int = 0):  # noqa: F811
    """A Siyu corp and an emulated corp connected both ways; zhangsan has `customers` customers
    (known to both), the first `also_lisi` of them are also lisi's at WeCom (Siyu never heard)."""
    slug = "hand-" + uuid.uuid4().hex[:8]
    wecom_id = "ww" + uuid.uuid4().hex[:16]
    secret, token, aes_key = "secret-" + uuid.uuid4().hex, "tok" + uuid.uuid4().hex[:10], generate_aes_key()
    exts = [f"wm{uuid.uuid4().hex[:24]}" for _ in range(customers)]
    emulator.post("/corps", {
        "corp_id": wecom_id, "name": "继承测试银行", "secret": secret,
        "staff": [{"userid": u, "name": n} for u, n in (("zhangsan", "张三"), ("lisi", "李四"), ("wangwu", "王五"))],
        "customers": [{"external_userid": e, "follow": ["zhangsan", "lisi"] if i < also_lisi else ["zhangsan"]}
                      for i, e in enumerate(exts)],
        "callback": {"url": f"{siyu_server.base_url}/wecom/callback/{slug}", "token": token,
                     "encoding_aes_key": aes_key},
        "limits": {"callback_retry_delay": 0.2, "callback_timeout": 2.0},
    }, expect=201)
    with session_scope() as s:
        corp = tenancy.create_corp(s, slug=slug, name="继承测试银行")
        for userid, name in (("zhangsan", "张三"), ("lisi", "李四"), ("wangwu", "王五")):
            tenancy.create_staff(s, corp_id=corp.id, login=f"{userid}.{slug}", name=name, roles=["advisor"],
                                 password=None, wecom_userid=userid)
        wecom.configure_connection(s, corp_id=corp.id, actor="test", wecom_corp_id=wecom_id, secret=secret,
                                   token=token, aes_key=aes_key, base_url=emulator.api_url)
        for ext in exts:
            contacts.record_add(s, corp_id=corp.id, external_userid=ext, wecom_userid="zhangsan", at=utcnow())
        return corp.id, wecom_id, exts


def _states(corp_id: int, handover_id: int) -> dict[str, tuple[str, bool]]:
    with session_scope() as s:
        handover = service.get_handover(s, corp_id=corp_id, handover_id=handover_id)
        return {i.target_id: (i.state, i.escalated) for i in service.list_items(s, handover=handover)}


def _advance_until(emulator, corp_id, handover_id, done):  # noqa: F811
    """Move WeCom's clock past each 24 h takeover while anything waits, until `done` holds.

    At most once every 2 s: each move also expires WeCom's access tokens, and a call refused with
    42001 is retried after a refresh; moving the clock again inside that window (on a slow machine)
    would expire the fresh token too and push the job into the queue's backoff."""
    last = [0.0]

    def step():
        states = _states(corp_id, handover_id)
        if done(states):
            return True
        if any(state == "waiting" for state, _ in states.values()) and time.monotonic() - last[0] > 2.0:
            emulator.post("/clock/advance", {"seconds": DAY + 1})
            last[0] = time.monotonic()
        return False
    wait_for(step, timeout=90)


def test_resigned_handover_of_120_customers_and_their_groups(emulator, siyu_server, worker, fast):  # noqa: F811
    corp_id, wecom_id, exts = _wire(emulator, siyu_server, customers=120, also_lisi=1)
    stuck = exts[0]
    groups = [emulator.post(f"/corps/{wecom_id}/group_chats", {"owner": "zhangsan", "name": f"理财群{i}",
                                                               "members": exts[i * 10:(i + 1) * 10]})["chat_id"]
              for i in range(2)]
    emulator.post(f"/corps/{wecom_id}/staff/zhangsan/resign")
    with session_scope() as s:
        handover_id = service.create_handover(s, corp_id=corp_id, actor="test", kind="resigned",
                                              handover_userid="zhangsan", takeover_userids=["lisi"],
                                              all_groups=True).id

    def finished(states):
        return len(states) == 122 and all(st in ("done", "limit", "failed") and (st == "done" or esc)
                                          for st, esc in states.values())
    _advance_until(emulator, corp_id, handover_id, finished)
    states = _states(corp_id, handover_id)
    # lisi had the stuck customer already: WeCom keeps no record of that transfer (transfer_result
    # status 5, no transfer_fail event; customer_limit_exceed is only for a take-over at its limit).
    assert {e: s for e, s in states.items() if s != ("done", False)} == {stuck: ("failed", True)}
    assert all(states[g] == ("done", False) for g in groups)

    # (Moving WeCom's clock by days expires access tokens: those 42001 answers are refreshed and retried.)
    calls = [c for c in emulator.get(f"/corps/{wecom_id}/calls")
             if c["endpoint"] == RESIGNED_CALL and c["errcode"] != 42001]
    assert len(calls) == 2 + 2, "120 customers in two calls, then two retries of the stuck one"
    # 120 first transfers, and one more record for each retry WeCom took as a new transfer (a retry that
    # met the previous one still being settled is answered 40129 and makes no new record).
    assert 120 + 1 <= len(emulator.get(f"/corps/{wecom_id}/transfers")) <= 120 + 2
    owners = {c["chat_id"]: c["owner"] for c in emulator.get(f"/corps/{wecom_id}/group_chats")}
    assert [owners[g] for g in groups] == ["lisi", "lisi"]
    follows = {(f["userid"], f["external_userid"]) for f in emulator.get(f"/corps/{wecom_id}/follows")}
    assert all(("lisi", e) in follows for e in exts) and not any(("zhangsan", e) in follows for e in exts[1:])

    # Siyu's follow relations moved with them (customer.transferred), and nothing was sent twice.
    def moved():
        with session_scope() as s:
            rows = s.execute(select(CustomerFollow.wecom_userid, CustomerFollow.status)
                             .where(CustomerFollow.corp_id == corp_id)).all()
        return sum(1 for u, st in rows if u == "lisi" and st == "active") == 119 and rows
    rows = wait_for(moved, timeout=30)
    assert sum(1 for u, st in rows if u == "zhangsan" and st == "active") == 1  # the stuck one stays
    with session_scope() as s:
        outs = s.scalars(select(WecomOutbound).where(WecomOutbound.corp_id == corp_id)).all()
        assert sorted((o.endpoint, o.state) for o in outs) == [
            ("groupchat/transfer", "sent"), *[("resigned/transfer_customer", "sent")] * 4]
        handover = service.get_handover(s, corp_id=corp_id, handover_id=handover_id)
        assert handover.status == "attention"
        assert service.escalation_count(s, corp_id=corp_id) == 1


def test_in_service_transfer_with_a_reviewed_message_and_a_refusal(emulator, siyu_server, worker, fast):  # noqa: F811
    corp_id, wecom_id, exts = _wire(emulator, siyu_server, customers=3)
    message = "您好，我的同事王五将继续为您服务。"
    with session_scope() as s:
        handover_id = service.create_handover(s, corp_id=corp_id, actor="test", kind="in_service",
                                              handover_userid="zhangsan", takeover_userids=["wangwu"],
                                              message=message).id
    transfers = wait_for(lambda: len(t := emulator.get(f"/corps/{wecom_id}/transfers")) == 3 and t, timeout=30)
    assert {t["success_msg"] for t in transfers} == {message}
    emulator.post(f"/corps/{wecom_id}/transfers/refuse", {"external_userid": exts[1]})
    _advance_until(emulator, corp_id, handover_id,
                   lambda states: all(st != "waiting" and st != "pending" for st, _ in states.values()))
    states = _states(corp_id, handover_id)
    assert states == {exts[0]: ("done", False), exts[1]: ("refused", True), exts[2]: ("done", False)}
    with session_scope() as s:
        # Siyu counts these transfers towards each customer's two per 90 days.
        assert service.recent_transfer_counts(s, corp_id=corp_id, external_userids=exts) == {e: 1 for e in exts}




def test_a_resigned_handover_moves_only_what_wecom_lists_as_unassigned(emulator, siyu_server, worker, fast):  # noqa: F811
    # zhangsan has not resigned at WeCom: WeCom lists none of his customers, so no call is made.
    corp_id, wecom_id, exts = _wire(emulator, siyu_server, customers=3)
    with session_scope() as s:
        first = service.create_handover(s, corp_id=corp_id, actor="test", kind="resigned",
                                        handover_userid="zhangsan", takeover_userids=["lisi"]).id
    states = wait_for(lambda: (st := _states(corp_id, first)) and all(v[0] == "skipped" for v in st.values()) and st,
                      timeout=30)
    assert set(states) == set(exts)
    with session_scope() as s:
        items = service.list_items(s, handover=service.get_handover(s, corp_id=corp_id, handover_id=first))
    assert {i.reason for i in items} == {service.NOT_LISTED_MEMBER} and {i.attempts for i in items} == {0}
    assert not [c for c in emulator.get(f"/corps/{wecom_id}/calls") if c["endpoint"] == RESIGNED_CALL]

    # Once he has resigned, WeCom lists his three customers (read here a page of one at a time), and
    # a new handover moves them in one call.
    emulator.post(f"/corps/{wecom_id}/staff/zhangsan/resign")
    with session_scope() as s:
        client = wecom.client_for_corp(s, corp_id=corp_id)
    listed = list(client.iter_unassigned(page_size=1))
    assert sorted(u.external_userid for u in listed) == sorted(exts)
    assert {u.handover_userid for u in listed} == {"zhangsan"} and all(u.dimission_time > 0 for u in listed)
    with session_scope() as s:
        second = service.create_handover(s, corp_id=corp_id, actor="test", kind="resigned",
                                         handover_userid="zhangsan", takeover_userids=["lisi"]).id
    _advance_until(emulator, corp_id, second, lambda st: all(v[0] == "done" for v in st.values()))
    calls = [c for c in emulator.get(f"/corps/{wecom_id}/calls") if c["endpoint"] == RESIGNED_CALL
             and c["errcode"] != 42001]
    assert len(calls) == 1
