"""Pydantic shapes of the job queue's REST API. Payloads are not exposed: they are for handlers,
and operators diagnose with name, state, attempts and the (redacted) error."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class JobCounts(BaseModel):
    queued: int
    running: int
    failed: int = Field(description="failed at least once and waiting for a retry")
    dead: int = Field(description="out of attempts; only a person retries them")
    expired: int = Field(0, description="not run: their deadline passed before they could start")


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    queue: str
    state: str
    priority: int
    attempts_used: int = Field(description="attempts in the current run (a manual retry starts a new run)")
    max_attempts: int
    run_at: dt.datetime = Field(description="when the job may run next")
    enqueued_at: dt.datetime
    deadline_at: dt.datetime | None = Field(None, description="the job does not start after this (expired instead)")
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    last_error: str | None


class JobPage(BaseModel):
    items: list[JobOut]
    next_before_id: int | None = Field(description="pass as `before_id` for the next (older) page; null on the last")
