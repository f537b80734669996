"""The job queue on the home page: jobs that died (operations, administrators) and how long the
oldest waiting job has waited (administrators)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.console.home import Tile
from siyu.console.i18n import N_
from siyu.db import utcnow
from siyu.jobs import service
from siyu.jobs.models import Job
from siyu.tenancy.principal import Principal

# Waiting this long means workers are missing or overwhelmed.
LAG_WARN_SECONDS = 60


def tiles(session: Session, *, principal: Principal) -> list[Tile]:
    if not principal.has_role("operations", "administrator"):
        return []
    counts = service.counts_by_state(session, corp_id=principal.corp_id)
    dead = counts.get("dead", 0)
    out = [Tile("operations", "jobs_dead", N_("Jobs that died"), dead, "/jobs?state=dead",
                tone="alert" if dead else "normal")]
    if principal.has_role("administrator"):
        now = utcnow()
        oldest = session.scalar(select(func.min(Job.run_at)).where(
            Job.corp_id == principal.corp_id, Job.state.in_(("queued", "failed")), Job.run_at <= now))
        lag = 0 if oldest is None else max(0, int((now - (oldest if oldest.tzinfo else
                                                           oldest.replace(tzinfo=dt.UTC))).total_seconds()))
        out.append(Tile("administrator", "queue_lag", N_("Oldest job waiting (seconds)"), lag, "/jobs?state=queued",
                        tone="alert" if lag >= LAG_WARN_SECONDS else "normal"))
    return out
