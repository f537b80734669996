"""WeComClient against the emulator over real HTTP: tokens, retries, limits, errors, paging, logs."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import time

import pytest

from siyu.wecom.errors import (
    AccessTokenError,
    InvalidCredential,
    InvalidExternalUserId,
    InvalidRequest,
    InvalidUserId,
    NotExternalContact,
    RateLimited,
    SystemBusy,
    WeComError,
    WelcomeNotNeeded,
    error_for,
)
from siyu.wecom.ratelimit import (
    AdaptiveConcurrency,
    DatabaseRateLimiter,
    InMemoryRateLimiter,
    Limits,
    RateLimit,
)
from siyu.wecom.tokens import DatabaseTokenStore, InMemoryTokenStore, TokenKey


def test_token_is_fetched_once_and_reused(corp, client):
    for _ in range(3):
        client.get_corp_tag_list()
    assert len(corp.calls("gettoken")) == 1


def test_invalid_token_refreshes_once_and_retries(corp, client):
    client.get_corp_tag_list()
    corp.post("/tokens/revoke")
    groups = client.get_corp_tag_list()
    assert [g.group_name for g in groups] == ["风险等级", "生命周期"]
    codes = [c["errcode"] for c in corp.calls("externalcontact/get_corp_tag_list")]
    assert codes == [0, 40014, 0]
    assert len(corp.calls("gettoken")) == 2


def test_expired_token_refreshes(corp, client, emulator):
    client.get_corp_tag_list()
    emulator.post("/clock/advance", {"seconds": 7300})  # the client's own cache still believes it
    client.get_corp_tag_list()
    codes = [c["errcode"] for c in corp.calls("externalcontact/get_corp_tag_list")]
    assert codes == [0, 42001, 0]


def test_token_error_after_refresh_is_raised_not_looped(corp, client):
    corp.post("/faults", {"invalid_token_next": 2})
    with pytest.raises(AccessTokenError) as info:
        client.get_corp_tag_list()
    assert info.value.errcode == 40014 and info.value.endpoint == "externalcontact/get_corp_tag_list"
    assert len(corp.calls("externalcontact/get_corp_tag_list")) == 2


def test_wrong_secret_is_invalid_credential(corp, make_client):
    corp.secret = "not-the-secret"
    with pytest.raises(InvalidCredential) as info:
        make_client(corp).get_corp_tag_list()
    assert info.value.errcode == 40001 and "invalid_secret" in str(info.value)


def test_45009_backs_off_and_retries(corp, client):
    client.access_token()  # gettoken is limited too; keep the storm on the call under test
    corp.post("/faults", {"rate_limit_next": 2})
    started = time.monotonic()
    assert client.get_corp_tag_list()
    assert [c["errcode"] for c in corp.calls("externalcontact/get_corp_tag_list")] == [45009, 45009, 0]
    assert time.monotonic() - started >= 0.02 * 0.75 * (1 + 2)  # two backoffs: base, then 2x base


def test_45009_gives_up_after_bounded_retries(corp, make_client):
    client = make_client(corp, max_rate_limit_retries=2)
    client.access_token()
    corp.post("/faults", {"rate_limit_next": 10})
    with pytest.raises(RateLimited) as info:
        client.get_corp_tag_list()
    assert info.value.errcode == 45009 and info.value.retryable
    assert len(corp.calls("externalcontact/get_corp_tag_list")) == 3


def test_45009_blocks_the_shared_bucket(corp, make_client):
    limiter = InMemoryRateLimiter()
    client = make_client(corp, rate_limiter=limiter)
    client.access_token()
    corp.post("/faults", {"rate_limit_next": 1})
    client.get_corp_tag_list()
    # The backoff was recorded in the limiter, so another client sharing it waits too.
    limiter.block(corp.corp_id, "externalcontact/get_corp_tag_list", 0.5)
    assert limiter.reserve(corp.corp_id, "externalcontact/get_corp_tag_list") > 0.3


def test_45033_lowers_concurrency_and_succeeds(make_corp, make_client):
    corp = make_corp(limits={"max_concurrent_calls": 2})
    concurrency = AdaptiveConcurrency(limit=8)
    client = make_client(corp, concurrency=concurrency, max_concurrency_retries=8)
    client.get_corp_tag_list()  # token fetched before the latency starts
    corp.post("/faults", {"latency_ms": 60, "endpoints": ["externalcontact/get_corp_tag_list"]})
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: client.get_corp_tag_list(), range(8)))
    assert len(results) == 8
    codes = [c["errcode"] for c in corp.calls("externalcontact/get_corp_tag_list")]
    assert 45033 in codes
    assert concurrency.limit < 8


def test_5xx_is_retried_only_where_repeating_is_harmless(corp, client):
    corp.post("/faults", {"error_5xx_next": 1})
    assert client.get_corp_tag_list()  # a read: retried
    ext = corp.add_contact("zhangsan")["external_userid"]
    corp.post("/faults", {"error_5xx_next": 1})
    with pytest.raises(SystemBusy) as info:
        client.add_msg_template(sender="zhangsan", external_userids=[ext], text="hi")
    assert info.value.maybe_applied and info.value.errcode == -1
    assert len(corp.calls("externalcontact/add_msg_template")) == 1  # never sent twice


def test_system_busy_is_retried_even_for_sends(corp, client):
    ext = corp.add_contact("zhangsan")["external_userid"]
    client.access_token()
    corp.post("/faults", {"system_busy_next": 1})
    client.add_msg_template(sender="zhangsan", external_userids=[ext], text="hi")
    assert [c["errcode"] for c in corp.calls("externalcontact/add_msg_template")] == [-1, 0]
    assert len(corp.get("/mass_messages")) == 1  # WeCom did not process the busy attempt


def test_unreachable_server_is_system_busy(corp):
    from siyu.wecom.client import WeComClient

    with WeComClient(corp.corp_id, corp.secret, base_url="http://127.0.0.1:9/cgi-bin/", busy_backoff=0.001) as c:
        with pytest.raises(SystemBusy) as info:
            c.get_corp_tag_list()
    assert not info.value.maybe_applied


def test_errcodes_map_to_named_exceptions(corp, client):
    ext = corp.add_contact("zhangsan")["external_userid"]
    with pytest.raises(InvalidExternalUserId) as info:
        client.get_external_contact("wmdoesnotexist123")
    assert info.value.errcode == 40096 and info.value.name == "invalid_external_userid"
    assert "externalcontact/get" in str(info.value)
    with pytest.raises(InvalidUserId):
        client.mark_tag(userid="ghost", external_userid=ext, add_tag=[corp.tags["C1"]])
    with pytest.raises(NotExternalContact):
        client.mark_tag(userid="lisi", external_userid=ext, add_tag=[corp.tags["C1"]])
    with pytest.raises(InvalidRequest) as info:
        client.send_welcome_msg(welcome_code="made-up", text="hi")
    assert info.value.errcode == 40058
    code = corp.add_contact("zhangsan")["welcome_code"]
    client.send_welcome_msg(welcome_code=code, text="hi")
    with pytest.raises(WelcomeNotNeeded) as info:
        client.send_welcome_msg(welcome_code=code, text="hi again")
    assert info.value.errcode == 41051 and info.value.name == "customer_started_chatting"
    assert type(error_for(99999, "new", "x")) is WeComError


def test_client_side_validation_never_calls_wecom(corp, client):
    with pytest.raises(ValueError, match="state"):
        client.add_contact_way(type=1, scene=2, user=["zhangsan"], state="x" * 31)
    with pytest.raises(ValueError, match="external_userids"):
        client.resigned_transfer_customer(handover_userid="a", takeover_userid="b", external_userids=["wm1"] * 101)
    with pytest.raises(ValueError, match="text"):
        client.send_welcome_msg(welcome_code="x")
    assert corp.calls() == []


def test_contact_way_add_get_tag_and_welcome(corp, client):
    way = client.add_contact_way(type=1, scene=2, user=["zhangsan"], state="ch:7")
    assert way.qr_code
    added = corp.post("/add_contact", {"config_id": way.config_id})
    client.send_welcome_msg(welcome_code=added["welcome_code"], text="欢迎！回复1加入理财学习群")
    client.mark_tag(userid="zhangsan", external_userid=added["external_userid"], add_tag=[corp.tags["C2"]])
    detail = client.get_external_contact(added["external_userid"])
    assert detail.external_contact.name == added["name"]
    (follow,) = detail.follow_user
    assert (follow.userid, follow.state, [t.tag_name for t in follow.tags]) == ("zhangsan", "ch:7", ["C2"])
    assert client.list_external_contacts("zhangsan") == [added["external_userid"]]
    assert client.list_external_contacts("wangwu") == []
    assert corp.get("/welcomes")[0]["text"] == "欢迎！回复1加入理财学习群"


def test_batch_get_by_user_paginates(make_corp, make_client):
    customers = [{"name": f"客户{i}", "follow": ["zhangsan"] + (["lisi"] if i % 2 else [])} for i in range(120)]
    corp = make_corp(customers=customers)
    client = make_client(corp)
    pairs = list(client.iter_external_contacts_by_user(["zhangsan", "lisi"], limit=50))
    assert len(pairs) == 180
    assert len({(p.follow_info.userid, p.external_contact.external_userid) for p in pairs}) == 180
    assert len(corp.calls("externalcontact/batch/get_by_user")) == 4


def test_get_follows_every_page_of_follow_user(make_corp, make_client):
    corp = make_corp(limits={"follow_user_page_size": 2},
                     customers=[{"name": "大客户", "follow": ["zhangsan", "lisi", "wangwu"]}])
    client = make_client(corp)
    ext = corp.get("/customers")[0]["external_userid"]
    detail = client.get_external_contact(ext)
    assert sorted(f.userid for f in detail.follow_user) == ["lisi", "wangwu", "zhangsan"]
    assert len(corp.calls("externalcontact/get")) == 2


def test_group_chats_paginate_and_get(corp, client):
    ext = corp.add_contact("lisi")["external_userid"]
    chats = [corp.post("/group_chats", {"owner": "lisi", "name": f"群{i}", "members": [ext]})["chat_id"]
             for i in range(5)]
    listed = [c.chat_id for c in client.iter_group_chats(owner_userids=["lisi"], limit=2)]
    assert listed == chats
    chat = client.get_group_chat(chats[0])
    assert chat.name == "群0" and {m.userid for m in chat.member_list} == {"lisi", ext}


def test_mass_message_and_send_results(corp, client):
    exts = [corp.add_contact("zhangsan")["external_userid"] for _ in range(3)]
    result = client.add_msg_template(sender="zhangsan", external_userids=[*exts, "wmnotacustomer1"],
                                     text="本周理财早报")
    assert result.fail_list == ["wmnotacustomer1"]
    sent = list(client.iter_groupmsg_send_result(msgid=result.msgid, userid="zhangsan", limit=2))
    assert sorted(r.external_userid for r in sent) == sorted(exts) and {r.status for r in sent} == {1}
    again = client.add_msg_template(sender="zhangsan", external_userids=exts[:1], text="第二条")
    assert [r.status for r in client.iter_groupmsg_send_result(msgid=again.msgid, userid="zhangsan")] == [3]


def test_moments(corp, client):
    corp.add_contact("zhangsan")
    jobid = client.add_moment_task(text="今日市场观察", sender_userids=["zhangsan"])
    result = client.get_moment_task_result(jobid)
    assert result.status == 3 and result.result is not None and result.result.moment_id


def test_transfers(corp, client):
    exts = [corp.add_contact("zhangsan")["external_userid"] for _ in range(2)]
    results = client.transfer_customer(handover_userid="zhangsan", takeover_userid="lisi", external_userids=exts,
                                       transfer_success_msg="您好，我是接替张三为您服务的李四")
    assert [(r.external_userid, r.errcode) for r in results] == [(exts[0], 0), (exts[1], 0)]
    ext3 = corp.add_contact("wangwu")["external_userid"]
    with pytest.raises(WeComError) as info:
        client.resigned_transfer_customer(handover_userid="wangwu", takeover_userid="lisi", external_userids=[ext3])
    assert info.value.errcode == 40097 and info.value.name == "handover_not_resigned"
    corp.post("/staff/wangwu/resign")
    results = client.resigned_transfer_customer(handover_userid="wangwu", takeover_userid="lisi",
                                                external_userids=[ext3, exts[0]])
    assert [r.errcode for r in results] == [0, 84061]


def test_every_call_is_logged_without_credentials(corp, client, caplog):
    with caplog.at_level(logging.DEBUG):
        client.get_corp_tag_list()
        corp.post("/tokens/revoke")
        client.get_corp_tag_list()
        with contextlib.suppress(WeComError):
            client.get_external_contact("wmnonexistent0001")
    text = "\n".join(r.getMessage() for r in caplog.records)
    tokens = {issued.token for issued in corp.emulator.state.tokens.values() if issued.corp_id == corp.corp_id}
    assert corp.secret not in text
    assert tokens and not any(t in text for t in tokens)
    ours = [r.getMessage() for r in caplog.records if r.name == "siyu.wecom.client"]
    assert any("endpoint=gettoken errcode=0" in m for m in ours)
    assert any("endpoint=externalcontact/get_corp_tag_list errcode=40014 (invalid_access_token)" in m for m in ours)
    assert any("errcode=40096" in m and "duration_ms=" in m for m in ours)
    httpx_lines = [r.getMessage() for r in caplog.records if r.name == "httpx" and "/cgi-bin/" in r.getMessage()]
    assert httpx_lines and all("access_token=***" in m or "corpsecret=***" in m for m in httpx_lines)
    assert corp.secret not in repr(client)


# --- shared token store and rate limiter in the database ------------------------------------------


@pytest.fixture
def db_scope(session):
    @contextlib.contextmanager
    def scope():
        yield session
        session.flush()

    return scope


def test_database_token_store_is_shared_between_clients(corp, make_client, db_scope, session):
    from siyu.wecom.models import WecomAccessToken

    store_a, store_b = DatabaseTokenStore(db_scope), DatabaseTokenStore(db_scope)
    make_client(corp, token_store=store_a).get_corp_tag_list()
    make_client(corp, token_store=store_b).get_corp_tag_list()  # another "process"
    assert len(corp.calls("gettoken")) == 1
    row = session.query(WecomAccessToken).filter_by(corp_id=corp.corp_id).one()
    token = store_a.get(TokenKey.for_secret(corp.corp_id, corp.secret)).access_token
    assert token in {i.token for i in corp.emulator.state.tokens.values()}
    assert token not in row.access_token_encrypted  # encrypted at rest
    assert corp.secret not in row.secret_sha256


def test_database_token_store_discards_only_the_failed_token(db_scope):
    import datetime as dt

    from siyu.db import utcnow
    from siyu.wecom.tokens import CachedToken, TokenKey

    store = DatabaseTokenStore(db_scope)
    key = TokenKey.for_secret("wwdiscard", "s")
    store.put(key, CachedToken("new-token", utcnow() + dt.timedelta(hours=2)))
    store.discard(key, "old-token")
    assert store.get(key).access_token == "new-token"
    store.put(key, CachedToken("newer-token", utcnow() + dt.timedelta(hours=2)))  # upsert
    assert store.get(key).access_token == "newer-token"
    store.discard(key, "newer-token")
    assert store.get(key) is None


def test_in_memory_token_store_discard():
    import datetime as dt

    from siyu.db import utcnow
    from siyu.wecom.tokens import CachedToken, TokenKey

    store = InMemoryTokenStore()
    key = TokenKey.for_secret("ww", "s")
    store.put(key, CachedToken("t1", utcnow() + dt.timedelta(hours=1)))
    store.discard(key, "t0")
    assert store.get(key) is not None
    store.discard(key, "t1")
    assert store.get(key) is None


def test_database_rate_limiter_token_bucket(db_scope):
    limiter = DatabaseRateLimiter(Limits(RateLimit(per_second=1.0, burst=2)), scope=db_scope)
    assert limiter.reserve("wwbucket", "x") == 0
    assert limiter.reserve("wwbucket", "x") == 0
    wait = limiter.reserve("wwbucket", "x")
    assert 0.5 < wait <= 1.0
    assert limiter.reserve("wwbucket", "other") == 0  # per endpoint
    limiter.block("wwbucket", "other", 30)
    assert limiter.reserve("wwbucket", "other") > 29


def test_in_memory_rate_limiter_refills():
    now = [100.0]
    limiter = InMemoryRateLimiter(Limits(RateLimit(per_second=10, burst=3)), clock=lambda: now[0])
    assert [limiter.reserve("c", "e") for _ in range(3)] == [0, 0, 0]
    assert limiter.reserve("c", "e") == pytest.approx(0.1)
    now[0] += 0.1
    assert limiter.reserve("c", "e") == 0


def test_client_paces_itself_with_the_limiter(corp, make_client):
    # A clock that only moves when the client sleeps: the pacing is exact, whatever the machine's speed.
    now, slept = [0.0], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = InMemoryRateLimiter(Limits(RateLimit(per_second=100, burst=1)), clock=lambda: now[0])
    client = make_client(corp, rate_limiter=limiter, sleep=sleep)
    for _ in range(3):
        client.get_corp_tag_list()
    assert slept == pytest.approx([0.01, 0.01])


def test_adaptive_concurrency_halves_and_recovers():
    c = AdaptiveConcurrency(limit=8, minimum=1, maximum=9)
    c.overloaded()
    assert c.limit == 4
    for _ in range(4):
        c.succeeded()
    assert c.limit == 5
    for _ in range(10):
        c.overloaded()
    assert c.limit == 1


def test_database_rate_limiter_hands_out_no_more_than_the_bucket_across_threads(database_url):
    """Tokens are taken from the shared bucket ten at a time and spent by this process's threads:
    however the threads interleave, the calls allowed are exactly what the bucket held."""
    import threading
    import uuid

    limiter = DatabaseRateLimiter(Limits(RateLimit(per_second=0.0001, burst=50)), chunk=10, chunk_seconds=60)
    corp = "wwchunk" + uuid.uuid4().hex[:8]
    allowed = []
    lock = threading.Lock()

    def caller() -> None:
        for _ in range(20):
            if limiter.reserve(corp, "externalcontact/send_welcome_msg") == 0:
                with lock:
                    allowed.append(1)

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(allowed) == 50
