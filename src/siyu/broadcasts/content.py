"""A broadcast's text as compliance's content gate knows it: owner type `broadcast`, kind
`broadcast`. Only the approved version in force goes out (`jobs.start`)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.broadcasts.models import Broadcast
from siyu.compliance.service import OwnerType, register_owner
from siyu.console.i18n import N_

OWNER, KIND = "broadcast", "broadcast"


def _lookup(session: Session, corp_id: int, ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    ids = [i for i in ids if isinstance(i, int) and 0 < i < 2**63]
    rows = session.execute(select(Broadcast.id, Broadcast.name).where(Broadcast.corp_id == corp_id,
                                                                      Broadcast.id.in_(ids)))
    return {bid: (name, f"/broadcasts/{bid}") for bid, name in rows}


def _choices(session: Session, corp_id: int) -> list[tuple[int, str]]:
    rows = session.execute(select(Broadcast.id, Broadcast.name).where(Broadcast.corp_id == corp_id)
                           .order_by(Broadcast.id.desc()).limit(500))
    return [(i, n) for i, n in rows]


register_owner(OwnerType(name=OWNER, label=N_("Broadcast"), kinds=(KIND,), lookup=_lookup, choices=_choices))
