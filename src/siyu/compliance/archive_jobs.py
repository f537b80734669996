"""Jobs of chat-archive monitoring: poll each connected corp's archive feed, record consent.

`compliance.archive_poll_all` runs every minute (a built-in schedule) and enqueues one
`compliance.archive_poll` per corp with a WeCom connection, with an idempotency key per corp and
minute, so a slow poll is never doubled. Each poll reads the feed from the corp's cursor. A poll that
fails is recorded on the cursor and the corp is left alone for `FAILED_POLL_PAUSE`.

`chat.customer_message` (a customer's own 1-on-1 message read from the feed): "TD" / "退订" withdraws
marketing consent through `privacy.service.record_chat_reply` (`compliance.unsubscribe_reply`)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.compliance import archive, finance_sdk
from siyu.compliance.models import ArchiveCursor
from siyu.db import utcnow
from siyu.errors import NotFound
from siyu.jobs.events import subscribe
from siyu.jobs.registry import JobContext, builtin_schedule, job_handler
from siyu.jobs.service import enqueue
from siyu.privacy import service as privacy
from siyu.tenancy.service import connected_corp_ids

log = logging.getLogger(__name__)

FAILED_POLL_PAUSE = dt.timedelta(minutes=5)


@job_handler("compliance.archive_poll_all")
def poll_all(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    now = utcnow()
    minute = now.strftime("%Y%m%d%H%M")
    # A corp whose last poll failed (no archive feed, WeCom unreachable, a wrong secret) is left
    # alone for FAILED_POLL_PAUSE instead of being tried, and holding a worker, every minute.
    failing = set(session.scalars(select(ArchiveCursor.corp_id).where(
        ArchiveCursor.last_error != "", ArchiveCursor.polled_at > now - FAILED_POLL_PAUSE)))
    for corp_id in connected_corp_ids(session):
        if corp_id in failing:
            continue
        enqueue(session, name="compliance.archive_poll", payload={}, corp_id=corp_id,
                idempotency_key=f"compliance.archive_poll:{corp_id}:{minute}")


@job_handler("compliance.archive_poll", max_attempts=3)
def poll(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    if job.corp_id is None:
        return
    sdk = None
    try:
        # Before this session begins: the Finance SDK when the corp reads its archive through it,
        # otherwise the feed URL of its WeCom connection (the emulator, or a bridge serving it).
        sdk = finance_sdk.sdk_fetcher(corp_id=job.corp_id)
        fetch = sdk or archive.http_fetcher(corp_id=job.corp_id)
        result = archive.poll_feed(session, corp_id=job.corp_id, fetch=fetch)
    except NotFound:
        return  # not connected (any more): nothing to poll
    except archive.FeedError as exc:
        # On the cursor (shown on the alerts page); `poll_all` tries the corp again after a pause.
        archive.record_poll_failure(session, corp_id=job.corp_id, error=str(exc))
        log.warning("archive poll of corp %s failed: %s", job.corp_id, exc)
        return
    finally:
        if sdk is not None:
            sdk.close()
    if result.stored or result.rejected:
        log.info("archive poll of corp %s: %s", job.corp_id, result.as_dict())


@subscribe("customer.archive_consented", name="compliance.archive_consent")
def record_consent(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    external_userid = payload.get("external_userid")
    if job.corp_id is None or not isinstance(external_userid, str) or not external_userid:
        return
    archive.record_consent(session, corp_id=job.corp_id, external_userid=external_userid,
                           staff_userid=str(payload.get("userid") or ""))


builtin_schedule("compliance.archive_poll_all", cron="* * * * *", name="compliance.archive_poll_all")


# A customer's "TD" / "退订" withdraws marketing consent (personal information, `siyu.privacy`).
@subscribe(archive.CUSTOMER_MESSAGE_EVENT, name="compliance.unsubscribe_reply")
def unsubscribe_reply(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """The payload has ids only; the text is read from the archive (encrypted at rest)."""
    external_userid = payload.get("customer_userid")
    if job.corp_id is None or not isinstance(external_userid, str) or payload.get("msgtype") != "text":
        return
    text = archive.customer_message_text(session, corp_id=job.corp_id, msgid=payload.get("msgid"))
    if text is None:
        return
    privacy.record_chat_reply(session, corp_id=job.corp_id, external_userid=external_userid, text=text,
                              staff_userid=str(payload.get("staff_userid") or ""))
