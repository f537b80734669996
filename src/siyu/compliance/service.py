"""What other domains call to have a text reviewed before it reaches a customer.

Every outbound path (welcome, keyword reply, broadcast, SOP slot, Moments, course, game) calls
`review_outbound` with the corp's dictionary in force; a "block" verdict stops the send."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from siyu.compliance.dictionary import load_dictionary
from siyu.compliance.review import Verdict, review_text

if TYPE_CHECKING:
    from siyu.compliance.models import ContentVersion


def review_outbound(session: Session, *, corp_id: int, text: str) -> Verdict:
    """The verdict (block / review / pass) and findings for a text about to be sent by the corp."""
    return review_text(text, context="outbound", dictionary=load_dictionary(session, corp_id=corp_id))


def approved_content(session: Session, *, corp_id: int, kind: str, ref: str) -> ContentVersion | None:
    """What the corp may send for an object (kind "welcome", ref "channel_code:42" …): the approved
    version in force (`final_text` with its risk disclosures, `attachments`, `product_codes`), or None
    when nothing is approved yet. Maker–checker approval lives in `compliance.approval`."""
    from siyu.compliance.approval import approved_version

    return approved_version(session, corp_id=corp_id, kind=kind, ref=ref)
