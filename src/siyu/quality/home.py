"""Service quality on the home page: customers waiting past the reply timeout (an advisor's own;
the whole corp, or the reader's part of it, for compliance)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from siyu.console.home import Tile
from siyu.console.i18n import N_
from siyu.quality import service as quality
from siyu.tenancy.principal import Principal

LINK = "/compliance/quality#timeouts"


def tiles(session: Session, *, principal: Principal) -> list[Tile]:
    if not principal.has_role(*quality.READER_ROLES):
        return []
    visible = quality.viewer_userids(session, principal=principal)
    waiting = len(quality.open_alerts(session, corp_id=principal.corp_id, staff_userids=visible))
    tone = "alert" if waiting else "normal"
    out = []
    if principal.has_role("advisor"):
        out.append(Tile("advisor", "replies_overdue_mine", N_("Customers waiting past the reply timeout"), waiting,
                        LINK, tone=tone))
    if principal.has_role("compliance", "auditor", "administrator"):
        out.append(Tile("compliance", "replies_overdue", N_("Replies overdue"), waiting, LINK, tone=tone))
    return out
