"""Browser tests: a real `siyu serve` on a free port, driven by the system Chromium.

`playwright install` cannot download browsers here, so Playwright drives Debian's `chromium`
(scripts/install-system-deps installs it with a CJK font). Without it the tests skip on a
developer machine and fail in CI (CI=true). The server gets its own SQLite database, migrated
and seeded with the demo data (`python -m siyu.demo seed`); the tests do not depend on the kind
of database, so CI's PostgreSQL pass leaves them out (-m "not e2e")."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

CHROMIUM = Path(os.environ.get("SIYU_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass
class LiveServer:
    url: str
    demo: dict  # what `siyu.demo.prepare` seeded: logins, password, corp, API key
    env: dict | None = None  # the server's environment, for a worker a test starts on the same database

    @property
    def password(self) -> str:
        return self.demo["password"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> LiveServer:
    root = tmp_path_factory.mktemp("e2e")
    env = dict(
        os.environ,
        SIYU_DATA_DIR=str(root / "var"),
        SIYU_DATABASE_URL=f"sqlite:///{root / 'var' / 'siyu.db'}",
        SIYU_SECRET_KEY="e2e-secret-key-not-for-production",
        SIYU_PII_KEY="ZTJlLXBpaS1rZXktMzItYnl0ZXMtbG9uZy1vayEhIQ",
        SIYU_COOKIE_SECURE="false",
        SIYU_SMS_SHOW_CODES="true",  # the verification gate's codes in the SMS outbox, as in `siyu demo`
        SIYU_LOG_LEVEL="WARNING",
    )
    seeded = subprocess.run(
        [sys.executable, "-m", "siyu.demo", "seed"], env=env, cwd=root, capture_output=True, text=True, timeout=120
    )
    if seeded.returncode != 0:
        pytest.fail(f"seeding the demo database failed:\n{seeded.stdout}\n{seeded.stderr}")
    demo = json.loads(seeded.stdout.strip().splitlines()[-1])

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(ARTIFACTS / "e2e-server.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "siyu.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"siyu serve exited with {proc.returncode}; see {ARTIFACTS / 'e2e-server.log'}")
            try:
                if httpx.get(url + "/login", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"siyu serve did not answer on {url} within 60 s")
            time.sleep(0.1)
        yield LiveServer(url=url, demo=demo, env=env)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is not installed (scripts/install-system-deps installs it)"
        if in_ci():
            pytest.fail("CI needs the browser tests: " + reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser profile per test (no cookies: Chinese, logged out)."""
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 800}, locale="zh-CN", timezone_id="Asia/Shanghai"
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def screenshot(page):
    """screenshot(name): a full-page PNG in test-artifacts/screenshots/, to look at."""

    def take(name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def log_in(page, live_server):
    """log_in(login, password=demo password, corp=the demo corp's code): submits the login form."""

    def submit(login: str, password: str | None = None, corp: str | None = None) -> None:
        page.goto("/login")
        page.fill("#corp", corp if corp is not None else live_server.demo["corp_slug"])
        page.fill("#login", login)
        page.fill("#password", password if password is not None else live_server.password)
        page.click("form[action='/login'] button[type=submit]")

    return submit
