"""群活码 in a real browser, over the emulated WeCom: operations build a group set from two synced
groups, set its rollover and create its join way; simulated customers scan it (the emulator pushes
the group events to the live server, a real worker reads them back); the set's joining page shows
the QR code, the rollover and the fill levels, and the group page shows the member with the join
way, channel and advisor who brought them (screenshots in test-artifacts).

A corp of its own (not the demo's) is wired to the emulator, so the other browser tests' demo data
stays as it is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from playwright.sync_api import expect

from wecom.conftest import emulator  # noqa: F401 - the emulator server fixture

pytestmark = pytest.mark.e2e

SETUP = """
import json, sys
from siyu.db import session_scope
from siyu.tenancy import service as tenancy
from siyu.wecom import service as wecom
from siyu.wecom.crypto import generate_aes_key
slug, wecom_id, secret, api_url, password = sys.argv[1:6]
token, key = "tok" + slug[-8:], generate_aes_key()
with session_scope() as s:
    corp = tenancy.create_corp(s, slug=slug, name="活码测试银行")
    tenancy.create_staff(s, corp_id=corp.id, login="ops." + slug, name="运营小周", roles=["operations"],
                         password=password)
    tenancy.create_staff(s, corp_id=corp.id, login="zhang." + slug, name="张顾问", roles=["advisor"],
                         password=password, wecom_userid="jwzhang")
    wecom.configure_connection(s, corp_id=corp.id, actor="test", wecom_corp_id=wecom_id, secret=secret,
                               token=token, aes_key=key, base_url=api_url)
print(json.dumps({"token": token, "aes_key": key}))
"""


@pytest.fixture
def wired_corp(live_server, emulator):  # noqa: F811
    slug = "jw-" + uuid.uuid4().hex[:8]
    wecom_id, secret = "ww" + uuid.uuid4().hex[:16], "secret-" + uuid.uuid4().hex
    env = dict(live_server.env, SIYU_OUTBOUND_LOCAL_NETWORKS="127.0.0.0/8")
    made = subprocess.run([sys.executable, "-c", SETUP, slug, wecom_id, secret, emulator.api_url,
                           live_server.password], env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    keys = json.loads(made.stdout.strip().splitlines()[-1])
    emulator.post("/corps", {
        "corp_id": wecom_id, "name": "活码测试银行", "secret": secret,
        "staff": [{"userid": "jwzhang", "name": "张顾问"}],
        "callback": {"url": f"{live_server.url}/wecom/callback/{slug}", "token": keys["token"],
                     "encoding_aes_key": keys["aes_key"]},
        # The emulator's explicit friendlier switch: groups of 4 so a few scans fill one.
        "limits": {"callback_retry_delay": 0.2, "callback_timeout": 3.0, "group_capacity": 4},
    }, expect=201)
    from e2e.conftest import ARTIFACTS

    with open(ARTIFACTS / "e2e-joinways-worker.log", "w") as log:
        worker = subprocess.Popen([sys.executable, "-m", "siyu.cli", "worker"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, cwd=os.path.dirname(env["SIYU_DATA_DIR"]))
    try:
        yield slug, wecom_id
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _until(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out")


def _way(emulator, wecom_id):  # noqa: F811
    ways = emulator.get(f"/corps/{wecom_id}/join_ways")
    return ways[0] if ways else None


def test_a_join_from_scan_to_the_group_page(page, live_server, emulator, wired_corp, screenshot):  # noqa: F811
    slug, wecom_id = wired_corp
    customers = [emulator.post(f"/corps/{wecom_id}/add_contact", {"userid": "jwzhang", "name": name})
                 ["external_userid"] for name in ("何静", "罗文", "宋雨")]
    chats = [emulator.post(f"/corps/{wecom_id}/group_chats", {"owner": "jwzhang", "name": name, "members": []},
                           expect=201)["chat_id"] for name in ("活码测试1群", "活码测试2群")]

    page.goto(f"/login/{slug}")  # the corp's login address fills in its code
    page.fill("#login", f"ops.{slug}")
    page.fill("#password", live_server.password)
    page.click("form[action='/login'] button[type=submit]")
    expect(page.get_by_test_id("who")).to_be_visible()

    # The worker reads the new groups in; then operations put them in a set.
    def groups_synced():
        page.goto("/groups")
        return page.get_by_test_id("group-row").count() == 2
    _until(groups_synced)
    page.goto("/groups/sets")
    page.locator("#name").fill("活码测试群组")
    page.locator("#positioning").select_option("benefit")
    page.locator("form[action='/groups/sets'] button[type=submit]").click()
    expect(page.get_by_test_id("set-name")).to_have_text("活码测试群组")
    for box in page.get_by_test_id("add-groups-form").locator("input[name=group_id]").all():
        box.check()
    page.get_by_test_id("add-groups-form").locator("button[type=submit]").click()
    expect(page.get_by_test_id("set-group-row")).to_have_count(2)
    page.get_by_test_id("joining-link").click()

    settings = page.get_by_test_id("joining-settings")
    settings.locator("#capacity").fill("4")
    settings.locator("#rotate_at").fill("9")
    settings.locator("button[type=submit]").click()
    expect(page.locator("[data-field=rotate_at]")).to_be_visible()  # refused: beyond the capacity
    settings = page.get_by_test_id("joining-settings")
    settings.locator("#capacity").fill("4")
    settings.locator("#rotate_at").fill("3")
    settings.locator("button[type=submit]").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    page.get_by_test_id("join-way-form").locator("button[type=submit]").click()
    expect(page.get_by_test_id("join-way")).to_have_count(1)

    way = _until(lambda: _way(emulator, wecom_id))
    assert way["chat_ids"] and set(way["chat_ids"]) <= set(chats) and way["state"].startswith("jw")
    first = way["chat_ids"][0]
    for external in customers[:2]:  # the first group reaches 3 of 4: it goes to the back of the join way
        emulator.post(f"/corps/{wecom_id}/join_ways/{way['config_id']}/scan", {"member_id": external})
    _until(lambda: _way(emulator, wecom_id)["chat_ids"][0] != first)  # kept only as a reserve with room
    landed = emulator.post(f"/corps/{wecom_id}/join_ways/{way['config_id']}/scan", {"member_id": customers[2]})
    assert landed["chat_id"] != first, "the next join lands in the next group"

    def rolled_over():
        page.reload()
        return "已换群 1 次" in page.get_by_test_id("join-way-rotations").inner_text() and \
            "3 人" in page.get_by_test_id("join-ways").inner_text()
    _until(rolled_over)
    expect(page.get_by_test_id("join-way-qr")).to_be_visible()
    # the QR is drawn by Siyu from WeCom's link: it loads, it is no broken outside image
    assert page.get_by_test_id("join-way-qr").evaluate("img => img.complete && img.naturalWidth > 100")
    expect(page.get_by_test_id("join-way-status")).to_have_text("启用")
    expect(page.get_by_test_id("fill-row")).to_have_count(2)
    expect(page.get_by_test_id("fill-levels")).to_contain_text("3 / 4")
    expect(page.get_by_test_id("chart-set-joins").locator("svg")).to_be_visible()
    screenshot("joinways-set")

    page.get_by_test_id("fill-levels").locator("a", has_text=landed["name"]).click()
    expect(page.get_by_test_id("group-name")).to_have_text(landed["name"])
    row = page.get_by_test_id("member-row").filter(has_text="宋*")
    expect(row.get_by_test_id("member-join-way")).to_have_text("活码测试群组")
    expect(row.get_by_test_id("member-advisor")).to_have_text("张顾问")
    expect(page.get_by_test_id("members")).not_to_contain_text(customers[2])
    screenshot("joinways-group")
