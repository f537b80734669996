"""Compliance on the home page: content waiting for a checker, and open chat-archive alerts by
severity — each figure counts what its link lists."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.compliance import archive
from siyu.compliance.models import ArchiveAlert, ContentItem
from siyu.console.home import Tile
from siyu.console.i18n import N_
from siyu.tenancy.principal import Principal

SEVERITY_LABELS = {"block": N_("Open alerts: blocking"), "review": N_("Open alerts: to review")}


def tiles(session: Session, *, principal: Principal) -> list[Tile]:
    if not principal.has_role("compliance", "auditor", "administrator"):
        return []
    corp_id = principal.corp_id
    waiting = session.scalar(select(func.count()).select_from(ContentItem).where(
        ContentItem.corp_id == corp_id, ContentItem.status == "submitted")) or 0
    out = [Tile("compliance", "approvals_waiting", N_("Content waiting for approval"), waiting,
                "/compliance/approvals?tab=queue", tone="warn" if waiting else "normal")]
    if principal.has_role(*archive.READER_ROLES):
        counts = dict(session.execute(
            select(ArchiveAlert.severity, func.count()).where(ArchiveAlert.corp_id == corp_id,
                                                              ArchiveAlert.status == "open")
            .group_by(ArchiveAlert.severity)).all())
        for severity, label in SEVERITY_LABELS.items():
            n = counts.get(severity, 0)
            out.append(Tile("compliance", f"alerts_open_{severity}", label, n,
                            f"/compliance/alerts?status=open&severity={severity}",
                            tone=("alert" if severity == "block" else "warn") if n else "normal"))
    return out
