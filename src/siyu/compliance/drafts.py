"""Dictionary drafts (词库草稿) and their regression test against the corp's labelled messages.

A compliance officer collects edits of the corp's dictionary without changing what is in force:
add a phrase (or change the severity of one: adding a phrase the dictionary has overrides it), or
take a phrase out. The draft is the dictionary in force with the edits applied, in order.
`regression` reviews the corp's labelled set with both and lists what would change (new hits, lost
hits, whether each agrees with its label) with both sets of figures. `publish` makes every edit a
real dictionary change (versioned and audited by `dictionary`), in one transaction, and clears the
draft; `discard` drops it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from siyu.compliance import dictionary as wording
from siyu.compliance import labelled
from siyu.compliance.evaluation import Change, Report, compare
from siyu.compliance.matcher import DictEntry, Dictionary
from siyu.compliance.models import WordingDraftEdit, WordingEntry
from siyu.compliance.normalize import normalize
from siyu.compliance.schemas import WordingEntryCreate
from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.tenancy import audit
from siyu.tenancy.principal import Principal

ACTIONS = ("add", "remove")
MAX_EDITS = 500
RETIRE_RULE = "本机构词库（机构自定）：经合规复核，本机构不再对该用语告警"


def _label(actor: Principal | str) -> str:
    return actor.label if isinstance(actor, Principal) else str(actor)


def edits(session: Session, *, corp_id: int) -> list[WordingDraftEdit]:
    return list(session.scalars(select(WordingDraftEdit).where(WordingDraftEdit.corp_id == corp_id)
                                .order_by(WordingDraftEdit.id)))


def add_edit(session: Session, *, corp_id: int, actor: Principal | str, action: str, phrase: str,
             category: str = "", severity: str = "", rule: str = "", notes: str = "") -> WordingDraftEdit:
    """Record an unpublished edit. "add": a phrase with category, severity and rule (validated as a
    dictionary entry); "remove": a phrase the corp's dictionary holds."""
    if action not in ACTIONS:
        raise InvalidInput("choose add or remove", field="action")
    if len(edits(session, corp_id=corp_id)) >= MAX_EDITS:
        raise Conflict("a draft holds at most %(n)s edits: publish or discard it first", field="action",
                       params={"n": MAX_EDITS})
    phrase = (phrase or "").strip()
    if action == "add":
        try:
            data = WordingEntryCreate(category=category, phrase=phrase, severity=severity, rule=rule, notes=notes or "")
        except ValidationError as exc:
            err = exc.errors()[0]
            raise InvalidInput(err.get("msg", "invalid value"), field=".".join(str(p) for p in err["loc"])) from None
        if not normalize(data.phrase):
            raise InvalidInput("the phrase has no letters or characters once spaces and symbols are removed",
                               field="phrase")
        row = WordingDraftEdit(corp_id=corp_id, action="add", phrase=data.phrase, category=data.category,
                               severity=data.severity, rule=data.rule, notes=data.notes, actor=_label(actor))
    else:
        key = normalize(phrase)
        if not key:
            raise InvalidInput("name a phrase of the dictionary", field="phrase")
        current = wording.load_dictionary(session, corp_id=corp_id)
        if not any(normalize(e.phrase) == key for e in current.entries):
            raise InvalidInput("the dictionary in force has no phrase %(phrase)s", field="phrase",
                               params={"phrase": phrase})
        row = WordingDraftEdit(corp_id=corp_id, action="remove", phrase=phrase, actor=_label(actor))
    session.add(row)
    session.flush()
    return row


def drop_edit(session: Session, *, corp_id: int, edit_id: int) -> None:
    row = session.get(WordingDraftEdit, edit_id)
    if row is None or row.corp_id != corp_id:
        raise NotFound("no such draft edit", field="edit")
    session.delete(row)
    session.flush()


def discard(session: Session, *, corp_id: int, actor: Principal | str) -> int:
    n = len(edits(session, corp_id=corp_id))
    session.execute(delete(WordingDraftEdit).where(WordingDraftEdit.corp_id == corp_id))
    if n:
        audit.record(session, corp_id=corp_id, actor=actor, action="wording_draft.discarded",
                     target_type="wording_draft", detail={"edits": n})
    return n


def apply_edits(entries: tuple[DictEntry, ...], draft: list[WordingDraftEdit]) -> list[DictEntry]:
    """The entries with the draft's edits applied in order, as `publish` will apply them: an added
    phrase replaces the corp's own entry for it (and overrides an installation one); taking out a
    corp's own entry lets an installation entry for the phrase apply again; taking out an
    installation entry gives the corp an "allow" entry for the phrase."""
    out = list(entries)
    for e in draft:
        key = normalize(e.phrase)
        own = [x for x in out if x.corp_id is not None and normalize(x.phrase) == key]
        if e.action == "add":
            out = [x for x in out if x not in own]
            out.append(DictEntry(phrase=e.phrase, category=e.category, severity=e.severity, rule=e.rule,
                                 notes=e.notes or "", corp_id=e.corp_id))
        elif own and own[-1].severity != "allow":
            out = [x for x in out if x not in own]
        elif not own:
            out.append(DictEntry(phrase=e.phrase, category="disclosure", severity="allow", rule=RETIRE_RULE,
                                 corp_id=e.corp_id))
    return out


def draft_dictionary(session: Session, *, corp_id: int) -> tuple[Dictionary, Dictionary]:
    """(the dictionary in force, the draft)."""
    current = wording.load_dictionary(session, corp_id=corp_id)
    draft = edits(session, corp_id=corp_id)
    return current, Dictionary(apply_edits(current.entries, draft), version=f"{current.version}+draft{len(draft)}")


@dataclass
class Regression:
    labelled: int
    edits: int
    before: Report
    after: Report
    changes: list[Change]

    @property
    def new_hits(self) -> list[Change]:
        return [c for c in self.changes if c.kind == "new_hit"]

    @property
    def lost_hits(self) -> list[Change]:
        return [c for c in self.changes if c.kind == "lost_hit"]

    @property
    def other(self) -> list[Change]:
        return [c for c in self.changes if c.kind == "severity"]


def regression(session: Session, *, corp_id: int) -> Regression:
    """The corp's labelled set reviewed with the dictionary in force and with the draft."""
    items = labelled.items(session, corp_id=corp_id)
    current, draft = draft_dictionary(session, corp_id=corp_id)
    lexicons = wording.corp_lexicons(session, corp_id=corp_id)
    before, after, changes = compare(items, current=current, draft=draft, lexicons=lexicons)
    return Regression(labelled=len(items), edits=len(edits(session, corp_id=corp_id)), before=before, after=after,
                      changes=changes)


def publish(session: Session, *, corp_id: int, actor: Principal | str) -> int:
    """Make every edit of the draft a dictionary change, in order; all or none (the caller's transaction)."""
    draft = edits(session, corp_id=corp_id)
    if not draft:
        raise Conflict("the draft has no edits", field="draft")
    for e in draft:
        key = normalize(e.phrase)
        own = session.scalar(select(WordingEntry).where(WordingEntry.scope_id == corp_id,
                                                        WordingEntry.phrase_key == key))
        if e.action == "add":
            if own is None:
                wording.add_entry(session, corp_id=corp_id, actor=actor, category=e.category, phrase=e.phrase,
                                  severity=e.severity, rule=e.rule, notes=e.notes)
            else:
                wording.edit_entry(session, corp_id=corp_id, actor=actor, entry_id=own.id, category=e.category,
                                   phrase=e.phrase, severity=e.severity, rule=e.rule, notes=e.notes)
                if not own.is_active:
                    wording.reactivate_entry(session, corp_id=corp_id, actor=actor, entry_id=own.id,
                                             reason="draft published")
        else:
            if own is not None and own.is_active and own.severity != "allow":
                wording.deactivate_entry(session, corp_id=corp_id, actor=actor, entry_id=own.id,
                                         reason="draft published")
            elif own is None:
                # An installation entry is shared: the corp gets its own "allow" entry for the phrase.
                wording.add_entry(session, corp_id=corp_id, actor=actor, category="disclosure", phrase=e.phrase,
                                  severity="allow", rule=RETIRE_RULE)
    n = len(draft)
    session.execute(delete(WordingDraftEdit).where(WordingDraftEdit.corp_id == corp_id))
    audit.record(session, corp_id=corp_id, actor=actor, action="wording_draft.published",
                 target_type="wording_draft", detail={"edits": n})
    session.flush()
    return n
