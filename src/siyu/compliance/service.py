"""What other domains call to have a text reviewed before it reaches a customer.

Every outbound path calls `prepare_outbound` AT SEND TIME (docs/compliance.md, "Every outbound
path"): it returns the text to send — the risk disclosures of the attached and detected product
types appended (`compliance.disclosure`) —, the wording review of that final text with the
corp's dictionary in force, and the recipients refused. A "block" verdict stops the send (and
"review" on paths that send unattended); the path records it as blocked with the findings.
`review_outbound` is the same guard for callers that only need a verdict (save-time checks).

With `kind` and `recipients`, the marketing opt-out is applied too (`siyu.privacy`): the
verdict's `refused` names the recipients who withdrew consent to marketing, when the kind is
marketing (every kind but the service kinds: welcome, handover, keyword_reply, service). The caller
sends to the others only; when every recipient is refused the verdict is "block"."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from siyu.compliance.dictionary import load_dictionary
from siyu.compliance.review import Finding, Verdict, review_text

if TYPE_CHECKING:
    from siyu.compliance.models import ContentVersion


def review_outbound(session: Session, *, corp_id: int, text: str, kind: str | None = None,
                    recipients: Iterable[str] = ()) -> Verdict:
    """The verdict (block / review / pass) and findings for a text about to be sent by the corp, and
    the recipients it must not reach: `prepare_outbound` without the final text."""
    out = prepare_outbound(session, corp_id=corp_id, kind=kind, text=text, recipients=recipients)
    return Verdict(verdict=out.verdict, findings=out.findings, refused=out.refused)


@dataclass(frozen=True)
class Outbound:
    """What the guard says about one message about to reach customers (`prepare_outbound`).

    `text` is what to send: the text with the risk disclosures it needs appended. `verdict` and
    `findings` are the wording review of everything the customer sees (`text` and `shown`);
    `refused` the recipients who must not get it (marketing opt-out); `disclosed` the product types
    whose disclosures were appended."""

    text: str
    verdict: str  # "block" | "review" | "pass"
    findings: tuple[Finding, ...] = ()
    refused: frozenset[str] = frozenset()
    disclosed: tuple[str, ...] = ()

    @property
    def blocked(self) -> bool:
        return self.verdict == "block"

    def held(self, *, hold_review: bool = True) -> bool:
        """True when the send must stop: "block", and "review" on paths that send unattended."""
        return self.verdict == "block" or (hold_review and self.verdict == "review")

    def summary(self) -> str:
        """What a blocked send records: the verdict and the phrases found (no personal data)."""
        found = "、".join(dict.fromkeys(f.match for f in self.findings))
        return f"compliance review: {self.verdict}" + (f" ({found})" if found else "")


def prepare_outbound(session: Session, *, corp_id: int, kind: str | None, text: str, recipients: Iterable[str] = (),
                     product_types: Iterable[str] = (), shown: Iterable[str] = ()) -> Outbound:
    """THE guard every outbound path calls at send time (see the module docstring).

    `text`: the message's text; `product_types`: the types of the products attached to it; `shown`:
    anything else the customer sees with it (attachment titles), reviewed and searched for product
    terms but not sent as text. Returns the final text (the risk disclosures of the attached and
    detected product types appended, `disclosure.attach_disclosure`), the review of that final text
    and the recipients refused for this kind. Cost: the dictionary and the product-term automaton
    are cached; one query for the corp's disclosure texts, and one for consent when the kind is
    marketing and recipients are given."""
    from siyu.compliance.disclosure import append_disclosures, needed_disclosures

    shown = [s for s in shown if isinstance(s, str) and s]
    text = text if isinstance(text, str) else ""
    needed = needed_disclosures(session, corp_id=corp_id, text="\n".join([text, *shown]),
                                product_types=product_types)
    final = append_disclosures(text, needed)
    verdict = review_text("\n".join([final, *shown]), context="outbound",
                          dictionary=load_dictionary(session, corp_id=corp_id))
    recipients = [r for r in recipients if isinstance(r, str) and r]
    refused: frozenset[str] = frozenset()
    if recipients:
        from siyu.privacy.service import refused_recipients

        refused = refused_recipients(session, corp_id=corp_id, kind=kind, recipients=recipients)
    outcome = "block" if refused and refused >= set(recipients) else verdict.verdict
    return Outbound(text=final, verdict=outcome, findings=verdict.findings, refused=refused,
                    disclosed=tuple(k for k, _d in needed))


def approved_content(session: Session, *, corp_id: int, kind: str, ref: str) -> ContentVersion | None:
    """What the corp may send for an object (kind "welcome", ref "channel_code:42" …): the approved
    version in force (`final_text` with its risk disclosures, `attachments`, `product_codes`), or None
    when nothing is approved yet. Maker–checker approval lives in `compliance.approval`."""
    from siyu.compliance.approval import approved_version

    return approved_version(session, corp_id=corp_id, kind=kind, ref=ref)
