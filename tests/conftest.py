"""Shared fixtures: one migrated database per test run (SQLite by default, PostgreSQL when
SIYU_TEST_DATABASE_URL is set), and a session per test inside a transaction rolled back at the end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from siyu import db as siyu_db
from siyu.config import get_settings

# The tests talk to the WeCom emulator and to test hooks on this machine: the installation's
# explicit setting for that (the default trusts no local network; tests of the refusal unset it).
os.environ.setdefault("SIYU_OUTBOUND_LOCAL_NETWORKS", "127.0.0.0/8,::1/128")


def _test_url(tmp_root: Path) -> str:
    url = os.environ.get("SIYU_TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_root / 'test.db'}"


def _reset_database(url: str) -> None:
    engine = siyu_db.make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("siyu")
    os.environ["SIYU_DATA_DIR"] = str(root / "var")
    os.environ.setdefault("SIYU_SECRET_KEY", "test-secret-key-not-for-production")
    os.environ.setdefault("SIYU_PII_KEY", "dGVzdC1waWkta2V5LTMyLWJ5dGVzLWxvbmctb2sh")
    os.environ["SIYU_COOKIE_SECURE"] = "false"
    url = _test_url(root)
    os.environ["SIYU_DATABASE_URL"] = url
    get_settings.cache_clear()
    _reset_database(url)
    from siyu.migrate import upgrade

    upgrade("head", url)
    siyu_db.configure(url)
    return url


@pytest.fixture
def engine(database_url):
    return siyu_db.get_engine()


@pytest.fixture
def session(engine):
    """A session whose work is rolled back after the test (commits become savepoints)."""
    connection = engine.connect()
    outer = connection.begin()
    s = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield s
    finally:
        s.close()
        outer.rollback()
        connection.close()


def is_postgres_url(url: str) -> bool:
    return url.startswith("postgres")


@pytest.fixture(autouse=True)
def _example_names_resolve(monkeypatch):
    """Names under `.example` (reserved, never in DNS) resolve to a public address in the tests, so
    that addresses such as https://firm.example/hook pass the outbound check (siyu.netguard) as a
    real firm's host would; every other name is resolved for real."""
    import ipaddress

    from siyu import netguard

    real = netguard.resolve

    def resolve(host: str, port: int):
        if host.lower().rstrip(".").endswith(".example"):
            return [ipaddress.ip_address("1.2.3.4")]
        return real(host, port)

    monkeypatch.setattr(netguard, "resolve", resolve)

