"""Personal information on the home page: data-subject requests not yet answered."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.console.home import Tile
from siyu.console.i18n import N_
from siyu.privacy import service as privacy
from siyu.privacy.models import DataSubjectRequest
from siyu.tenancy.principal import Principal

OPEN = ("requested", "in_progress")


def tiles(session: Session, *, principal: Principal) -> list[Tile]:
    if not principal.has_role(*privacy.READER_ROLES):
        return []
    n = session.scalar(select(func.count()).select_from(DataSubjectRequest).where(
        DataSubjectRequest.corp_id == principal.corp_id, DataSubjectRequest.status.in_(OPEN))) or 0
    return [Tile("compliance", "data_requests_open", N_("Data-subject requests to answer"), n,
                 "/compliance/privacy#requests", tone="warn" if n else "normal")]
