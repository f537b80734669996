"""The handover domain's customer-facing content for compliance's content gate: an in-service
transfer's message (kind "handover", owner the handover)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.compliance.content import OwnerType, register_owner
from siyu.console.i18n import N_


def _handover_lookup(session: Session, corp_id: int, ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    from siyu.handover.models import Handover

    rows = session.execute(select(Handover.id, Handover.handover_userid, Handover.created_at)
                           .where(Handover.corp_id == corp_id, Handover.id.in_([i for i in ids if 0 < i < 2**63])))
    return {hid: (f"{userid} · {at:%Y-%m-%d}", f"/compliance/handovers/{hid}") for hid, userid, at in rows}


def _handover_choices(session: Session, corp_id: int) -> list[tuple[int, str]]:
    from siyu.handover.models import Handover

    ids = list(session.scalars(select(Handover.id).where(Handover.corp_id == corp_id, Handover.kind == "in_service")
                               .order_by(Handover.id.desc()).limit(200)))
    found = _handover_lookup(session, corp_id, ids)
    return [(i, found[i][0]) for i in ids if i in found]


register_owner(OwnerType(name="handover", label=N_("Handover"), kinds=("handover",), lookup=_handover_lookup,
                         choices=_handover_choices))
