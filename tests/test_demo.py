"""`siyu demo`: the seed is complete and idempotent, and the processes start and stop cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy import func, select

from siyu import demo
from siyu.tenancy import service
from siyu.tenancy.models import AuditEntry, Role


def test_seed_has_every_role_and_a_working_api_key(session, tmp_path):
    info = demo.seed_demo(session, data_dir=tmp_path)
    assert info.created and info.corp_slug == demo.DEMO_SLUG
    roles = {r for entry in info.logins for r in entry["roles"]}
    assert roles == {r.value for r in Role}
    assert sum("advisor" in e["roles"] for e in info.logins) >= 2
    for entry in info.logins:
        assert entry["corp"] == demo.DEMO_SLUG
        staff = service.authenticate(session, corp=entry["corp"], login=entry["login"], password=demo.DEMO_PASSWORD)
        assert staff.corp_id == info.corp_id
    principal = service.resolve_api_key(session, token=info.api_key)
    assert principal is not None and principal.corp_id == info.corp_id
    assert info.jobs == [name for name, *_ in demo.DEMO_JOBS]
    actions = set(session.scalars(select(AuditEntry.action).where(AuditEntry.chain_id == info.corp_id)))
    assert {"login.failed", "login.succeeded", "staff.created", "api_key.created"} <= actions


def test_seeding_again_changes_nothing(session, tmp_path):
    first = demo.seed_demo(session, data_dir=tmp_path)
    entries = session.scalar(select(func.count()).select_from(AuditEntry))
    again = demo.seed_demo(session, data_dir=tmp_path)
    assert not again.created
    assert (again.corp_id, again.api_key, again.logins) == (first.corp_id, first.api_key, first.logins)
    assert session.scalar(select(func.count()).select_from(AuditEntry)) == entries


def _two_free_ports() -> int:
    """A port p with p + 1 free too: the demo puts the WeCom emulator on the next port."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two adjacent free ports")


@pytest.mark.slow
def test_demo_runs_and_stops_on_sigterm(tmp_path):
    port = _two_free_ports()
    env = dict(os.environ, SIYU_DATA_DIR=str(tmp_path / "var"), SIYU_LOG_LEVEL="WARNING")
    for name in ("SIYU_DATABASE_URL", "SIYU_SECRET_KEY", "SIYU_PII_KEY", "SIYU_COOKIE_SECURE"):
        env.pop(name, None)  # as a new user runs it: nothing configured
    proc = subprocess.Popen(
        [sys.executable, "-m", "siyu.cli", "demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the demo console did not answer within 90 s"
            time.sleep(0.2)
        # The banner's logins work over plain HTTP (the demo turns Secure cookies off).
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            client.get("/login")
            answer = client.post(
                "/login",
                data={
                    "corp": demo.DEMO_SLUG,
                    "login": "demo.admin",
                    "password": demo.DEMO_PASSWORD,
                    "csrf_token": client.cookies.get("siyu_login_csrf"),
                    "next": "/",
                },
            )
            assert answer.status_code == 303 and "siyu_session" in client.cookies
            assert client.get("/").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "demo.admin" in output and demo.DEMO_PASSWORD in output
    assert f"corp code: {demo.DEMO_SLUG}" in output and f"/login/{demo.DEMO_SLUG}" in output
    assert (tmp_path / "var" / "siyu.db").exists()
    # No child outlived the demo: nothing answers on the console port any more.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)


def test_demo_welcomes_are_approved_with_one_edit_awaiting_approval(session, tmp_path):
    """The demo still welcomes its customers (its welcomes approved by its compliance officer) and has
    one pending edit to look at, whose old text is what goes out meanwhile."""
    from siyu.acquisition import service as acquisition
    from siyu.acquisition import welcome
    from siyu.compliance.models import ContentItem
    from siyu.compliance.service import content_for_send
    from siyu.wecom import service as wecom
    from siyu.wecom.crypto import generate_aes_key

    info = demo.seed_demo(session, data_dir=tmp_path)
    wecom.configure_connection(session, corp_id=info.corp_id, actor="demo", wecom_corp_id=demo.DEMO_WECOM_CORP_ID,
                               secret=demo.DEMO_WECOM_SECRET, token="tok12345", aes_key=generate_aes_key())
    wecom.set_default_welcome(session, corp_id=info.corp_id, actor="demo", text=demo.DEMO_WELCOME, enabled=True)
    demo._seed_channel_codes(session, corp_id=info.corp_id)
    demo._approve_seeded_content(session, corp_id=info.corp_id)
    assert content_for_send(session, corp_id=info.corp_id, kind="welcome",
                            owner=("corp", info.corp_id)).text == demo.DEMO_WELCOME
    states = {i.status for i in session.scalars(select(ContentItem).where(ContentItem.corp_id == info.corp_id))}
    assert states == {"approved", "submitted"}
    pending = session.scalar(select(ContentItem).where(ContentItem.corp_id == info.corp_id,
                                                       ContentItem.status == "submitted"))
    assert pending.approved_version == 1  # the approved text keeps going out
    for name, *_rest in demo.DEMO_CHANNEL_CODES:
        code = next(c for c in acquisition.list_channel_codes(session, corp_id=info.corp_id) if c.name == name)
        plan = welcome.plan_welcome(session, corp_id=info.corp_id, state=code.state, userid="zhangwei",
                                    external_userid="wmdemo0001", customer_name="周先生")
        assert plan.held_reason is None and plan.text and demo.DEMO_PENDING_EDIT[:8] not in plan.text


def test_demo_has_a_set_handed_out_by_a_join_way_that_rolls_over(session, tmp_path):
    """The welfare set: its two groups, small capacity and threshold, WeCom creating the next group,
    its join way waiting for the worker, and its welcome texts approved with the demo's content."""
    from siyu.communities import group_welcome, joinways
    from siyu.communities.models import GroupSet
    from siyu.wecom import service as wecom
    from siyu.wecom.crypto import generate_aes_key

    info = demo.seed_demo(session, data_dir=tmp_path)
    wecom.configure_connection(session, corp_id=info.corp_id, actor="demo", wecom_corp_id=demo.DEMO_WECOM_CORP_ID,
                               secret=demo.DEMO_WECOM_SECRET, token="tok12345", aes_key=generate_aes_key())
    demo._seed_channel_codes(session, corp_id=info.corp_id)
    demo._seed_join_way(session, corp_id=info.corp_id)
    demo._seed_join_way(session, corp_id=info.corp_id)  # a second run adds nothing
    demo._approve_seeded_content(session, corp_id=info.corp_id)
    (group_set,) = session.scalars(select(GroupSet).where(GroupSet.corp_id == info.corp_id,
                                                          GroupSet.name == demo.DEMO_JOIN_SET[0])).all()
    (way,) = joinways.list_ways(session, corp_id=info.corp_id, set_id=group_set.id)
    joining = joinways.settings(session, corp_id=info.corp_id, set_id=group_set.id)
    assert (joining.capacity, joining.rotate_at, joining.when_full) == (6, 5, "auto_create")
    assert joinways.plan(session, way=way, joining=joining).chat_ids == list(demo.DEMO_JOIN_SET[3])
    texts = group_welcome.texts(session, corp_id=info.corp_id, set_id=group_set.id)
    assert [t.in_force for t in texts.values()] == list(demo.DEMO_GROUP_WELCOME)
    assert demo._emulator_command("127.0.0.1", 9999, data_dir=tmp_path) is not None
    seed = json.loads((tmp_path / "emulator-seed.json").read_text(encoding="utf-8"))
    assert seed["limits"]["group_capacity"] == demo.DEMO_GROUP_CAPACITY
