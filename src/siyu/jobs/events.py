"""Domain events over the job queue: one domain reacts to another's event without importing its
tables or services.

    # siyu/customers/jobs.py
    @subscribe("customer.added", name="customers.upsert_contact")
    def upsert_contact(session, payload, job): ...

    # anywhere, inside the transaction that makes the event true
    publish(session, "customer.added", {"userid": ..., "external_userid": ...},
            corp_id=corp.id, key=inbox_event.natural_key)

`publish` enqueues one job per subscriber in the caller's transaction, so the subscribers run if
and only if the publisher commits, each with its own retries: a failing subscriber does not hold
back or repeat the others. With a `key`, publishing the same event again (a redelivered WeCom
callback) enqueues nothing new: the idempotency key is event + key + subscriber."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from siyu.jobs import registry
from siyu.jobs.models import Job
from siyu.jobs.registry import Handler
from siyu.jobs.service import IDEMPOTENCY_KEY_MAX, enqueue, enqueue_many


@dataclass(frozen=True)
class Subscriber:
    event: str
    name: str  # stable id of the subscriber, part of its job name and idempotency keys
    job_name: str
    queue: str
    priority: int
    max_attempts: int | None
    # Whether the corp wants this subscriber's job at all (None: always). Asked at publish time, in
    # the publisher's transaction, so it must be cheap (cache what it reads).
    interested: Callable[[Session, int | None], bool] | None = None
    # The deadline of this subscriber's job for an event (None: none), from the event's payload,
    # e.g. a welcome code's 20 s from the add's CreateTime. Asked at publish time.
    deadline: Callable[[Mapping[str, Any]], dt.datetime | None] | None = None

    def deadline_for(self, payload: Mapping[str, Any]) -> dt.datetime | None:
        return self.deadline(payload) if self.deadline is not None else None


_subscribers: dict[str, dict[str, Subscriber]] = {}
_lock = threading.Lock()


def job_name_for(event: str, subscriber: str) -> str:
    return f"event:{event}:{subscriber}"


def subscribe(
    event: str,
    *,
    name: str | None = None,
    queue: str = "default",
    priority: int = 0,
    max_attempts: int | None = None,
    interested: Callable[[Session, int | None], bool] | None = None,
    deadline: Callable[[Mapping[str, Any]], dt.datetime | None] | None = None,
) -> Callable[[Handler], Handler]:
    """Registers a handler `(session, payload, job) -> None` for `event`.

    Give a stable `name` (e.g. "customers.upsert_contact"): it is part of the job name that is
    stored with each queued job, so renaming a function must not orphan jobs already queued. It
    defaults to the function's module and qualified name. `interested(session, corp_id)` lets a
    subscriber that most corps do not use (outbound webhooks) skip the job for the others.
    `deadline(payload)` gives the job a deadline (`siyu.jobs.service.enqueue`'s `deadline_at`)."""

    def decorator(fn: Handler) -> Handler:
        sub_name = name or f"{fn.__module__}.{fn.__qualname__}"
        job_name = job_name_for(event, sub_name)
        registry.register(job_name, fn, max_attempts=max_attempts)
        with _lock:
            _subscribers.setdefault(event, {})[sub_name] = Subscriber(
                event=event, name=sub_name, job_name=job_name, queue=queue, priority=priority,
                max_attempts=max_attempts, interested=interested, deadline=deadline,
            )
        return fn

    return decorator


def subscribers(event: str) -> list[Subscriber]:
    return sorted(_subscribers.get(event, {}).values(), key=lambda s: s.name)


def receiving(session: Session, event: str, corp_id: int | None) -> list[Subscriber]:
    """The subscribers of `event` that want this corp's event."""
    return [sub for sub in subscribers(event) if sub.interested is None or sub.interested(session, corp_id)]


def unsubscribe(event: str, name: str) -> None:
    """For tests: removes a subscriber and its handler."""
    with _lock:
        sub = _subscribers.get(event, {}).pop(name, None)
    if sub is not None:
        registry.unregister(sub.job_name)


def _event_key(event: str, key: str, subscriber: str) -> str:
    raw = f"event:{event}:{key}:{subscriber}"
    if len(raw) <= IDEMPOTENCY_KEY_MAX:
        return raw
    return "event:" + hashlib.sha256(raw.encode()).hexdigest()


def publish(
    session: Session,
    event: str,
    payload: Mapping[str, Any],
    *,
    corp_id: int | None = None,
    key: str | None = None,
) -> list[Job]:
    """Enqueues one job per subscriber of `event` in the caller's transaction; returns them.

    Every domain's `jobs` module is imported first (once per process), so a web process
    publishes to the same subscribers that the workers run."""
    registry.ensure_loaded()
    return [
        enqueue(
            session,
            name=sub.job_name,
            payload=payload,
            queue=sub.queue,
            priority=sub.priority,
            max_attempts=sub.max_attempts,
            corp_id=corp_id,
            idempotency_key=_event_key(event, key, sub.name) if key is not None else None,
            deadline_at=sub.deadline_for(payload),
        )
        for sub in receiving(session, event, corp_id)
    ]


def publish_ids(
    session: Session,
    event: str,
    payload: Mapping[str, Any],
    *,
    corp_id: int | None = None,
    key: str | None = None,
    returning: bool = True,
) -> list[int]:
    """`publish` for hot paths (the WeCom callback endpoint): the same jobs, enqueued in one
    multi-row INSERT; returns the ids of the jobs it created (none for a key published before),
    or nothing with `returning=False` (cheaper)."""
    registry.ensure_loaded()
    return enqueue_many(session, [
        {"name": sub.job_name, "payload": payload, "queue": sub.queue, "priority": sub.priority,
         "max_attempts": sub.max_attempts, "corp_id": corp_id,
         "idempotency_key": _event_key(event, key, sub.name) if key is not None else None,
         "deadline_at": sub.deadline_for(payload)}
        for sub in receiving(session, event, corp_id)
    ], returning=returning)
