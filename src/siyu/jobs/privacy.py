"""The job queue's part in retention (see `siyu.compliance.privacy`): a corp's finished jobs (done or
dead) older than the corp's keep period for record class "job". Queued and running jobs are never
touched."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from siyu.compliance.privacy import purge_older, register_purger
from siyu.jobs.models import Job, JobState

FINISHED = (JobState.DONE.value, JobState.DEAD.value)


def purge(session: Session, *, corp_id: int, before: dt.datetime, limit: int) -> int:
    return purge_older(session, Job, corp_id=corp_id, at=Job.finished_at, before=before, limit=limit,
                       where=(Job.state.in_(FINISHED),))


register_purger("job", purge)
