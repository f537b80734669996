"""The acquisition domain's part in data-subject requests (see `siyu.privacy`): the adds
attributed to channel codes, welcomes sent and hand follow-ups of a customer.

Erasing replaces the customer's id with "erased" in these rows: the channel counts stay right, the
person is no longer in them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.acquisition.models import ChannelAdd, ChannelCode, WelcomeFollowUp, WelcomeSend
from siyu.privacy.service import Erased, register_subject_domain

ERASED = "erased"


def export(session: Session, *, corp_id: int, external_userid: str) -> dict[str, list[dict[str, Any]]]:
    adds = session.execute(select(ChannelAdd, ChannelCode.name).join(ChannelCode, ChannelCode.id == ChannelAdd.code_id)
                           .where(ChannelAdd.corp_id == corp_id, ChannelAdd.external_userid == external_userid)
                           .order_by(ChannelAdd.at))
    sends = session.scalars(select(WelcomeSend).where(WelcomeSend.corp_id == corp_id,
                                                      WelcomeSend.external_userid == external_userid))
    follow_ups = session.scalars(select(WelcomeFollowUp).where(WelcomeFollowUp.corp_id == corp_id,
                                                               WelcomeFollowUp.external_userid == external_userid))
    return {
        "channel_adds": [{"channel": name, "advisor": a.advisor_userid, "at": a.at, "lost_at": a.lost_at}
                         for a, name in adds],
        "welcomes": [{"state": s.state, "at": s.at} for s in sends],
        "follow_ups": [{"advisor": f.advisor_userid, "at": f.created_at, "done_at": f.done_at} for f in follow_ups],
    }


def erase(session: Session, *, corp_id: int, external_userid: str) -> Erased:
    out = Erased()
    for name, model in (("channel_adds", ChannelAdd), ("welcomes", WelcomeSend), ("follow_ups", WelcomeFollowUp)):
        out.erased[name] = session.execute(
            update(model).where(model.corp_id == corp_id, model.external_userid == external_userid)
            .values(external_userid=ERASED).execution_options(synchronize_session=False)).rowcount
    return out


register_subject_domain("acquisition", exporter=export, eraser=erase)
