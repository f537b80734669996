"""The job queue's part in retention (see `siyu.privacy`): a corp's finished jobs (done or dead) older
than the corp's keep period for record class "job". Queued and running jobs are never touched.

The job queue sits below personal information in the dependency order, so it does not register
itself: it exposes `PURGERS`, which `privacy.service` registers when it loads each domain's module."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from siyu.jobs.models import Job, JobState

FINISHED = (JobState.DONE.value, JobState.DEAD.value)


def purge(session: Session, *, corp_id: int, before: dt.datetime, limit: int) -> int:
    """Delete at most `limit` of the corp's finished jobs that finished before `before`, oldest ids first."""
    ids = list(session.scalars(select(Job.id).where(Job.corp_id == corp_id, Job.finished_at < before,
                                                    Job.state.in_(FINISHED)).order_by(Job.id).limit(limit)))
    if ids:
        session.execute(delete(Job).where(Job.id.in_(ids)))
    return len(ids)


PURGERS = {"job": purge}
