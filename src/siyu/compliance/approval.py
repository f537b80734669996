"""Content review and maker–checker approval (内容审核与双人复核).

Every text staff send to customers through an automated path (welcome, keyword reply, broadcast,
SOP slot, Moments, course, game) is a content item owned by an object of another domain: `kind` and a
typed owner (`compliance.content.OwnerRef`, e.g. ("welcome", welcome_variant:42)), checked to exist in
the corp; `ref` is its string form. Domains call `compliance.content` (the gate), not this module.
Its versions hold the maker's text, attached
images/links/mini-programs and products, the text with the risk disclosures it needs appended
(`final_text`: what is approved and what is sent) and the wording review of that text.

States of a version: draft → submitted → approved | rejected. A "block" verdict cannot be submitted;
a "review" verdict can, and the checker sees its findings. The checker holds the compliance (or
administrator) role and has neither written nor submitted any version of the item (four eyes,
`_checker`). An approved version is
never changed: editing approved content makes a new version that needs approval again, while the
approved one stays in force (`approved_text`) until the new one is approved. A rejected version stays
as history; editing makes the next version. Every step is an event of the item's history and an
entry of the corp's audit chain.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from siyu.compliance import suitability
from siyu.compliance.content import KINDS as CONTENT_KINDS
from siyu.compliance.content import ContentRefused, OwnerRef, resolve_owner
from siyu.compliance.disclosure import attach_disclosure, needed_disclosures
from siyu.compliance.models import ContentEvent, ContentItem, ContentVersion
from siyu.compliance.normalize import BARRIER
from siyu.compliance.service import review_outbound
from siyu.db import utcnow
from siyu.errors import Conflict, Forbidden, InvalidInput, NotFound
from siyu.tenancy import audit
from siyu.tenancy.principal import Principal

KINDS = tuple(CONTENT_KINDS)
STATUSES = ("draft", "submitted", "approved", "rejected")
ATTACHMENT_TYPES = ("image", "link", "miniprogram")
CHECKER_ROLES = ("compliance", "administrator")

MAX_ID = 2**63 - 1
MAX_TEXT = 4000  # WeCom caps a text message at 4,096 bytes of content; disclosures are added to this
MAX_TITLE = 200
MAX_COMMENT = 2000
MAX_ATTACHMENTS = 9
MAX_PRODUCTS = 20
MAX_ATTACHMENT_FIELD = 500
REF_RE = re.compile(r"[^\s\x00-\x1f\x7f]{1,128}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # newline and tab are text
# The fields an attachment of each type may carry (the first is required).
ATTACHMENT_FIELDS: dict[str, tuple[str, ...]] = {
    "image": ("media_id", "url"),
    "link": ("url", "title", "desc", "picurl"),
    "miniprogram": ("appid", "page", "title", "pic_media_id"),
}


# --- validation ------------------------------------------------------------------------------------------------


def _corp(corp_id: object) -> int:
    if not isinstance(corp_id, int) or isinstance(corp_id, bool) or not 1 <= corp_id <= MAX_ID:
        raise InvalidInput("invalid corp", field="corp_id")
    return corp_id


def _kind(value: object) -> str:
    kind = value.strip() if isinstance(value, str) else None
    if kind not in KINDS:
        raise InvalidInput("the kind of content is one of %(kinds)s", field="kind", params={"kinds": ", ".join(KINDS)})
    return kind


def _ref(value: object) -> str:
    ref = value.strip() if isinstance(value, str) else ""
    if not REF_RE.fullmatch(ref):
        raise InvalidInput("the owner reference is 1–128 characters without spaces, e.g. channel_code:42",
                           field="ref")
    return ref


def _title(value: object) -> str:
    title = value.strip() if isinstance(value, str) else ""
    if not title:
        raise InvalidInput("the title is required", field="title")
    if len(title) > MAX_TITLE or _CONTROL.search(title) or "\n" in title:
        raise InvalidInput("the title is one line of at most %(max)s characters", field="title",
                           params={"max": MAX_TITLE})
    return title


def _text(value: object, *, required: bool = True) -> str:
    text = value.replace("\r\n", "\n").strip() if isinstance(value, str) else ""
    if not text and not required:
        return text
    if not text:
        raise InvalidInput("the text is required", field="text")
    if len(text) > MAX_TEXT:
        raise InvalidInput("the text is at most %(max)s characters", field="text", params={"max": MAX_TEXT})
    if _CONTROL.search(text) or BARRIER in text:
        raise InvalidInput("the text holds control characters", field="text")
    return text


def _comment(value: object, *, required: bool) -> str:
    comment = value.replace("\r\n", "\n").strip() if isinstance(value, str) else ""
    if required and not comment:
        raise InvalidInput("a comment is required", field="comment")
    if len(comment) > MAX_COMMENT:
        raise InvalidInput("the comment is at most %(max)s characters", field="comment", params={"max": MAX_COMMENT})
    if _CONTROL.search(comment):
        raise InvalidInput("the comment holds control characters", field="comment")
    return comment


def _attachments(value: object) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list | tuple) or len(value) > MAX_ATTACHMENTS:
        raise InvalidInput("at most %(max)s attachments", field="attachments", params={"max": MAX_ATTACHMENTS})
    out = []
    for a in value:
        kind = a.get("type") if isinstance(a, dict) else None
        if kind not in ATTACHMENT_FIELDS:
            raise InvalidInput("an attachment is an image, a link or a mini-program", field="attachments")
        allowed = ATTACHMENT_FIELDS[kind]
        clean = {"type": kind}
        for key, v in a.items():
            if key == "type":
                continue
            if key not in allowed or not isinstance(v, str) or len(v) > MAX_ATTACHMENT_FIELD \
                    or _CONTROL.search(v) or "\n" in v:
                raise InvalidInput("the attachment's %(key)s is not valid", field="attachments",
                                   params={"key": str(key)[:40]})
            if v.strip():
                clean[key] = v.strip()
        if kind == "image" and not ({"media_id", "url"} & set(clean)):
            raise InvalidInput("an image needs a media_id or a url", field="attachments")
        if kind in ("link", "miniprogram") and not clean.get(allowed[0]):
            raise InvalidInput("the attachment's %(key)s is not valid", field="attachments",
                               params={"key": allowed[0]})
        if "url" in clean and not clean["url"].startswith(("https://", "http://")):
            raise InvalidInput("the attachment's %(key)s is not valid", field="attachments", params={"key": "url"})
        out.append(clean)
    return out


def _products(session: Session, corp_id: int, codes: object) -> tuple[list[str], set[str]]:
    """The attached product codes (active products of the corp) and their types."""
    if codes is None:
        return [], set()
    if not isinstance(codes, list | tuple) or len(codes) > MAX_PRODUCTS:
        raise InvalidInput("at most %(max)s products", field="product_codes", params={"max": MAX_PRODUCTS})
    out: list[str] = []
    types: set[str] = set()
    for code in codes:
        product = suitability.get_product(session, corp_id=corp_id, code=code, field="product_codes")
        if not product.is_active:
            raise InvalidInput("the product %(code)s is not on offer", field="product_codes",
                               params={"code": product.code})
        if product.code not in out:
            out.append(product.code)
            types.add(product.product_type)
    return out, types


def _product_types(value: object) -> set[str]:
    if value is None:
        return set()
    if not isinstance(value, list | tuple | set | frozenset):
        raise InvalidInput("a product type is one of %(types)s", field="product_types",
                           params={"types": ", ".join(suitability.PRODUCT_TYPES)})
    return {suitability.valid_product_type(v, field="product_types") for v in value}


def _actor(actor: object) -> Principal:
    if not isinstance(actor, Principal):
        raise Forbidden("only a member of staff may do this")
    return actor


def as_actor(corp_id: int, actor: Principal | str) -> Principal:
    """A maker for the gate: staff, or what another domain names (an API key, a job, a test)."""
    if isinstance(actor, Principal):
        return actor
    return Principal.system(corp_id, label=str(actor)[:120] or "system")


def clean_text(value: object) -> str:
    """The text as a version stores it."""
    return _text(value, required=False)


def clean_attachments(value: object) -> list[dict]:
    return _attachments(_listed(value))


def attachment_titles(attachments: Iterable[dict]) -> list[str]:
    """What the customer reads with the text besides it: link and mini-program titles and descriptions."""
    return [a[k] for a in attachments for k in ("title", "desc") if isinstance(a.get(k), str) and a.get(k)]


# --- reading ---------------------------------------------------------------------------------------------------


def get_item(session: Session, *, corp_id: int, item_id: int, lock: bool = False) -> ContentItem:
    """The corp's content item; `lock` holds its row until the transaction ends (PostgreSQL), so two
    checkers deciding at once are served one after the other."""
    corp_id = _corp(corp_id)
    item = None
    if isinstance(item_id, int) and not isinstance(item_id, bool) and 1 <= item_id <= MAX_ID:
        q = select(ContentItem).where(ContentItem.corp_id == corp_id, ContentItem.id == item_id)
        item = session.scalar(q.with_for_update() if lock else q)
    if item is None:
        raise NotFound("no such content", field="item_id")
    return item


def find_item(session: Session, *, corp_id: int, kind: str, ref: str) -> ContentItem | None:
    return session.scalar(select(ContentItem).where(ContentItem.corp_id == _corp(corp_id),
                                                    ContentItem.kind == _kind(kind), ContentItem.ref == _ref(ref)))


def versions(session: Session, *, corp_id: int, item_id: int) -> list[ContentVersion]:
    """The item's versions, the oldest first."""
    item = get_item(session, corp_id=corp_id, item_id=item_id)
    return list(session.scalars(select(ContentVersion).where(ContentVersion.item_id == item.id,
                                                             ContentVersion.corp_id == item.corp_id)
                                .order_by(ContentVersion.number)))


def get_version(session: Session, *, corp_id: int, item_id: int, number: int | None = None) -> ContentVersion:
    """One version of the item (the latest when `number` is None)."""
    item = get_item(session, corp_id=corp_id, item_id=item_id)
    number = item.latest_version if number is None else number
    version = session.scalar(select(ContentVersion).where(ContentVersion.item_id == item.id,
                                                          ContentVersion.corp_id == item.corp_id,
                                                          ContentVersion.number == number))
    if version is None:
        raise NotFound("no such version", field="version")
    return version


def list_items(session: Session, *, corp_id: int, status: str | None = None, kind: str | None = None,
               ref: str | None = None, created_by_staff_id: int | None = None, limit: int = 200) -> list[ContentItem]:
    """The corp's content items, the most recently changed first."""
    q = select(ContentItem).where(ContentItem.corp_id == _corp(corp_id))
    if status is not None:
        if status not in STATUSES:
            raise InvalidInput("the status is one of %(statuses)s", field="status",
                               params={"statuses": ", ".join(STATUSES)})
        q = q.where(ContentItem.status == status)
    if kind is not None:
        q = q.where(ContentItem.kind == _kind(kind))
    if ref is not None:
        q = q.where(ContentItem.ref == _ref(ref))
    if created_by_staff_id is not None:
        # "my items": those I created or wrote a version of
        mine = select(ContentVersion.item_id).where(ContentVersion.corp_id == corp_id,
                                                    ContentVersion.created_by_staff_id == created_by_staff_id)
        q = q.where(or_(ContentItem.created_by_staff_id == created_by_staff_id, ContentItem.id.in_(mine)))
    return list(session.scalars(q.order_by(ContentItem.updated_at.desc(), ContentItem.id.desc())
                                .limit(max(1, min(limit, 1000)))))


def history(session: Session, *, corp_id: int, item_id: int) -> list[ContentEvent]:
    """Who did what to which version, when, with which verdict and comment; the oldest first."""
    item = get_item(session, corp_id=corp_id, item_id=item_id)
    return list(session.scalars(select(ContentEvent).where(ContentEvent.item_id == item.id,
                                                           ContentEvent.corp_id == item.corp_id)
                                .order_by(ContentEvent.id)))


def approved_version(session: Session, *, corp_id: int, kind: str, ref: str) -> ContentVersion | None:
    """The version in force for the owning object, or None when nothing is approved."""
    item = find_item(session, corp_id=corp_id, kind=kind, ref=ref)
    if item is None or item.approved_version is None:
        return None
    return get_version(session, corp_id=item.corp_id, item_id=item.id, number=item.approved_version)


def approved_texts(session: Session, *, corp_id: int, items: Iterable[ContentItem]) -> dict[int, str]:
    """item id -> the approved text in force, for the items that have one (one query)."""
    wanted = {(i.id, i.approved_version) for i in items if i.corp_id == corp_id and i.approved_version is not None}
    if not wanted:
        return {}
    rows = session.execute(select(ContentVersion.item_id, ContentVersion.number, ContentVersion.final_text)
                           .where(ContentVersion.corp_id == _corp(corp_id),
                                  ContentVersion.item_id.in_({i for i, _n in wanted})))
    return {item_id: text for item_id, number, text in rows if (item_id, number) in wanted}


def approved_text(session: Session, corp_id: int, kind: str, ref: str) -> str | None:
    """The approved text in force (with its risk disclosures) for (kind, ref), or None."""
    version = approved_version(session, corp_id=corp_id, kind=kind, ref=ref)
    return version.final_text if version else None


# --- writing ---------------------------------------------------------------------------------------------------


def _event(session: Session, item: ContentItem, version: ContentVersion, *, actor: Principal, action: str,
           comment: str = "", verdict: str | None = None) -> ContentEvent:
    event = ContentEvent(item_id=item.id, corp_id=item.corp_id, version=version.number, action=action,
                         verdict=verdict, comment=comment, actor=actor.label, actor_staff_id=actor.staff_id)
    session.add(event)
    session.flush()
    detail = {"kind": item.kind, "ref": item.ref, "version": version.number}
    if verdict:
        detail["verdict"] = verdict
    if comment:
        detail["comment"] = comment
    audit.record(session, corp_id=item.corp_id, actor=actor, action=f"content.{action}", target_type="content_item",
                 target_id=item.id, detail=detail)
    return event


def _compose(session: Session, corp_id: int, version: ContentVersion, *, text: str, attachments: list[dict],
             product_codes: list[str], product_types: set[str]) -> None:
    """Fill the version's text, disclosures and review (the review is of the text that will be sent)."""
    needed = needed_disclosures(session, corp_id=corp_id, text=text, product_types=product_types)
    final = attach_disclosure(session, corp_id=corp_id, text=text, product_types=product_types)
    verdict = review_outbound(session, corp_id=corp_id, text="\n".join([final, *attachment_titles(attachments)]))
    version.text = text
    version.final_text = final
    version.attachments = attachments
    version.product_codes = product_codes
    version.product_types = [k for k in suitability.PRODUCT_TYPES if k in product_types]
    version.disclosure_types = [k for k, _d in needed]
    version.verdict = verdict.verdict
    version.findings = [f.as_dict() for f in verdict.findings]


def _inputs(session: Session, corp_id: int, *, text: object, attachments: object, product_codes: object,
            product_types: object) -> dict:
    codes, types = _products(session, corp_id, _listed(product_codes))
    atts = _attachments(_listed(attachments))
    # A message may be attachments only (a group QR image): then the text may be empty.
    return {"text": _text(text, required=not atts), "attachments": atts, "product_codes": codes,
            "product_types": types | _product_types(_listed(product_types))}


def create_item(session: Session, *, corp_id: int, actor: Principal, kind: str, owner: object, title: str,
                text: str, attachments: Iterable[dict] | None = None, product_codes: Iterable[str] | None = None,
                product_types: Iterable[str] | None = None) -> ContentItem:
    """A new content item of a real object of the corp (`owner`, checked) with its first version, a
    draft (reviewed, with disclosures attached)."""
    corp_id = _corp(corp_id)
    actor = _actor(actor)
    kind, title = _kind(kind), _title(title)
    owner_ref: OwnerRef = resolve_owner(session, corp_id=corp_id, owner=owner, kind=kind)
    ref = str(owner_ref)
    inputs = _inputs(session, corp_id, text=text, attachments=attachments, product_codes=product_codes,
                     product_types=product_types)
    if session.scalar(select(ContentItem.id).where(ContentItem.corp_id == corp_id, ContentItem.kind == kind,
                                                   ContentItem.ref == ref)) is not None:
        raise Conflict("this object already has content of this kind; edit it instead", field="ref")
    item = ContentItem(corp_id=corp_id, kind=kind, ref=ref, owner_type=owner_ref.type, owner_id=owner_ref.id,
                       title=title, status="draft", latest_version=1, created_by=actor.label,
                       created_by_staff_id=actor.staff_id)
    session.add(item)
    session.flush()
    version = ContentVersion(item_id=item.id, corp_id=corp_id, number=1, status="draft", created_by=actor.label,
                             created_by_staff_id=actor.staff_id)
    _compose(session, corp_id, version, **inputs)
    session.add(version)
    session.flush()
    _event(session, item, version, actor=actor, action="created", verdict=version.verdict)
    return item


def _listed(value: object) -> object:
    # Generators and sets are accepted from Python callers; anything else is judged by the validators.
    if value is None or isinstance(value, list | tuple | str | dict):
        return value
    try:
        return list(value)  # type: ignore[call-overload]
    except TypeError:
        return value


def edit(session: Session, *, corp_id: int, actor: Principal, item_id: int, text: str, title: str | None = None,
         attachments: Iterable[dict] | None = None, product_codes: Iterable[str] | None = None,
         product_types: Iterable[str] | None = None) -> ContentVersion:
    """Change the content. A draft is changed in place; an approved or rejected latest version stays as
    it is and the change becomes a new draft version. A version awaiting approval cannot be changed."""
    corp_id = _corp(corp_id)
    actor = _actor(actor)
    item = get_item(session, corp_id=corp_id, item_id=item_id, lock=True)
    new_title = _title(title) if title is not None else item.title
    inputs = _inputs(session, corp_id, text=text, attachments=attachments, product_codes=product_codes,
                     product_types=product_types)
    latest = get_version(session, corp_id=corp_id, item_id=item.id)
    if latest.status == "submitted":
        raise Conflict("this version is awaiting approval and cannot be changed", field="version")
    if latest.status == "draft":
        version, action = latest, "edited"
        version.created_by, version.created_by_staff_id = actor.label, actor.staff_id
    else:  # approved or rejected: immutable, the change is a new version
        version = ContentVersion(item_id=item.id, corp_id=corp_id, number=latest.number + 1, status="draft",
                                 created_by=actor.label, created_by_staff_id=actor.staff_id)
        action = "new_version"
    _compose(session, corp_id, version, **inputs)
    if action == "new_version":
        session.add(version)
        item.latest_version = version.number
    item.title = new_title
    item.status = "draft"
    item.updated_at = utcnow()
    session.flush()
    _event(session, item, version, actor=actor, action=action, verdict=version.verdict)
    return version


def save_draft(session: Session, *, corp_id: int, actor: Principal, kind: str, owner: object, title: str, text: str,
               attachments: Iterable[dict] | None = None, product_codes: Iterable[str] | None = None,
               product_types: Iterable[str] | None = None) -> ContentVersion:
    """The content of (kind, owner) as a draft, creating the item or editing it (a new version when
    the latest is approved or rejected). Submit it with `submit`. Other domains call
    `compliance.content.submit_content` instead, which saves and submits."""
    owner = resolve_owner(session, corp_id=_corp(corp_id), owner=owner, kind=_kind(kind))
    item = find_item(session, corp_id=corp_id, kind=kind, ref=str(owner))
    fields = {"attachments": attachments, "product_codes": product_codes, "product_types": product_types}
    if item is None:
        item = create_item(session, corp_id=corp_id, actor=actor, kind=kind, owner=owner, title=title, text=text,
                           **fields)
        return get_version(session, corp_id=item.corp_id, item_id=item.id)
    return edit(session, corp_id=corp_id, actor=actor, item_id=item.id, text=text, title=title, **fields)


def _latest_in(session: Session, item: ContentItem, statuses: tuple[str, ...], expected: int | None,
               message: str) -> ContentVersion:
    version = get_version(session, corp_id=item.corp_id, item_id=item.id)
    if expected is not None and expected != version.number:
        raise Conflict("the content has changed since you opened it; reload and try again", field="version")
    if version.status not in statuses:
        raise Conflict(message, field="version")
    return version


def _blocked(version: ContentVersion) -> None:
    if version.verdict == "block":
        raise ContentRefused(version.findings)


def submit(session: Session, *, corp_id: int, actor: Principal, item_id: int,
           version: int | None = None) -> ContentVersion:
    """Send the latest draft to a checker. Refused (field `text`, naming the phrases) when the wording
    review blocks it; the review is run again, as the dictionary may have changed since the draft."""
    actor = _actor(actor)
    item = get_item(session, corp_id=corp_id, item_id=item_id, lock=True)
    current = _latest_in(session, item, ("draft",), version, "only a draft can be submitted")
    _recheck(session, current)
    _blocked(current)
    current.status = "submitted"
    current.submitted_by, current.submitted_by_staff_id, current.submitted_at = actor.label, actor.staff_id, utcnow()
    item.status = "submitted"
    item.updated_at = utcnow()
    session.flush()
    _event(session, item, current, actor=actor, action="submitted", verdict=current.verdict)
    return current


def _recheck(session: Session, version: ContentVersion) -> None:
    verdict = review_outbound(session, corp_id=version.corp_id,
                              text="\n".join([version.final_text, *attachment_titles(version.attachments or [])]))
    version.verdict = verdict.verdict
    version.findings = [f.as_dict() for f in verdict.findings]


MAKER_ACTIONS = ("created", "edited", "new_version", "submitted", "withdrawn")


def makers(session: Session, item: ContentItem) -> set[int]:
    """Staff who wrote or submitted any version of the item (from its history: an in-place edit of a
    draft leaves its earlier writer there too)."""
    ids = set(session.scalars(select(ContentEvent.actor_staff_id).where(
        ContentEvent.item_id == item.id, ContentEvent.corp_id == item.corp_id,
        ContentEvent.action.in_(MAKER_ACTIONS), ContentEvent.actor_staff_id.is_not(None))))
    ids |= set(session.scalars(select(ContentVersion.created_by_staff_id).where(
        ContentVersion.item_id == item.id, ContentVersion.created_by_staff_id.is_not(None))))
    ids |= set(session.scalars(select(ContentVersion.submitted_by_staff_id).where(
        ContentVersion.item_id == item.id, ContentVersion.submitted_by_staff_id.is_not(None))))
    if item.created_by_staff_id is not None:
        ids.add(item.created_by_staff_id)
    return ids


def may_decide(session: Session, actor: Principal, item: ContentItem) -> bool:
    """Four eyes: a checker who has written or submitted no version of this item."""
    return (actor.has_role(*CHECKER_ROLES) and actor.staff_id is not None
            and actor.staff_id not in makers(session, item))


def _checker(session: Session, actor: Principal, item: ContentItem) -> None:
    if not actor.has_role(*CHECKER_ROLES):
        raise Forbidden("only a compliance officer or an administrator may approve or reject content")
    if actor.staff_id is None or actor.staff_id in makers(session, item):
        raise Forbidden("four eyes: whoever wrote or submitted any version of this content may not approve or "
                        "reject it", field="version")


def approve(session: Session, *, corp_id: int, actor: Principal, item_id: int, version: int | None = None,
            comment: str = "") -> ContentVersion:
    """Approve the submitted version: it becomes the text in force, replacing the one approved before."""
    actor = _actor(actor)
    comment = _comment(comment, required=False)
    item = get_item(session, corp_id=corp_id, item_id=item_id, lock=True)
    current = _latest_in(session, item, ("submitted",), version, "only submitted content can be approved")
    _checker(session, actor, item)
    _recheck(session, current)
    _blocked(current)
    _put_in_force(session, item, current, actor=actor, comment=comment)
    _event(session, item, current, actor=actor, action="approved", verdict=current.verdict, comment=comment)
    return current


def _put_in_force(session: Session, item: ContentItem, current: ContentVersion, *, actor: Principal,
                  comment: str) -> None:
    if item.approved_version is not None:
        previous = get_version(session, corp_id=item.corp_id, item_id=item.id, number=item.approved_version)
        previous.status = "superseded"
    now = utcnow()
    current.status = "approved"
    current.decided_by, current.decided_by_staff_id, current.decided_at = actor.label, actor.staff_id, now
    current.decision_comment = comment
    item.status = "approved"
    item.approved_version = current.number
    item.updated_at = now
    session.flush()


def approve_unrequired(session: Session, *, corp_id: int, item_id: int, version: int) -> ContentVersion:
    """The corp does not require approval for this kind and the review passes: the submitted version
    goes in force at once, recorded as approved by the system (`auto_approved`)."""
    item = get_item(session, corp_id=corp_id, item_id=item_id, lock=True)
    current = _latest_in(session, item, ("submitted",), version, "only submitted content can be approved")
    _recheck(session, current)
    if current.verdict != "pass":
        return current
    system = Principal.system(item.corp_id, label="system: approval not required for this kind")
    _put_in_force(session, item, current, actor=system, comment="")
    _event(session, item, current, actor=system, action="auto_approved", verdict=current.verdict)
    return current


def withdraw(session: Session, *, corp_id: int, actor: Principal, item_id: int) -> ContentVersion:
    """The maker takes the submitted version back to a draft (to change it before a decision)."""
    item = get_item(session, corp_id=corp_id, item_id=item_id, lock=True)
    current = _latest_in(session, item, ("submitted",), None, "only submitted content can be withdrawn")
    current.status = "draft"
    item.status = "draft"
    item.updated_at = utcnow()
    session.flush()
    _event(session, item, current, actor=actor, action="withdrawn", verdict=current.verdict)
    return current


def reject(session: Session, *, corp_id: int, actor: Principal, item_id: int, comment: str,
           version: int | None = None) -> ContentVersion:
    """Send the submitted version back with a comment (required). The version in force, if any, stays."""
    actor = _actor(actor)
    comment = _comment(comment, required=True)
    item = get_item(session, corp_id=corp_id, item_id=item_id, lock=True)
    current = _latest_in(session, item, ("submitted",), version, "only submitted content can be rejected")
    _checker(session, actor, item)
    now = utcnow()
    current.status = "rejected"
    current.decided_by, current.decided_by_staff_id, current.decided_at = actor.label, actor.staff_id, now
    current.decision_comment = comment
    item.status = "rejected"
    item.updated_at = now
    session.flush()
    _event(session, item, current, actor=actor, action="rejected", verdict=current.verdict, comment=comment)
    return current


def add_comment(session: Session, *, corp_id: int, actor: Principal, item_id: int, comment: str) -> ContentEvent:
    """A remark on the latest version, kept in the item's history."""
    actor = _actor(actor)
    comment = _comment(comment, required=True)
    item = get_item(session, corp_id=corp_id, item_id=item_id)
    current = get_version(session, corp_id=item.corp_id, item_id=item.id)
    return _event(session, item, current, actor=actor, action="commented", comment=comment)


# --- presenting ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of a text: plain (finding None) or one finding's span, for <mark>."""

    text: str
    finding: dict | None = None


def segments(text: str, findings: Iterable[dict]) -> list[Segment]:
    """The text cut at the findings' spans (overlapping findings: the first by position wins)."""
    out: list[Segment] = []
    pos = 0
    for f in sorted(findings, key=lambda f: (f.get("start", 0), -f.get("end", 0))):
        start, end = f.get("start"), f.get("end")
        if not isinstance(start, int) or not isinstance(end, int) or start < pos or end <= start or end > len(text):
            continue
        if start > pos:
            out.append(Segment(text[pos:start]))
        out.append(Segment(text[start:end], f))
        pos = end
    if pos < len(text):
        out.append(Segment(text[pos:]))
    return out


def diff(old: str, new: str) -> list[tuple[str, str]]:
    """Character diff of two texts as (op, piece): op is "equal", "delete" or "insert"."""
    out: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.append(("equal", old[i1:i2]))
            continue
        if i2 > i1:
            out.append(("delete", old[i1:i2]))
        if j2 > j1:
            out.append(("insert", new[j1:j2]))
    return out
