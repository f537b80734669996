"""The content gate (外发内容审批闸门): customer-facing content saved ahead of time is sent only in
its approved version in force.

Every text another domain saves to send later (a welcome variant, a flow's group invitation, a
persona's introduction, a keyword reply, a handover message, and the kinds to come: SOP slots,
broadcasts, Moments, campaign texts, scripts) is a content item of `compliance.approval` whose owner
is a typed reference — an owner type registered here by the domain that has the object, and the
object's id, checked to exist in the same corp. Domains use two calls (re-exported by
`compliance.service`):

- `submit_content(session, corp_id=, actor=, kind=, owner=, body=, …)` when the maker saves: a new
  version, submitted for approval at once (the domain's editor is the maker's page). A text the
  wording review blocks is refused (`ContentRefused`: each finding's rule, category, severity and
  span). When the corp does not require approval for the kind and the review passes, the version is
  approved by the system at once; otherwise the version in force (if any) stays in force until a
  checker approves the new one.
- `content_for_send(session, corp_id=, kind=, owner=)` at send time: the approved version in force
  (`Sendable.text`) or a refusal (`Sendable.held_reason`) that the path records as held. The path
  then runs the send-time guard (`prepare_outbound`) on that text, as for any message; a "review"
  finding that the checker saw when approving does not hold the send again (`Sendable.held_by`).

Owner types register with `register_owner`, in the domain's `siyu.<domain>.content` module (found
through `siyu.DOMAINS`, like privacy modules), with a function that names the corp's objects by id
(the console shows names and links, never ids) and one that lists them for pickers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.console.i18n import N_
from siyu.db import utcnow
from siyu.errors import InvalidInput
from siyu.tenancy import audit
from siyu.tenancy.principal import Principal

# --- kinds and whether they need approval -----------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    name: str
    label: str
    required: bool  # the default: whether a version needs a checker's approval before it is sent


# Every marketing kind and every welcome needs approval by default; a handover notice (who the
# customer's new advisor is) is a service notice that a corp may send without.
KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("welcome", N_("Welcome message"), True),
    Kind("group_invitation", N_("Group invitation"), True),
    Kind("persona_intro", N_("Persona introduction"), True),
    Kind("keyword_reply", N_("Keyword reply"), True),
    Kind("group_welcome", N_("Group welcome"), True),
    Kind("handover", N_("Handover message"), False),
    Kind("sop_slot", N_("SOP slot"), True),
    Kind("broadcast", N_("Broadcast"), True),
    Kind("moments", N_("Moments"), True),
    Kind("campaign", N_("Campaign text"), True),
    Kind("script", N_("Script"), True),
    Kind("course", N_("Course"), True),
    Kind("game", N_("Game"), True),
    Kind("other", N_("Other"), True),
)}


def requirements(session: Session, *, corp_id: int) -> dict[str, bool]:
    """Per kind, whether the corp requires a checker's approval (its choice, else the default)."""
    from siyu.compliance.models import ApprovalRequirement

    chosen = dict(session.execute(select(ApprovalRequirement.kind, ApprovalRequirement.required)
                                  .where(ApprovalRequirement.corp_id == corp_id)).all())
    return {k: bool(chosen.get(k, spec.required)) for k, spec in KINDS.items()}


def approval_required(session: Session, *, corp_id: int, kind: str) -> bool:
    from siyu.compliance.models import ApprovalRequirement

    row = session.get(ApprovalRequirement, (corp_id, kind))
    return row.required if row is not None else KINDS[kind].required


def set_requirements(session: Session, *, corp_id: int, actor: Principal | str, required: Iterable[str]) -> dict:
    """Set, for every kind, whether approval is required (`required`: the kinds that need it).
    Audited (`content.requirements_changed`) with the kinds that changed."""
    from siyu.compliance.models import ApprovalRequirement

    wanted = set(required)
    unknown = wanted - set(KINDS)
    if unknown:
        raise InvalidInput("unknown kind of content: %(kinds)s", field="required",
                           params={"kinds": ", ".join(sorted(unknown))[:200]})
    before = requirements(session, corp_id=corp_id)
    label = actor.label if isinstance(actor, Principal) else str(actor)
    changed = {}
    for kind in KINDS:
        now = kind in wanted
        if before[kind] == now:
            continue
        row = session.get(ApprovalRequirement, (corp_id, kind))
        if row is None:
            session.add(ApprovalRequirement(corp_id=corp_id, kind=kind, required=now, updated_by=label,
                                            updated_at=utcnow()))
        else:
            row.required, row.updated_by, row.updated_at = now, label, utcnow()
        changed[kind] = now
    if changed:
        session.flush()
        audit.record(session, corp_id=corp_id, actor=actor, action="content.requirements_changed",
                     target_type="corp", target_id=corp_id, detail={"required": changed})
    return changed


# --- owners ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class OwnerRef:
    """The object a content item belongs to: an owner type registered by its domain and its id."""

    type: str
    id: int

    def __str__(self) -> str:
        return f"{self.type}:{self.id}"


@dataclass(frozen=True)
class OwnerType:
    name: str
    label: str
    kinds: tuple[str, ...]  # the kinds of content such an object has
    # The corp's objects among ids -> (name, console page where the content is edited, or None).
    lookup: Callable[[Session, int, Sequence[int]], dict[int, tuple[str, str | None]]]
    choices: Callable[[Session, int], list[tuple[int, str]]]  # the corp's objects, for pickers


_owners: dict[str, OwnerType] = {}
_loaded = False
OWNER_RE = re.compile(r"([a-z_]{1,32}):([0-9]{1,18})")


def register_owner(owner: OwnerType) -> None:
    if any(k not in KINDS for k in owner.kinds):
        raise ValueError(f"unknown kinds for owner type {owner.name}")
    _owners[owner.name] = owner


def _load_domains() -> None:
    global _loaded
    if _loaded:
        return
    from siyu import domain_modules

    domain_modules("content")  # each registers its owner types when imported
    _loaded = True


def owner_types() -> dict[str, OwnerType]:
    _load_domains()
    return dict(_owners)


def owner_ref(value: object) -> OwnerRef:
    """An OwnerRef from an OwnerRef, a (type, id) pair or "type:id" (a picker's value)."""
    if isinstance(value, OwnerRef):
        return value
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int):
        return OwnerRef(value[0], value[1])
    m = OWNER_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if m is None:
        raise InvalidInput("choose the object this content belongs to", field="owner")
    return OwnerRef(m.group(1), int(m.group(2)))


def resolve_owner(session: Session, *, corp_id: int, owner: object, kind: str | None = None) -> OwnerRef:
    """The owner, checked: a registered type that has content of `kind`, an object of the corp."""
    ref = owner_ref(owner)
    spec = owner_types().get(ref.type)
    if spec is None:
        raise InvalidInput("choose the object this content belongs to", field="owner")
    if kind is not None and kind not in spec.kinds:
        raise InvalidInput("a %(owner)s has no content of this kind", field="kind", params={"owner": ref.type})
    if not 1 <= ref.id < 2**63 or ref.id not in spec.lookup(session, corp_id, [ref.id]):
        raise InvalidInput("no such object in this corp", field="owner")
    return ref


@dataclass(frozen=True)
class OwnerView:
    """How the console shows an item's owner: its name and the page where it is edited."""

    type: str
    type_label: str
    name: str
    url: str | None
    exists: bool


def describe_owners(session: Session, *, corp_id: int, refs: Iterable[OwnerRef]) -> dict[OwnerRef, OwnerView]:
    """Name and link of each owner (one query per owner type)."""
    by_type: dict[str, list[int]] = {}
    for r in refs:
        by_type.setdefault(r.type, []).append(r.id)
    out: dict[OwnerRef, OwnerView] = {}
    types = owner_types()
    for t, ids in by_type.items():
        spec = types.get(t)
        found = spec.lookup(session, corp_id, ids) if spec else {}
        for i in ids:
            name, url = found.get(i, ("", None))
            out[OwnerRef(t, i)] = OwnerView(type=t, type_label=spec.label if spec else t, name=name, url=url,
                                            exists=i in found)
    return out


def owner_choices(session: Session, *, corp_id: int) -> list[tuple[OwnerType, list[tuple[int, str]]]]:
    """For a picker: each owner type with the corp's objects (id, name)."""
    return [(spec, spec.choices(session, corp_id)) for spec in sorted(owner_types().values(), key=lambda s: s.name)]


# --- refusals that explain -------------------------------------------------------------------------------


def explain(findings: Iterable[dict], *, blocking_only: bool = False) -> str:
    """Each finding as "phrase [category, severity, characters a–b]: rule", joined by "；"."""
    parts = []
    for f in findings:
        if blocking_only and f.get("severity") != "block":
            continue
        span = f"{f.get('start', 0) + 1}–{f.get('end', 0)}"
        parts.append(f"「{f.get('match', '')}」[{f.get('category', '')}, {f.get('severity', '')}, {span}]"
                     + (f": {f['rule']}" if f.get("rule") else ""))
    return "；".join(dict.fromkeys(parts))


class ContentRefused(InvalidInput):
    """A text the wording review blocks: the message names each rule hit; `findings` carries them
    (rule, category, severity, start, end, match) for the API."""

    def __init__(self, findings: Sequence[dict], *, field: str = "text"):
        self.findings = [dict(f) for f in findings]
        super().__init__("compliance review blocks this text: %(found)s", field=field,
                         params={"found": explain(self.findings, blocking_only=True)})

    @property
    def extra(self) -> dict:
        return {"findings": [f for f in self.findings if f.get("severity") == "block"]}


# --- the two calls of other domains ---------------------------------------------------------------------


@dataclass(frozen=True)
class ContentState:
    """Where an object's content stands: the version in force (what is sent) and the latest one."""

    item_id: int
    owner: OwnerRef
    kind: str
    latest_version: int
    latest_status: str  # draft | submitted | approved | rejected
    latest_text: str
    in_force_version: int | None
    in_force_text: str | None
    verdict: str
    findings: tuple[dict, ...] = ()

    @property
    def pending(self) -> bool:
        return self.latest_status == "submitted"

    @property
    def live(self) -> bool:
        return self.in_force_version is not None


@dataclass(frozen=True)
class Sendable:
    """What an object may send now: the approved version in force, or why nothing goes out."""

    owner: OwnerRef
    kind: str
    text: str | None = None
    attachments: tuple[dict, ...] = ()
    product_types: tuple[str, ...] = ()
    version: int | None = None
    approved_findings: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    held_reason: str | None = None

    @property
    def held(self) -> bool:
        return self.held_reason is not None

    def held_by(self, out) -> bool:
        """Whether the send-time guard's answer (`Outbound`) stops this approved text: a block always;
        a "review" only for findings the checker did not see when approving."""
        if out.verdict == "block":
            return True
        if out.verdict == "review":
            return any((f.rule, f.match) not in self.approved_findings for f in out.findings)
        return False


def _state(item, latest, in_force) -> ContentState:
    return ContentState(item_id=item.id, owner=OwnerRef(item.owner_type, item.owner_id), kind=item.kind,
                        latest_version=latest.number, latest_status=latest.status, latest_text=latest.text,
                        in_force_version=in_force.number if in_force else None,
                        in_force_text=in_force.text if in_force else None, verdict=latest.verdict,
                        findings=tuple(latest.findings or ()))


def submit_content(session: Session, *, corp_id: int, actor: Principal | str, kind: str, owner: object, body: str,
                   title: str | None = None, attachments: Iterable[dict] | None = None,
                   product_types: Iterable[str] | None = None, field: str = "text") -> ContentState:
    """The maker saved the object's content: a new version submitted for approval (or approved at once
    when the corp does not require approval for the kind and the review passes). The same text and
    attachments as the latest version make no new version. Refused with `ContentRefused` when the
    wording review blocks it (naming `field`, the domain's own field); the version in force stays
    in force until a checker approves."""
    from siyu.compliance import approval
    from siyu.compliance.models import ContentItem

    if kind not in KINDS:
        raise InvalidInput("the kind of content is one of %(kinds)s", field="kind", params={"kinds": ", ".join(KINDS)})
    ref = resolve_owner(session, corp_id=corp_id, owner=owner, kind=kind)
    maker = approval.as_actor(corp_id, actor)
    atts = list(attachments or [])
    check_content(session, corp_id=corp_id, body=body, attachments=atts, product_types=product_types, field=field)
    item = session.scalar(select(ContentItem).where(ContentItem.corp_id == corp_id, ContentItem.kind == kind,
                                                    ContentItem.ref == str(ref)))
    title = title or f"{KINDS[kind].name} {ref}"
    if item is not None:
        latest = approval.get_version(session, corp_id=corp_id, item_id=item.id)
        same = (latest.text == approval.clean_text(body)
                and list(latest.attachments or []) == approval.clean_attachments(atts))
        if same and latest.status in ("submitted", "approved"):
            return _state(item, latest, _in_force(session, item))
        if latest.status == "submitted":  # the maker changed it again before a decision: withdraw, then edit
            approval.withdraw(session, corp_id=corp_id, actor=maker, item_id=item.id)
        version = approval.edit(session, corp_id=corp_id, actor=maker, item_id=item.id, text=body, title=title[:200],
                                attachments=atts, product_types=product_types)
    else:
        item = approval.create_item(session, corp_id=corp_id, actor=maker, kind=kind, owner=ref, title=title[:200],
                                    text=body, attachments=atts, product_types=product_types)
        version = approval.get_version(session, corp_id=corp_id, item_id=item.id)
    if version.verdict == "block":
        raise ContentRefused(version.findings, field=field)
    approval.submit(session, corp_id=corp_id, actor=maker, item_id=item.id, version=version.number)
    if version.verdict == "pass" and not approval_required(session, corp_id=corp_id, kind=kind):
        approval.approve_unrequired(session, corp_id=corp_id, item_id=item.id, version=version.number)
    return _state(item, version, _in_force(session, item))


def check_content(session: Session, *, corp_id: int, body: str, attachments: Iterable[dict] | None = None,
                  product_types: Iterable[str] | None = None, field: str = "text") -> None:
    """Refuse (`ContentRefused`, naming `field`) a text the wording review blocks, as it would be sent
    (risk disclosures appended, attachment titles read). Domains call it before writing anything."""
    from siyu.compliance.approval import attachment_titles
    from siyu.compliance.disclosure import attach_disclosure
    from siyu.compliance.service import review_outbound

    text = body if isinstance(body, str) else ""
    types = [t for t in (product_types or ()) if isinstance(t, str)]
    final = attach_disclosure(session, corp_id=corp_id, text=text, product_types=types)
    titles = attachment_titles([a for a in attachments or () if isinstance(a, dict)])
    verdict = review_outbound(session, corp_id=corp_id, text="\n".join([final, *titles]))
    if verdict.verdict == "block":
        raise ContentRefused([f.as_dict() for f in verdict.findings], field=field)


def _in_force(session: Session, item):
    from siyu.compliance import approval

    if item.approved_version is None:
        return None
    return approval.get_version(session, corp_id=item.corp_id, item_id=item.id, number=item.approved_version)


def content_states(session: Session, *, corp_id: int, kind: str,
                   owners: Iterable[object]) -> dict[OwnerRef, ContentState]:
    """The state of each owner's content of `kind` (owners without content are left out)."""
    from siyu.compliance.models import ContentItem, ContentVersion

    refs = {owner_ref(o) for o in owners}
    if not refs:
        return {}
    items = list(session.scalars(select(ContentItem).where(ContentItem.corp_id == corp_id, ContentItem.kind == kind,
                                                           ContentItem.ref.in_([str(r) for r in refs]))))
    if not items:
        return {}
    rows = session.scalars(select(ContentVersion).where(ContentVersion.corp_id == corp_id,
                                                        ContentVersion.item_id.in_([i.id for i in items])))
    by = {(v.item_id, v.number): v for v in rows}
    return {OwnerRef(i.owner_type, i.owner_id): _state(i, by[(i.id, i.latest_version)],
                                                       by.get((i.id, i.approved_version)))
            for i in items if i.owner_type is not None}


def content_for_send(session: Session, *, corp_id: int, kind: str, owner: object) -> Sendable:
    """The approved version in force of the owner's content of `kind`, or why nothing may be sent
    (`held_reason`): no content, or none approved yet (a pending edit never goes out)."""
    from siyu.compliance.models import ContentItem, ContentVersion

    ref = owner_ref(owner)
    item = session.scalar(select(ContentItem).where(ContentItem.corp_id == corp_id, ContentItem.kind == kind,
                                                    ContentItem.ref == str(ref)))
    if item is None or item.owner_type is None:
        return Sendable(owner=ref, kind=kind, held_reason="no content registered for approval")
    if item.approved_version is None:
        reason = "awaiting approval" if item.status == "submitted" else "no approved version"
        return Sendable(owner=ref, kind=kind, held_reason=reason)
    version = session.scalar(select(ContentVersion).where(ContentVersion.item_id == item.id,
                                                          ContentVersion.number == item.approved_version))
    return Sendable(owner=ref, kind=kind, text=version.text, attachments=tuple(version.attachments or ()),
                    product_types=tuple(version.product_types or ()), version=version.number,
                    approved_findings=frozenset((f.get("rule", ""), f.get("match", ""))
                                                for f in version.findings or ()))


def sendable_owners(session: Session, *, corp_id: int, kind: str, owners: Iterable[object]) -> set[OwnerRef]:
    """Those of `owners` that have an approved version in force (one query)."""
    from siyu.compliance.models import ContentItem

    refs = {str(owner_ref(o)): owner_ref(o) for o in owners}
    if not refs:
        return set()
    found = session.scalars(select(ContentItem.ref).where(ContentItem.corp_id == corp_id, ContentItem.kind == kind,
                                                          ContentItem.ref.in_(list(refs)),
                                                          ContentItem.approved_version.is_not(None)))
    return {refs[r] for r in found}


# --- the compliance domain's own owner: the corp (its default welcome) ---------------------------------------


def _corp_lookup(session: Session, corp_id: int, ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    from siyu.tenancy.models import Corp

    if corp_id not in ids:
        return {}
    name = session.scalar(select(Corp.name).where(Corp.id == corp_id))
    return {corp_id: (name, "/wecom#welcome")} if name is not None else {}


register_owner(OwnerType(name="corp", label=N_("Corp default welcome"), kinds=("welcome",), lookup=_corp_lookup,
                         choices=lambda s, corp_id: [(i, n) for i, (n, _u)
                                                     in _corp_lookup(s, corp_id, [corp_id]).items()]))
