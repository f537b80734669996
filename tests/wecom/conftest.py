"""Fixtures: one emulator server for the whole run (real uvicorn on a free 127.0.0.1 port), a
freshly seeded corp per test (so tests never see each other's state), a client pointed at it,
and a callback receiver server that decrypts what the emulator pushes."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from siyu.wecom.client import WeComClient
from siyu.wecom.crypto import WXBizMsgCrypt, generate_aes_key
from siyu.wecom.emulator import EmulatorState, create_emulator_app
from siyu.wecom.emulator.server import ServerThread
from siyu.wecom.events import parse_event

STAFF = [
    {"userid": "zhangsan", "name": "张三", "department": [2]},
    {"userid": "lisi", "name": "李四", "department": [2]},
    {"userid": "wangwu", "name": "王五", "department": [3]},
]


@dataclass
class Emulator:
    state: EmulatorState
    base_url: str
    admin: httpx.Client

    @property
    def api_url(self) -> str:
        return self.base_url + "/cgi-bin/"

    def post(self, path: str, body: dict[str, Any] | None = None, expect: int | None = None) -> Any:
        response = self.admin.post(path, json=body or {})
        if expect is not None:
            assert response.status_code == expect, response.text
        else:
            assert response.status_code < 400, response.text
        return response.json()

    def get(self, path: str) -> Any:
        response = self.admin.get(path)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    state = EmulatorState(seed=20240601)
    server = ServerThread(create_emulator_app(state)).start()
    admin = httpx.Client(base_url=server.base_url + "/_emulator", timeout=15)
    try:
        yield Emulator(state=state, base_url=server.base_url, admin=admin)
    finally:
        admin.close()
        server.stop()
        state.close()


@dataclass
class SeededCorp:
    corp_id: str
    secret: str
    emulator: Emulator
    summary: dict[str, Any]
    token: str = ""
    aes_key: str = ""

    @property
    def tags(self) -> dict[str, str]:
        """tag name -> tag id"""
        return {t["name"]: t["id"] for g in self.summary["tag_groups"] for t in g["tags"]}

    def admin_path(self, suffix: str = "") -> str:
        return f"/corps/{self.corp_id}{suffix}"

    def post(self, suffix: str, body: dict[str, Any] | None = None, expect: int | None = None) -> Any:
        return self.emulator.post(self.admin_path(suffix), body, expect)

    def get(self, suffix: str) -> Any:
        return self.emulator.get(self.admin_path(suffix))

    def add_contact(self, userid: str = "zhangsan", **kw: Any) -> dict[str, Any]:
        return self.post("/add_contact", {"userid": userid, **kw})

    def calls(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        return [c for c in self.get("/calls") if endpoint is None or c["endpoint"] == endpoint]

    def crypto(self) -> WXBizMsgCrypt:
        return WXBizMsgCrypt(self.token, self.aes_key, self.corp_id)


@pytest.fixture
def make_corp(emulator: Emulator) -> Callable[..., SeededCorp]:
    def make(*, limits: dict[str, Any] | None = None, callback_url: str | None = None,
             customers: list[dict[str, Any]] | None = None) -> SeededCorp:
        corp_id = "ww" + uuid.uuid4().hex[:16]
        secret = "secret-" + uuid.uuid4().hex
        token, aes_key = "tok" + uuid.uuid4().hex[:8], generate_aes_key()
        body: dict[str, Any] = {
            "corp_id": corp_id, "name": "测试银行", "secret": secret, "staff": STAFF,
            "tag_groups": [{"group_name": "风险等级", "tags": ["C1", "C2", "C3"]},
                           {"group_name": "生命周期", "tags": ["新客", "活跃"]}],
            "limits": limits or {}, "customers": customers or [],
        }
        if callback_url:
            body["callback"] = {"url": callback_url, "token": token, "encoding_aes_key": aes_key}
        summary = emulator.post("/corps", body, expect=201)
        return SeededCorp(corp_id=corp_id, secret=secret, emulator=emulator, summary=summary, token=token,
                          aes_key=aes_key)

    return make


@pytest.fixture
def corp(make_corp) -> SeededCorp:
    return make_corp()


@pytest.fixture
def make_client(emulator: Emulator) -> Iterator[Callable[..., WeComClient]]:
    clients: list[WeComClient] = []

    def make(seeded: SeededCorp, **kw: Any) -> WeComClient:
        # Short backoffs keep the suite fast; the logic is the same as with production values.
        kw = {"rate_limit_backoff": 0.02, "concurrency_backoff": 0.02, "busy_backoff": 0.02, **kw}
        c = WeComClient(seeded.corp_id, seeded.secret, base_url=emulator.api_url, **kw)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def client(corp, make_client) -> WeComClient:
    return make_client(corp)


# --- a callback receiver ---------------------------------------------------------------------------


@dataclass
class Receiver:
    """Decrypts every POST with the corp's crypto and keeps the events; `behaviour` decides the
    answer to each delivery (by its 1-based number), e.g. to be slow or fail."""

    base_url: str = ""
    crypto: WXBizMsgCrypt | None = None
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    behaviour: Callable[[int], tuple[float, int]] = lambda n: (0.0, 200)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.base_url + "/wecom/callback"

    def events(self) -> list[Any]:
        with self.lock:
            return [parse_event(d["plaintext"]) for d in self.deliveries]

    def wait_for(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.deliveries) >= n:
                    return list(self.deliveries)
            time.sleep(0.01)
        raise AssertionError(f"expected {n} deliveries, got {len(self.deliveries)}")


def receiver_app(receiver: Receiver) -> FastAPI:
    app = FastAPI()

    @app.get("/wecom/callback")
    def verify(msg_signature: str, timestamp: str, nonce: str, echostr: str) -> Response:
        assert receiver.crypto is not None
        return PlainTextResponse(receiver.crypto.verify_url(msg_signature, timestamp, nonce, echostr))

    @app.post("/wecom/callback")
    async def event(request: Request) -> Response:
        assert receiver.crypto is not None
        body = await request.body()
        q = request.query_params
        plaintext = receiver.crypto.decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"])
        with receiver.lock:
            receiver.deliveries.append({"plaintext": plaintext, "params": dict(q), "body": body.decode()})
            n = len(receiver.deliveries)
        delay, status = receiver.behaviour(n)
        if delay:
            import asyncio

            await asyncio.sleep(delay)
        return PlainTextResponse("", status_code=status)

    return app


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    server = ServerThread(receiver_app(r)).start()
    r.base_url = server.base_url
    try:
        yield r
    finally:
        server.stop()


@pytest.fixture
def corp_with_callback(make_corp, receiver) -> SeededCorp:
    seeded = make_corp(callback_url=receiver.url, limits={"callback_retry_delay": 0.05, "callback_timeout": 2.0})
    receiver.crypto = seeded.crypto()
    return seeded


@dataclass
class WiredCorp:
    """A Siyu corp connected to an emulated WeCom corp both ways (API and signed callbacks)."""

    corp_id: int
    slug: str
    wecom_id: str
    secret: str


PIPELINE_STAFF = (("zhangsan", "张三"), ("lisi", "李四"))


def wire_siyu_corp(emulator: Emulator, *, callback_base_url: str, name: str, slug_prefix: str,
                   staff: tuple[tuple[str, str], ...] = PIPELINE_STAFF, siyu_staff: tuple[str, ...] = (),
                   siyu_roles: tuple[str, ...] = ("advisor",)) -> WiredCorp:
    """Create a Siyu corp (with `siyu_staff` of `staff` as Siyu staff members), connect it to a new
    emulated corp holding `staff`, whose callbacks go to `callback_base_url`'s endpoint for the corp
    and are retried quickly when not acknowledged."""
    from siyu.db import session_scope
    from siyu.tenancy import service as tenancy
    from siyu.wecom import service as wecom

    slug = f"{slug_prefix}-{uuid.uuid4().hex[:8]}"
    wecom_id = "ww" + uuid.uuid4().hex[:16]
    secret, token, aes_key = "secret-" + uuid.uuid4().hex, "tok" + uuid.uuid4().hex[:10], generate_aes_key()
    names = dict(staff)
    with session_scope() as s:
        corp = tenancy.create_corp(s, slug=slug, name=name)
        for userid in siyu_staff:
            tenancy.create_staff(s, corp_id=corp.id, login=f"{userid}.{slug}", name=names[userid],
                                 roles=list(siyu_roles), password=None, wecom_userid=userid)
        wecom.configure_connection(s, corp_id=corp.id, actor="test", wecom_corp_id=wecom_id, secret=secret,
                                   token=token, aes_key=aes_key, base_url=emulator.api_url)
        corp_id = corp.id
    emulator.post("/corps", {
        "corp_id": wecom_id, "name": name, "secret": secret,
        "staff": [{"userid": u, "name": n} for u, n in staff],
        "callback": {"url": f"{callback_base_url}/wecom/callback/{slug}", "token": token,
                     "encoding_aes_key": aes_key},
        "limits": {"callback_retry_delay": 0.2, "callback_timeout": 2.0},
    }, expect=201)
    return WiredCorp(corp_id=corp_id, slug=slug, wecom_id=wecom_id, secret=secret)
