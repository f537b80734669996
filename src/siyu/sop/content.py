"""SOP content as compliance's content gate knows it (`compliance.content`).

Owner types: an SOP slot (kind `sop_slot` for group slots, `moments` for Moments slots) and a
customer SOP step (kind `sop_slot`). The editor saves a slot's text through `submit_content`; the
send job asks `content_for_send` for the approved version in force at the slot's time, so an
unapproved text, or an edit not yet approved, never goes out."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.compliance.service import OwnerType, register_owner
from siyu.console.i18n import N_
from siyu.sop.models import SopJourney, SopJourneyStep, SopSlot

SLOT, STEP = "sop_slot", "sop_step"
SLOT_KIND, MOMENTS_KIND = "sop_slot", "moments"


def _ids(ids: Sequence[int]) -> list[int]:
    return [i for i in ids if isinstance(i, int) and 0 < i < 2**63]


def _slots(session: Session, corp_id: int, ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    rows = session.execute(select(SopSlot.id, SopSlot.title, SopSlot.template_id, SopSlot.group_set_id)
                           .where(SopSlot.corp_id == corp_id, SopSlot.id.in_(_ids(ids))))
    return {sid: (title, f"/sop/templates/{template_id}#slot-{sid}" if template_id
                  else f"/sop/sets/{set_id}#slot-{sid}") for sid, title, template_id, set_id in rows}


def _steps(session: Session, corp_id: int, ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    rows = session.execute(select(SopJourneyStep.id, SopJourneyStep.title, SopJourney.id, SopJourney.name)
                           .join(SopJourney, SopJourney.id == SopJourneyStep.journey_id)
                           .where(SopJourneyStep.corp_id == corp_id, SopJourneyStep.id.in_(_ids(ids))))
    return {sid: (f"{name} · {title}", f"/sop/journeys/{jid}#step-{sid}") for sid, title, jid, name in rows}


def _all(lookup, model):
    def choices(session: Session, corp_id: int) -> list[tuple[int, str]]:
        ids = list(session.scalars(select(model.id).where(model.corp_id == corp_id).order_by(model.id).limit(500)))
        found = lookup(session, corp_id, ids)
        return [(i, found[i][0]) for i in ids if i in found]
    return choices


register_owner(OwnerType(name=SLOT, label=N_("SOP slot"), kinds=(SLOT_KIND, MOMENTS_KIND), lookup=_slots,
                         choices=_all(_slots, SopSlot)))
register_owner(OwnerType(name=STEP, label=N_("Customer SOP step"), kinds=(SLOT_KIND,), lookup=_steps,
                         choices=_all(_steps, SopJourneyStep)))
