"""Job handlers for the job queue's tests. Worker subprocesses load this module through
SIYU_EXTRA_JOB_MODULES=jobs.handlers (with tests/ on PYTHONPATH); the test process imports it
under the same name, so each handler is registered once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from siyu.jobs.registry import JobContext, PermanentFailure, RetryLater, job_handler

EFFECT_TABLE = "job_test_effect"


def record_effect(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    # The effect's key is unique: a second commit of the same effect would fail loudly.
    session.execute(
        text(f"INSERT INTO {EFFECT_TABLE} (key, job_id, attempt) VALUES (:key, :job_id, :attempt)"),
        {"key": payload["key"], "job_id": job.id, "attempt": job.attempt},
    )


@job_handler("test.effect")
def effect(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Writes its effect; on the first attempt it can then hang inside its transaction (the crash
    test kills the worker there, between the effect and the commit)."""
    record_effect(session, payload, job)
    if payload.get("hang_file") and job.attempt == 1:
        Path(payload["hang_file"]).write_text("effect written, not committed")
        time.sleep(600)


@job_handler("test.slow")
def slow(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Announces that it started, works for a while outside any transaction, then writes its effect."""
    if payload.get("started_file"):
        Path(payload["started_file"]).write_text("started")
    time.sleep(payload.get("seconds", 1.0))
    record_effect(session, payload, job)


@job_handler("test.ok")
def ok(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    if "key" in payload:
        record_effect(session, payload, job)


@job_handler("test.boom")
def boom(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    if "key" in payload:
        record_effect(session, payload, job)  # rolled back with the failure
    raise RuntimeError("boom: corpsecret=s3cr3t-value phone 13800138000")


@job_handler("test.flaky")
def flaky(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Fails its first attempt with an immediate retry, then succeeds."""
    if job.attempt == 1:
        raise RetryLater(0, "not yet")
    record_effect(session, payload, job)


@job_handler("test.permanent")
def permanent(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    raise PermanentFailure("the payload can never work")


@job_handler("test.commits")
def commits(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    session.commit()
