"""The corp's privacy notice (个人信息处理规则) and the consent a customer gives to it on an H5 page.

PIPL asks a processor to tell people, before it collects their personal information, who it is, what
it collects, why, for how long and how to exercise their rights, and to collect only with consent.
A corp's compliance officer publishes the notice here, version after version (a version is never
edited). Until the corp publishes its own, the built-in text (version 0, naming the corp) stands.
An H5 page that asks for a phone number shows the version in force with a link to its text and a tick
box; the number is taken only with the box ticked for that version (an older version, say from a page
left open across a new publication, is refused: the customer reads the new one). The consent goes to
the consent ledger (purpose `personal_info`, source `h5`, the version) when the page knows the
customer's WeCom id, and is kept on the visit with the version in every case.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.errors import InvalidInput, NotFound
from siyu.privacy.models import PrivacyNotice
from siyu.tenancy import audit
from siyu.tenancy.models import Corp
from siyu.tenancy.principal import Principal

TITLE_MAX = 100
TEXT_MIN, TEXT_MAX = 50, 20_000
DEFAULT_TITLE = "个人信息处理规则"
DEFAULT_TEXT = (
    "{corp}（以下简称“我们”）将按照《中华人民共和国个人信息保护法》处理您的个人信息。\n"
    "一、我们收集的信息：您主动填写的手机号码，以及您在企业微信中与我们沟通时产生的信息。\n"
    "二、处理目的：核验您是否为我们的客户，并为您提供社群与咨询服务；不用于与上述目的无关的用途。\n"
    "三、保存期限：实现上述目的所必需的最短期限，法律法规另有规定的除外。\n"
    "四、您的权利：您可以查阅、复制、更正、删除您的个人信息，或撤回同意，请联系您的理财顾问或我们的客服。\n"
    "五、撤回同意不影响撤回前基于同意已进行的处理。"
)


@dataclass(frozen=True)
class Notice:
    version: int  # 0: the built-in text, until the corp publishes its own
    title: str
    text: str


def current(session: Session, *, corp_id: int) -> Notice:
    row = session.scalar(select(PrivacyNotice).where(PrivacyNotice.corp_id == corp_id)
                         .order_by(PrivacyNotice.version.desc()).limit(1))
    if row is not None:
        return Notice(version=row.version, title=row.title, text=row.text)
    name = session.scalar(select(Corp.name).where(Corp.id == corp_id)) or ""
    return Notice(version=0, title=DEFAULT_TITLE, text=DEFAULT_TEXT.format(corp=name))


def versions(session: Session, *, corp_id: int) -> list[PrivacyNotice]:
    return list(session.scalars(select(PrivacyNotice).where(PrivacyNotice.corp_id == corp_id)
                                .order_by(PrivacyNotice.version.desc())))


def get_version(session: Session, *, corp_id: int, version: int) -> Notice:
    if version == 0:
        notice = current(session, corp_id=corp_id)
        if notice.version == 0:
            return notice
    row = session.scalar(select(PrivacyNotice).where(PrivacyNotice.corp_id == corp_id,
                                                     PrivacyNotice.version == version))
    if row is None:
        if version == 0:  # the built-in text, superseded: still readable by what was agreed to
            name = session.scalar(select(Corp.name).where(Corp.id == corp_id)) or ""
            return Notice(version=0, title=DEFAULT_TITLE, text=DEFAULT_TEXT.format(corp=name))
        raise NotFound("no such version of the privacy notice", field="version")
    return Notice(version=row.version, title=row.title, text=row.text)


def publish(session: Session, *, corp_id: int, actor: Principal, title: str, text: str) -> PrivacyNotice:
    """A new version of the notice, in force from now on; audited."""
    title = (title or "").strip()
    text = (text or "").replace("\r\n", "\n").strip()
    if not title or len(title) > TITLE_MAX:
        raise InvalidInput("a title of 1 to %(n)s characters is required", field="title", params={"n": TITLE_MAX})
    if not TEXT_MIN <= len(text) <= TEXT_MAX:
        raise InvalidInput("the notice must be %(a)s to %(b)s characters long", field="text",
                           params={"a": TEXT_MIN, "b": TEXT_MAX})
    if any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise InvalidInput("the notice holds control characters", field="text")
    version = (session.scalar(select(func.max(PrivacyNotice.version)).where(PrivacyNotice.corp_id == corp_id))
               or 0) + 1
    row = PrivacyNotice(corp_id=corp_id, version=version, title=title, text=text, published_by=actor.label[:120])
    session.add(row)
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="privacy_notice.published",
                 target_type="privacy_notice", target_id=row.id, detail={"version": version})
    return row


def check_agreed(session: Session, *, corp_id: int, agreed_version: object) -> Notice:
    """The notice in force, when the customer ticked the box for it; refuses otherwise (field `consent`)."""
    notice = current(session, corp_id=corp_id)
    try:
        version = int(str(agreed_version)) if agreed_version not in (None, "") else None
    except ValueError:
        version = None
    if version is None:
        raise InvalidInput("please read the privacy notice and tick the box to agree first", field="consent")
    if version != notice.version:
        raise InvalidInput("the privacy notice has changed; please read the new version and agree again",
                           field="consent")
    return notice
