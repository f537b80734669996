"""Helpers for tests that need saved content approved (compliance's content gate)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.compliance import approval
from siyu.compliance.models import ContentItem
from siyu.tenancy.models import Role
from tenancy.factories import make_staff, principal_of


def checker(session: Session, corp_id: int):
    """A compliance officer of the corp (never the maker of anything yet)."""
    return principal_of(make_staff(session, corp_id, roles=(Role.COMPLIANCE,), name="合规审核员"))


def approve_all(session: Session, corp_id: int, *, officer=None) -> int:
    """Approve every submitted content item of the corp as a compliance officer; how many."""
    officer = officer or checker(session, corp_id)
    items = list(session.scalars(select(ContentItem).where(ContentItem.corp_id == corp_id,
                                                           ContentItem.status == "submitted")))
    for item in items:
        approval.approve(session, corp_id=corp_id, actor=officer, item_id=item.id)
    session.flush()
    return len(items)


def approve_all_committed(corp_id: int) -> int:
    """`approve_all` in its own committed transaction (for pipeline tests over real jobs)."""
    from siyu.db import session_scope

    with session_scope() as s:
        return approve_all(s, corp_id)
