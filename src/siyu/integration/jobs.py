"""Outbound webhooks on the queue.

* `integration.webhooks` subscribes to every event in `WEBHOOK_EVENTS`: in the event job's
  transaction it creates one delivery per subscribed endpoint and enqueues its delivery job. A corp
  without an enabled endpoint for an event gets no job for it at all; for the others it runs in the
  event's together job with the other domains' database subscribers (one job per event, not one more).
* `integration.deliver_webhook` POSTs one delivery. The request holds no database transaction:
  the delivery is read in a short transaction, the POST is made, and the attempt is written in a
  transaction of its own (committed whatever happens next, so failed attempts are on record too).
  A non-2xx answer or no answer raises RetryLater with exponential backoff and jitter; after the
  job's last attempt the queue marks it dead and the delivery is `dead`."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
from sqlalchemy.orm import Session

from siyu import netguard
from siyu.db import session_scope
from siyu.integration import service
from siyu.integration.models import WebhookDelivery
from siyu.jobs.events import subscribe
from siyu.jobs.registry import JobContext, PermanentFailure, RetryLater, job_handler

log = logging.getLogger(__name__)


def _fan_out(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    if job.corp_id is None:
        return
    # The job's name is "event:<event>:integration.webhooks".
    event = job.name.split(":")[1]
    service.fan_out(session, corp_id=job.corp_id, event=event, payload=payload, source_key=f"job:{job.id}")


def describe_failure(exc: httpx.HTTPError) -> str:
    """What a delivery page and the job's error say of a failed request: its kind, never the
    socket's message or the receiver's body (they would tell an administrator about networks that
    Siyu can see and they cannot)."""
    if isinstance(exc, netguard.OutboundRefused):
        return "address refused: not a public address"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    return "the connection failed"


for _event in service.WEBHOOK_EVENTS:
    subscribe(_event, name="integration.webhooks", interested=service.wants_event(_event), together=True)(_fan_out)


@job_handler(service.DELIVER_JOB, max_attempts=service.MAX_ATTEMPTS)
def deliver_webhook(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    delivery_id = payload.get("delivery_id")
    if not isinstance(delivery_id, int):
        raise PermanentFailure("payload.delivery_id is missing")
    with session_scope() as s:
        delivery = s.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.state == "delivered":
            return
        endpoint = service.get_endpoint(s, corp_id=delivery.corp_id, endpoint_id=delivery.endpoint_id)
        if not endpoint.enabled:
            service.record_attempt(s, delivery_id=delivery.id, status_code=None, latency_ms=0,
                                   error="endpoint disabled", final=True)
            return
        request = service.outgoing(delivery, endpoint)
    status: int | None = None
    error = ""
    t0 = time.perf_counter()
    try:
        answer = netguard.post(request.url, content=request.body, headers=request.headers,
                               timeout=service.TIMEOUT_SECONDS)
        status = answer.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except httpx.HTTPError as exc:
        error = describe_failure(exc)
    latency_ms = int((time.perf_counter() - t0) * 1000)
    final = job.is_last_attempt
    with session_scope() as s:
        state = service.record_attempt(s, delivery_id=delivery_id, status_code=status, latency_ms=latency_ms,
                                       error=error, final=final)
    if state in ("delivered", "gone"):
        return
    log.info("webhook delivery %s attempt %d/%d failed: %s", delivery_id, job.attempt, job.max_attempts, error)
    raise RetryLater(service.retry_delay(job.attempt), f"webhook delivery failed: {error}")
