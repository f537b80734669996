"""Jobs of the WeCom connector: turn stored callback events into domain events. (The welcome on
each add is sent by the acquisition domain: `siyu.acquisition.jobs.send_welcome`.)"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from siyu.jobs.registry import JobContext, PermanentFailure, job_handler
from siyu.tenancy.service import get_corp_by_wecom_id
from siyu.wecom import inbox, service
from siyu.wecom.events import parse_event

log = logging.getLogger(__name__)

@job_handler("wecom.process_event", max_attempts=10)
def process_event(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Publish the domain event of a stored callback event that was not dispatched when it arrived
    (the console's "process again", or an event stored before its corp was connected)."""
    event_id = payload.get("event_id")
    if not isinstance(event_id, int):
        raise PermanentFailure("payload.event_id must be an integer")
    row = inbox.get_event(session, event_id=event_id)
    if row.processed_at is not None:
        return
    corp = get_corp_by_wecom_id(session, wecom_corp_id=row.wecom_corp_id)
    if corp is None:
        raise PermanentFailure("no corp has this WeCom corp id any more")
    service.dispatch_event(session, corp_id=corp.id, event_id=row.id, natural_key=row.natural_key,
                           received_at=row.received_at, event=parse_event(row.plaintext))
