"""Customers made the way WeCom makes them: an add event, then the profile read from WeCom."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

from sqlalchemy.orm import Session

from siyu.customers import contacts
from siyu.customers.models import Customer
from siyu.jobs.registry import JobContext
from siyu.wecom.schemas import ExternalContactDetail

_events = itertools.count(10_000_000)
T0 = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)


def external_id() -> str:
    return "wm" + uuid.uuid4().hex[:20]


def job_context(corp_id: int, job_id: int = 1) -> JobContext:
    now = dt.datetime.now(dt.UTC)
    return JobContext(id=job_id, name="test", attempt=1, max_attempts=5, queue="default", corp_id=corp_id,
                      run_at=now, enqueued_at=now, worker_id="test")


def add_payload(userid: str, external_userid: str, *, at: dt.datetime = T0, state: str | None = None,
                event_id: int | None = None) -> dict:
    payload = {"userid": userid, "external_userid": external_userid, "change_type": "add_external_contact",
               "create_time": int(at.timestamp()), "inbox_event_id": event_id or next(_events),
               "received_at": at.isoformat(), "wecom_corp_id": "wwtest"}
    if state:
        payload["state"] = state
    return payload


def profile(external_userid: str, name: str, follows: list[dict], *, gender: int = 1,
            unionid: str | None = None) -> ExternalContactDetail:
    return ExternalContactDetail.model_validate({
        "external_contact": {"external_userid": external_userid, "name": name, "gender": gender, "unionid": unionid},
        "follow_user": [{"userid": f["userid"], "remark": f.get("remark", ""), "createtime": f.get("createtime", 0),
                         "state": f.get("state"), "add_way": f.get("add_way", 1),
                         "tags": [{"tag_id": tid, "tag_name": name, "group_name": group, "type": 1}
                                  for tid, group, name in f.get("tags", [])]}
                        for f in follows],
    })


def make_customer(session: Session, corp_id: int, *, userid: str, name: str = "张伟", at: dt.datetime = T0,
                  state: str | None = None, remark: str = "", tags: list[tuple[str, str, str]] = (),
                  stage: str | None = None, external_userid: str | None = None) -> Customer:
    """A customer who added `userid` at `at` through channel `state`, with their profile read."""
    ext = external_userid or external_id()
    contacts.record_add(session, corp_id=corp_id, external_userid=ext, wecom_userid=userid, at=at, state=state,
                        source_key=f"test:{next(_events)}")
    customer = contacts.apply_profile(session, corp_id=corp_id, detail=profile(ext, name, [
        {"userid": userid, "remark": remark, "createtime": int(at.timestamp()), "state": state, "tags": list(tags)}]))
    if stage:
        contacts.change_stage(session, customer, stage, at=at, actor="test")
    session.flush()
    return customer
