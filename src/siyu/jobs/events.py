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
callback) enqueues nothing new: the idempotency key is event + key + subscriber.

Subscribers that only write to the database (no call to WeCom or the firm, no transaction of their
own) may say `together=True`: the together-subscribers of an event on one queue then share ONE job
(`event:<event>:together:<queue>`), whose handler runs them one after the other in its transaction,
each in a savepoint. A job costs a lease, a completion and a commit whatever its handler does, so an
add (upsert, attribution, webhook fan-out) costs one of them instead of three. Their independence
stays: a together-subscriber that raises has its savepoint rolled back and is handed to a job of its
own (the same job it would have had without `together`, same idempotency key), which retries or fails
alone while the others' work commits (they run again, each in a savepoint, after the first try of
the job's transaction is rolled back)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from siyu.jobs import registry
from siyu.jobs.models import Job
from siyu.jobs.registry import Handler, JobContext, PermanentFailure
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
    # Runs in the event's shared job with the event's other together-subscribers of its queue
    # (database work only; see the module's docstring).
    together: bool = False

    def deadline_for(self, payload: Mapping[str, Any]) -> dt.datetime | None:
        return self.deadline(payload) if self.deadline is not None else None


log = logging.getLogger(__name__)

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
    together: bool = False,
) -> Callable[[Handler], Handler]:
    """Registers a handler `(session, payload, job) -> None` for `event`.

    Give a stable `name` (e.g. "customers.upsert_contact"): it is part of the job name that is
    stored with each queued job, so renaming a function must not orphan jobs already queued. It
    defaults to the function's module and qualified name. `interested(session, corp_id)` lets a
    subscriber that most corps do not use (outbound webhooks) skip the job for the others.
    `deadline(payload)` gives the job a deadline (`siyu.jobs.service.enqueue`'s `deadline_at`).
    `together=True`: the handler only writes to the database, in the session it is given, and may
    share a job with the event's other such subscribers of its queue (not with a deadline)."""
    if together and deadline is not None:
        raise ValueError("a subscriber with a deadline has a job of its own (together=False)")

    def decorator(fn: Handler) -> Handler:
        sub_name = name or f"{fn.__module__}.{fn.__qualname__}"
        job_name = job_name_for(event, sub_name)
        registry.register(job_name, fn, max_attempts=max_attempts)
        with _lock:
            _subscribers.setdefault(event, {})[sub_name] = Subscriber(
                event=event, name=sub_name, job_name=job_name, queue=queue, priority=priority,
                max_attempts=max_attempts, interested=interested, deadline=deadline, together=together,
            )
        if together:
            shared = together_job_name(event, queue)
            registry.register(shared, _run_together)
            registry.batch_handler(shared)(_run_together_many)
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


def together_job_name(event: str, queue: str) -> str:
    """The job that runs the together-subscribers of `event` on `queue` (see the module docstring)."""
    return f"event:{event}:{TOGETHER}:{queue}"


TOGETHER = "together"


def _jobs_for(session: Session, event: str, payload: Mapping[str, Any], *, corp_id: int | None,
              key: str | None, subs: list[Subscriber] | None = None) -> list[dict[str, Any]]:
    """The jobs an event makes (`enqueue` keyword arguments): one per receiving subscriber, except
    that the receiving together-subscribers of one queue share one job when there are several.
    `subs`: the receiving subscribers, when the caller asked already."""
    if subs is None:
        subs = receiving(session, event, corp_id)
    groups: dict[str, list[Subscriber]] = {}
    for sub in subs:
        if sub.together:
            groups.setdefault(sub.queue, []).append(sub)
    out: list[dict[str, Any]] = []
    for sub in subs:
        group = groups.get(sub.queue) if sub.together else None
        if group is not None and len(group) > 1:
            if sub is group[0]:
                out.append({
                    "name": together_job_name(event, sub.queue),
                    # The event's payload as published, and who runs on it (asked now, as for
                    # separate jobs: a corp's interest is that of the moment the event happened).
                    "payload": {"event": dict(payload), "subscribers": [g.name for g in group], "key": key},
                    "queue": sub.queue, "priority": min(g.priority for g in group), "max_attempts": None,
                    "corp_id": corp_id,
                    "idempotency_key": _event_key(event, key, f"{TOGETHER}:{sub.queue}") if key is not None else None,
                    "deadline_at": None,
                })
            continue
        out.append(_own_job(sub, event, payload, corp_id=corp_id, key=key))
    return out


def _own_job(sub: Subscriber, event: str, payload: Mapping[str, Any], *, corp_id: int | None,
             key: str | None) -> dict[str, Any]:
    return {"name": sub.job_name, "payload": payload, "queue": sub.queue, "priority": sub.priority,
            "max_attempts": sub.max_attempts, "corp_id": corp_id,
            "idempotency_key": _event_key(event, key, sub.name) if key is not None else None,
            "deadline_at": sub.deadline_for(payload)}


def publish(
    session: Session,
    event: str,
    payload: Mapping[str, Any],
    *,
    corp_id: int | None = None,
    key: str | None = None,
) -> list[Job]:
    """Enqueues the event's jobs in the caller's transaction (one per subscriber, one per queue for
    together-subscribers); returns them.

    Every domain's `jobs` module is imported first (once per process), so a web process
    publishes to the same subscribers that the workers run."""
    registry.ensure_loaded()
    return [enqueue(session, **job) for job in _jobs_for(session, event, payload, corp_id=corp_id, key=key)]


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
    return enqueue_many(session, _jobs_for(session, event, payload, corp_id=corp_id, key=key), returning=returning)


def publish_many(session: Session, events: Iterable[tuple[str, Mapping[str, Any], int | None, str | None]]) -> None:
    """`publish_ids(..., returning=False)` for many events at once, (event, payload, corp_id, key)
    each: their jobs in one multi-row INSERT, each corp's interest asked once per event name (the
    WeCom callback endpoint's group commit publishes a whole batch of callbacks this way)."""
    registry.ensure_loaded()
    wanted: dict[tuple[str, int | None], list[Subscriber]] = {}
    jobs: list[dict[str, Any]] = []
    for event, payload, corp_id, key in events:
        subs = wanted.get((event, corp_id))
        if subs is None:
            subs = wanted[(event, corp_id)] = receiving(session, event, corp_id)
        jobs += _jobs_for(session, event, payload, corp_id=corp_id, key=key, subs=subs)
    enqueue_many(session, jobs, returning=False)


# --- the shared job of together-subscribers ---------------------------------------------------------


def _together_parts(payload: Mapping[str, Any], job: JobContext) -> tuple[str, dict[str, Any], list[str], str | None]:
    # The job's name is "event:<event>:together:<queue>" (event names have no colon).
    parts = job.name.split(":")
    data, names, key = payload.get("event"), payload.get("subscribers"), payload.get("key")
    if (len(parts) != 4 or not isinstance(data, dict) or not isinstance(names, list)
            or not all(isinstance(n, str) for n in names) or not (key is None or isinstance(key, str))):
        raise PermanentFailure("not the payload of a together job: event, subscribers, key")
    return parts[1], data, names, key


def _subscriber_job(job: JobContext, event: str, name: str) -> JobContext:
    """The context a subscriber sees: its own job name (as in a job of its own), this job's id."""
    return replace(job, name=job_name_for(event, name))


def _hand_on(session: Session, event: str, name: str, data: dict[str, Any], job: JobContext,
             key: str | None, why: str) -> None:
    """A together-subscriber that failed here gets the job it would have had on its own, which
    retries (or fails) alone."""
    sub = _subscribers.get(event, {}).get(name)
    if sub is None:  # unsubscribed since: its job waits (UnknownJob) until a worker knows it again
        sub = Subscriber(event=event, name=name, job_name=job_name_for(event, name), queue=job.queue, priority=0,
                         max_attempts=None)
    log.warning("job %s (%s): subscriber %s failed (%s); it runs in a job of its own", job.id, job.name, name,
                why)
    enqueue(session, **_own_job(sub, event, data, corp_id=job.corp_id, key=key))


def _run_together(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Runs the event's together-subscribers one after the other in the job's transaction. If one
    raises, that transaction is rolled back and they run again, each in a savepoint this time: the
    one that fails is rolled back alone and handed to a job of its own. (Savepoints only then: they
    cost two statements a subscriber, round trips on PostgreSQL, and almost every run succeeds.)"""
    event, data, names, key = _together_parts(payload, job)
    specs = [(name, registry.get_handler(job_name_for(event, name))) for name in names]
    if all(spec is not None for _name, spec in specs):
        try:
            for name, spec in specs:
                spec.fn(session, dict(data), _subscriber_job(job, event, name))
            return
        except Exception as exc:
            log.info("job %s (%s): %s; its subscribers run again one by one", job.id, job.name, type(exc).__name__)
            session.rollback()
    for name, spec in specs:
        if spec is None:
            _hand_on(session, event, name, data, job, key, "no handler in this worker")
            continue
        savepoint = session.begin_nested()
        try:
            spec.fn(session, dict(data), _subscriber_job(job, event, name))
            savepoint.commit()
        except Exception as exc:
            savepoint.rollback()
            _hand_on(session, event, name, data, job, key, type(exc).__name__)


def _run_together_many(session: Session, payloads: list[dict[str, Any]], jobs: list[JobContext]) -> None:
    """Several together jobs of one event: each subscriber once over all of them (through its own
    batch handler when it has one), without savepoints; if anything raises, the worker rolls the
    batch back and runs the jobs one by one (`_run_together`, where a failure stays alone)."""
    work: dict[str, list[tuple[dict[str, Any], JobContext]]] = {}
    for payload, job in zip(payloads, jobs, strict=True):
        event, data, names, _key = _together_parts(payload, job)
        for name in names:
            work.setdefault(name, []).append((data, _subscriber_job(job, event, name)))
    for items in work.values():
        spec = registry.get_handler(items[0][1].name)
        if spec is None:
            raise LookupError(f"no handler for {items[0][1].name!r} in this worker")
        if spec.many is not None and len(items) > 1:
            spec.many(session, [dict(d) for d, _ in items], [ctx for _, ctx in items])
        else:
            for data, ctx in items:
                spec.fn(session, dict(data), ctx)
