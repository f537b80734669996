"""Job handlers by name. Each domain registers its handlers in `siyu/<domain>/jobs.py`:

    from siyu.jobs.registry import JobContext, job_handler

    @job_handler("customers.upsert_contact")
    def upsert_contact(session: Session, payload: dict, job: JobContext) -> None:
        ...

A handler runs inside the transaction that also marks its job done, so its database writes and
the completion commit together. It must not commit or roll back the session itself. A send to
the outside world should record an effect keyed by `job.effect_key(...)` in that transaction,
so a re-run after a crash can tell that the send already happened."""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

EXTRA_MODULES_ENV = "SIYU_EXTRA_JOB_MODULES"


@dataclass(frozen=True)
class JobContext:
    """What a handler knows about the job it runs (the payload is passed separately)."""

    id: int
    name: str
    attempt: int  # 1 on the first run of this job
    max_attempts: int
    queue: str
    corp_id: int | None
    run_at: dt.datetime
    enqueued_at: dt.datetime
    worker_id: str
    # The job must not start after this (None: no deadline); a retry past it expires the job.
    deadline_at: dt.datetime | None = None
    # Extends this job's lease; set by the worker (a handler that runs long may call it, though
    # the worker's heartbeat already extends the leases of all jobs it holds).
    _extend: Callable[[float | None], bool] | None = field(default=None, repr=False, compare=False)

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    def effect_key(self, *parts: object) -> str:
        """A stable key for an outside effect of this job (same on every attempt)."""
        return ":".join(["job", str(self.id), *(str(p) for p in parts)])

    def extend_lease(self, seconds: float | None = None) -> bool:
        """Pushes the lease out; False when the lease was lost (another worker owns the job)."""
        return self._extend(seconds) if self._extend is not None else True


class Handler(Protocol):
    def __call__(self, session: Session, payload: dict[str, Any], job: JobContext) -> None: ...


class BatchHandler(Protocol):
    def __call__(self, session: Session, payloads: list[dict[str, Any]], jobs: list[JobContext]) -> None: ...


@dataclass(frozen=True)
class HandlerSpec:
    name: str
    fn: Handler
    max_attempts: int | None = None
    # Runs several leased jobs of this name in one call and one transaction (see `batch_handler`).
    many: BatchHandler | None = None


class RetryLater(Exception):  # noqa: N818 - reads as an instruction to the worker
    """Raise from a handler to retry after `delay` seconds (e.g. a rate limit); counts as an attempt."""

    def __init__(self, delay: float, reason: str = "retry requested"):
        super().__init__(reason)
        self.delay = max(0.0, float(delay))


class DeadlinePassed(Exception):  # noqa: N818
    """Raise from a handler when its work can no longer be done in time (its deadline, or a retry
    it needs would start after it): the job is recorded `expired`, not failed."""


class PermanentFailure(Exception):  # noqa: N818
    """Raise from a handler when retrying cannot help (bad payload): the job goes dead at once."""


_handlers: dict[str, HandlerSpec] = {}
_lock = threading.Lock()
_loaded = False


def job_handler(name: str, *, max_attempts: int | None = None) -> Callable[[Handler], Handler]:
    """Registers `fn` as the handler of jobs called `name`."""
    if not name or len(name) > 200:
        raise ValueError("a job name is 1-200 characters")

    def decorator(fn: Handler) -> Handler:
        register(name, fn, max_attempts=max_attempts)
        return fn

    return decorator


def register(name: str, fn: Handler, *, max_attempts: int | None = None) -> None:
    with _lock:
        existing = _handlers.get(name)
        if existing is not None and _identity(existing.fn) != _identity(fn):
            raise ValueError(f"job name {name!r} is already handled by {_identity(existing.fn)}")
        # The same function registered again (a module imported twice under test) replaces itself.
        many = existing.many if existing is not None else None
        _handlers[name] = HandlerSpec(name=name, fn=fn, max_attempts=max_attempts, many=many)


def batch_handler(name: str) -> Callable[[BatchHandler], BatchHandler]:
    """Registers `fn(session, payloads, jobs)` to run several due jobs called `name` at once: a
    worker that holds more than one of them runs them in one call, in one transaction that also
    marks them all done (one commit instead of one per job: per-event work such as recording adds
    or attributing them to channels, under a burst). It must do exactly what the single handler
    does for each payload. If it raises, or a lease was lost, the transaction rolls back and the
    worker runs the jobs one by one through the single handler (so one bad payload fails alone).
    Register the single handler first."""

    def decorator(fn: BatchHandler) -> BatchHandler:
        with _lock:
            spec = _handlers.get(name)
            if spec is None:
                raise ValueError(f"register the handler of {name!r} before its batch handler")
            _handlers[name] = HandlerSpec(name=name, fn=spec.fn, max_attempts=spec.max_attempts, many=fn)
        return fn

    return decorator


def unregister(name: str) -> None:
    with _lock:
        _handlers.pop(name, None)


def _identity(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def get_handler(name: str) -> HandlerSpec | None:
    return _handlers.get(name)


def handler_names() -> list[str]:
    return sorted(_handlers)


def extra_modules_from_env() -> list[str]:
    return [m.strip() for m in os.environ.get(EXTRA_MODULES_ENV, "").split(",") if m.strip()]


def load_handlers(extra: Iterable[str] = ()) -> list[str]:
    """Imports `siyu.<domain>.jobs` for every domain, then the modules named in
    SIYU_EXTRA_JOB_MODULES (comma-separated) and `extra`. Returns the modules imported."""
    global _loaded
    from siyu import DOMAINS

    modules: list[str] = []
    for domain in DOMAINS:
        name = f"siyu.{domain}.jobs"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        modules.append(name)
    for name in [*extra_modules_from_env(), *extra]:
        importlib.import_module(name)
        modules.append(name)
    _loaded = True
    return modules


def ensure_loaded() -> None:
    """Loads every domain's handlers once per process (publishers need the subscriber list)."""
    if not _loaded:
        load_handlers()


# --- queue policies ---------------------------------------------------------------------------------

_lifo_override: dict[str, float] | None = None


def lifo_policies() -> dict[str, float]:
    """Queues served newest first under backlog -> the oldest due job's age (seconds) from which
    they are (SIYU_JOB_LIFO_QUEUES; by default the welcome queue after 3 s)."""
    if _lifo_override is not None:
        return _lifo_override
    from siyu.config import get_settings

    return get_settings().job_lifo_queues


def set_lifo_policies(policies: dict[str, float] | None) -> None:
    """For tests and benchmarks: replace the configured policies in this process (None: back to
    the configuration)."""
    global _lifo_override
    _lifo_override = dict(policies) if policies is not None else None


# --- schedules declared in code ------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleSpec:
    key: str
    cron: str
    name: str
    payload: dict[str, Any] = field(default_factory=dict)
    queue: str = "default"
    timezone: str = "Asia/Shanghai"


_schedules: dict[str, ScheduleSpec] = {}


def builtin_schedule(
    key: str,
    *,
    cron: str,
    name: str,
    payload: dict[str, Any] | None = None,
    queue: str = "default",
    timezone: str = "Asia/Shanghai",
) -> None:
    """Declares a recurring job in code (e.g. nightly maintenance); workers create or update its
    row in the schedule table at start. An operator may still disable it there."""
    from siyu.jobs.schedule import parse_cron

    _schedules[key] = ScheduleSpec(
        key=key, cron=parse_cron(cron), name=name, payload=dict(payload or {}), queue=queue, timezone=timezone
    )


def builtin_schedules() -> list[ScheduleSpec]:
    return [_schedules[k] for k in sorted(_schedules)]
