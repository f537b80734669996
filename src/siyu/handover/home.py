"""Handover on the home page: customers and groups escalated after their retries ran out."""

from __future__ import annotations

from sqlalchemy.orm import Session

from siyu.console.home import Tile
from siyu.console.i18n import N_
from siyu.handover import service as handover
from siyu.tenancy.principal import Principal


def tiles(session: Session, *, principal: Principal) -> list[Tile]:
    if not principal.has_role(*handover.READER_ROLES) or not principal.has_role("compliance", "auditor",
                                                                                  "administrator"):
        return []
    n = handover.escalation_count(session, corp_id=principal.corp_id)
    return [Tile("compliance", "handovers_escalated", N_("Handovers escalated"), n, "/compliance/handovers",
                 tone="alert" if n else "normal")]
