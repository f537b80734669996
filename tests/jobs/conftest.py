"""Fixtures of the job queue's tests.

Tests that only need one transaction use the shared `session` fixture (rolled back). Tests with
worker threads or processes need committed rows: they use `committed` (sessions on the test
database that really commit) and their own queue name, so a worker takes only their jobs, and
everything they made is deleted afterwards. On SQLite such a test must not also use `session`:
its open transaction holds the database's write lock for the whole test."""

from __future__ import annotations

import importlib
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, text
from sqlalchemy.orm import Session, sessionmaker

from siyu.jobs.models import Job, JobSchedule

TESTS_DIR = Path(__file__).resolve().parents[1]
HANDLERS_MODULE = "jobs.handlers"
EFFECT_TABLE = "job_test_effect"


@pytest.fixture(scope="session", autouse=True)
def _handlers() -> None:
    importlib.import_module(HANDLERS_MODULE)


@pytest.fixture
def queue() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def effect_table(engine) -> Iterator[str]:
    """The table the test handlers write their effects to. It is no model's (the migrations do not
    make it), so it lives only as long as the test that uses it: nothing after, such as the check of
    the models against the migrations, can find it in the test database."""
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE IF NOT EXISTS {EFFECT_TABLE} "
                          "(key VARCHAR(100) PRIMARY KEY, job_id BIGINT, attempt INTEGER)"))
    try:
        yield EFFECT_TABLE
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {EFFECT_TABLE}"))


@pytest.fixture
def committed(engine, queue, effect_table) -> Iterator[sessionmaker[Session]]:
    factory = sessionmaker(engine, expire_on_commit=False)
    yield factory
    with factory() as s:
        s.execute(delete(Job).where(Job.queue == queue))
        s.execute(delete(JobSchedule).where(JobSchedule.key.startswith(queue)))
        s.execute(text(f"DELETE FROM {EFFECT_TABLE} WHERE key LIKE :q"), {"q": f"{queue}%"})
        s.commit()


def worker_env(database_url: str, **extra: str) -> dict[str, str]:
    """Environment of a `siyu worker` subprocess on the test database with the test handlers."""
    env = dict(os.environ)
    env.update(
        SIYU_DATABASE_URL=database_url,
        SIYU_EXTRA_JOB_MODULES=HANDLERS_MODULE,
        PYTHONPATH=os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        SIYU_JOB_POLL_SECONDS="0.02",
        SIYU_LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


def worker_command(queue: str, concurrency: int = 2) -> list[str]:
    return [sys.executable, "-m", "siyu.cli", "worker", "--queues", queue, "--concurrency", str(concurrency)]
