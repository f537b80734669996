"""What other domains call to have a text reviewed before it reaches a customer.

Every outbound path (welcome, keyword reply, broadcast, SOP slot, Moments, course, game) calls
`review_outbound` with the corp's dictionary in force; a "block" verdict stops the send."""

from __future__ import annotations

from sqlalchemy.orm import Session

from siyu.compliance.dictionary import load_dictionary
from siyu.compliance.review import Verdict, review_text


def review_outbound(session: Session, *, corp_id: int, text: str) -> Verdict:
    """The verdict (block / review / pass) and findings for a text about to be sent by the corp."""
    return review_text(text, context="outbound", dictionary=load_dictionary(session, corp_id=corp_id))
