"""Tables of the compliance domain: the wording dictionary (措辞词库) with its version history, products and
suitability, content approval and the chat archive. Personal information, handover and service quality
keep theirs in `siyu.privacy.models`, `siyu.handover.models` and `siyu.quality.models`."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, IdMixin, TimestampMixin, utcnow


class WordingEntry(IdMixin, TimestampMixin, Base):
    """One phrase of the wording dictionary: a corp's own (corp_id set) or the installation's (NULL).

    Entries are never deleted, only deactivated, so that past review findings stay explainable."""

    __tablename__ = "wording_entry"
    __table_args__ = (
        # One entry per normalised phrase in each scope (0 = installation, else the corp id).
        UniqueConstraint("scope_id", "phrase_key"),
        Index("ix_wording_entry_scope_active", "scope_id", "is_active"),
    )

    corp_id: Mapped[int | None] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    scope_id: Mapped[int] = mapped_column(Integer)  # corp_id or 0: NULLs never collide in a unique index
    category: Mapped[str] = mapped_column(String(32))
    phrase: Mapped[str] = mapped_column(String(100))
    phrase_key: Mapped[str] = mapped_column(String(100))  # normalised form, what the automaton matches
    severity: Mapped[str] = mapped_column(String(16))  # block | review | allow
    rule: Mapped[str] = mapped_column(String(500))
    notes: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WordingEntryRevision(IdMixin, Base):
    """The state of an entry after each change, with the dictionary version it produced."""

    __tablename__ = "wording_entry_revision"
    __table_args__ = (Index("ix_wording_entry_revision_scope_version", "scope_id", "version"),)

    entry_id: Mapped[int] = mapped_column(BigId, ForeignKey("wording_entry.id", ondelete="CASCADE"), index=True)
    scope_id: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))  # created | edited | deactivated | reactivated
    category: Mapped[str] = mapped_column(String(32))
    phrase: Mapped[str] = mapped_column(String(100))
    severity: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str] = mapped_column(String(500))
    notes: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(Boolean)
    actor: Mapped[str] = mapped_column(String(120))
    actor_staff_id: Mapped[int | None] = mapped_column(BigId)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WordingDictionaryVersion(Base):
    """The current version of one scope's dictionary; bumped by every change in that scope.

    Compiled automata are cached per (installation stamp, corp stamp), so every process
    picks up a change at its next review without any shared in-memory state."""

    __tablename__ = "wording_dictionary_version"

    scope_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer, default=0)
    # A random token renewed with every bump: a version number can be reused after a rollback,
    # a stamp cannot, so caches key on it.
    stamp: Mapped[str] = mapped_column(String(32), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


TABLES = (WordingEntry.__table__, WordingEntryRevision.__table__, WordingDictionaryVersion.__table__)


class WordingSettings(TimestampMixin, Base):
    """A corp's wording-review settings: the firm-type lexicons it has switched on (rules.FIRM_TYPES).

    No row: every lexicon is on (a bank sells funds and insurance too)."""

    __tablename__ = "wording_settings"

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), primary_key=True,
                                         autoincrement=False)
    lexicons: Mapped[list] = mapped_column(JSON, default=list)
    updated_by: Mapped[str] = mapped_column(String(120), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WordingDraftEdit(IdMixin, TimestampMixin, Base):
    """An unpublished edit of a corp's dictionary (词库草稿): add a phrase, change an entry, or take
    one out. The draft is the dictionary in force with these edits applied; publishing makes each a
    real, versioned and audited change (dictionary.add_entry / edit_entry / deactivate_entry)."""

    __tablename__ = "wording_draft_edit"
    __table_args__ = (Index("ix_wording_draft_edit_corp", "corp_id", "id"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))  # add | edit | deactivate
    entry_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("wording_entry.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(32), default="")
    phrase: Mapped[str] = mapped_column(String(100))
    severity: Mapped[str] = mapped_column(String(16), default="")
    rule: Mapped[str] = mapped_column(String(500), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(120))


# --- suitability (适当性) and risk disclosures (风险揭示) ----------------------------------------------


class Product(IdMixin, TimestampMixin, Base):
    """A product of the corp's catalogue (产品) with its risk level R1–R5 (产品风险等级).

    Products are never deleted, only deactivated: past suitability decisions name them."""

    __tablename__ = "product"
    __table_args__ = (
        UniqueConstraint("corp_id", "code"),
        Index("ix_product_corp_active", "corp_id", "is_active"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))  # the firm's product code, unique in the corp
    name: Mapped[str] = mapped_column(String(200))
    product_type: Mapped[str] = mapped_column(String(32))  # wealth_management | fund | insurance | credit | deposit
    risk_level: Mapped[str] = mapped_column(String(2))  # R1 … R5
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CustomerRiskAssessment(IdMixin, TimestampMixin, Base):
    """One risk assessment of a customer (客户风险承受能力评估), C1–C5, from the firm's KYC.

    History is kept: a new assessment is a new row; the one in force is the latest by `assessed_at`.
    Suitability records are kept for decades (DESIGN §3), so rows are never updated."""

    __tablename__ = "customer_risk_assessment"
    __table_args__ = (
        Index("ix_customer_risk_assessment_lookup", "corp_id", "customer_ref", "assessed_at"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    # The WeCom external_userid or the firm's own customer id (the customers domain will link them).
    customer_ref: Mapped[str] = mapped_column(String(128))
    level: Mapped[str] = mapped_column(String(2))  # C1 … C5
    source: Mapped[str] = mapped_column(String(32))  # questionnaire | firm_kyc_api | branch_import | manual
    assessed_at: Mapped[dt.datetime] = mapped_column()
    expires_at: Mapped[dt.datetime] = mapped_column()
    reference: Mapped[str] = mapped_column(String(200), default="")  # e.g. the questionnaire's id at the firm
    recorded_by: Mapped[str] = mapped_column(String(120))
    recorded_by_staff_id: Mapped[int | None] = mapped_column(BigId)


class RiskDisclosure(IdMixin, TimestampMixin, Base):
    """A corp's own risk disclosure text (风险揭示语) for one product type, replacing the default."""

    __tablename__ = "risk_disclosure"
    __table_args__ = (UniqueConstraint("corp_id", "product_type"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    product_type: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- content review and maker–checker approval (内容审核与双人复核) ---------------------------------------------


class ContentItem(IdMixin, TimestampMixin, Base):
    """A text that staff send to customers (welcome, keyword reply, broadcast …) and its approval state.

    `ref` names the owning object ("channel_code:42"); other domains ask for the approved text of
    (kind, ref). `approved_version` is the version in force (NULL until one is approved); `status` is
    the state of the latest version: draft | submitted | approved | rejected."""

    __tablename__ = "content_item"
    __table_args__ = (
        UniqueConstraint("corp_id", "kind", "ref"),
        Index("ix_content_item_corp_status", "corp_id", "status"),
        Index("ix_content_item_owner", "corp_id", "owner_type", "owner_id"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  # welcome | keyword_reply | broadcast | sop_slot | moments | …
    ref: Mapped[str] = mapped_column(String(128))  # "<owner_type>:<owner_id>" (free text on items made before 0004)
    # The owning object, checked to exist in the corp when the item was made (compliance.content);
    # NULL only on items made before owners were typed: nothing is ever sent from those.
    owner_type: Mapped[str | None] = mapped_column(String(32))
    owner_id: Mapped[int | None] = mapped_column(BigId)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    latest_version: Mapped[int] = mapped_column(Integer, default=1)
    approved_version: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(120))
    created_by_staff_id: Mapped[int | None] = mapped_column(BigId)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ContentVersion(IdMixin, TimestampMixin, Base):
    """One version of a content item: the maker's text, what is attached, the text with its risk
    disclosures (`final_text`, what is approved and sent) and the review of that text.

    An approved (or superseded) version is never changed: editing approved content makes a new version."""

    __tablename__ = "content_version"
    __table_args__ = (UniqueConstraint("item_id", "number"),)

    item_id: Mapped[int] = mapped_column(BigId, ForeignKey("content_item.id", ondelete="CASCADE"))
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    # draft | submitted | approved | rejected | superseded (was in force, replaced by a newer approval)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    text: Mapped[str] = mapped_column(Text)
    final_text: Mapped[str] = mapped_column(Text)
    attachments: Mapped[list] = mapped_column(JSON, default=list)  # [{"type": "image"|"link"|"miniprogram", …}]
    product_codes: Mapped[list] = mapped_column(JSON, default=list)
    product_types: Mapped[list] = mapped_column(JSON, default=list)  # chosen by the maker or from the products
    disclosure_types: Mapped[list] = mapped_column(JSON, default=list)  # the disclosures appended
    verdict: Mapped[str] = mapped_column(String(16))  # block | review | pass, of final_text
    findings: Mapped[list] = mapped_column(JSON, default=list)  # offsets into final_text
    created_by: Mapped[str] = mapped_column(String(120))
    created_by_staff_id: Mapped[int | None] = mapped_column(BigId)
    submitted_by: Mapped[str | None] = mapped_column(String(120))
    submitted_by_staff_id: Mapped[int | None] = mapped_column(BigId)
    submitted_at: Mapped[dt.datetime | None] = mapped_column()
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_by_staff_id: Mapped[int | None] = mapped_column(BigId)
    decided_at: Mapped[dt.datetime | None] = mapped_column()
    decision_comment: Mapped[str] = mapped_column(Text, default="")


class ApprovalRequirement(Base):
    """A corp's choice, per kind of content, of whether a version needs a checker's approval before it
    is sent (absent row: the kind's default, `compliance.content.KINDS`)."""

    __tablename__ = "approval_requirement"

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    required: Mapped[bool] = mapped_column(Boolean)
    updated_by: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ContentEvent(IdMixin, Base):
    """The history of a content item: who did what to which version, when, with which verdict,
    and the comments of makers and checkers (kept for as long as the item)."""

    __tablename__ = "content_event"
    __table_args__ = (Index("ix_content_event_item", "item_id", "id"),)

    item_id: Mapped[int] = mapped_column(BigId, ForeignKey("content_item.id", ondelete="CASCADE"))
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    # created | edited | new_version | submitted | approved | rejected | commented
    action: Mapped[str] = mapped_column(String(16))
    verdict: Mapped[str | None] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(120))
    actor_staff_id: Mapped[int | None] = mapped_column(BigId)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- chat-archive monitoring (会话存档监控) -------------------------------------------------------------

from siyu.pii import EncryptedString, EncryptedText  # noqa: E402

ARCHIVE_TEXT_MAX = 4000  # characters of a message's text kept (and scanned)


class ArchiveCursor(Base):
    """How far a corp's archive feed was read (the last `seq` stored), and the last poll's outcome."""

    __tablename__ = "archive_cursor"

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), primary_key=True,
                                         autoincrement=False)
    seq: Mapped[int] = mapped_column(BigId, default=0)
    polled_at: Mapped[dt.datetime | None] = mapped_column()
    last_error: Mapped[str] = mapped_column(String(300), default="")


class ArchiveSdkConfig(Base):
    """How a corp reads its chat archive through WeCom's Finance SDK: the archive app's secret and
    the private keys (PEM, by WeCom's key version) that open each message's key. Both encrypted."""

    __tablename__ = "archive_sdk_config"

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), primary_key=True,
                                         autoincrement=False)
    secret: Mapped[str] = mapped_column(EncryptedText(context="archive_sdk.secret"))
    private_keys: Mapped[str] = mapped_column(EncryptedText(context="archive_sdk.private_keys"))  # JSON {ver: PEM}
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(160), default="")


class ArchiveMessage(IdMixin, TimestampMixin, Base):
    """One archived chat message (会话存档消息), stored once per corp and msgid; its text encrypted."""

    __tablename__ = "archive_message"
    __table_args__ = (
        UniqueConstraint("corp_id", "msgid"),
        Index("ix_archive_message_corp_sent", "corp_id", "sent_at"),
        Index("ix_archive_message_corp_room_sent", "corp_id", "roomid", "sent_at"),  # group health
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    msgid: Mapped[str] = mapped_column(String(128))
    seq: Mapped[int | None] = mapped_column(BigId)  # the feed's seq (None: imported from a file)
    source: Mapped[str] = mapped_column(String(8))  # feed | file
    sender: Mapped[str] = mapped_column(String(64))  # `from`: a staff userid or an external userid
    sender_is_staff: Mapped[bool] = mapped_column(Boolean)
    staff_userid: Mapped[str] = mapped_column(String(64), default="")  # the advisor in the conversation
    customer_userid: Mapped[str] = mapped_column(String(64), default="")  # the (first) customer in it
    tolist: Mapped[list] = mapped_column(JSON, default=list)
    roomid: Mapped[str] = mapped_column(String(64), default="")
    msgtype: Mapped[str] = mapped_column(String(32))
    sent_at: Mapped[dt.datetime] = mapped_column()
    text: Mapped[str] = mapped_column(EncryptedString(context="archive_message.text", length=16400), default="")
    amount: Mapped[int | None] = mapped_column(BigId)  # fen, red packets and transfers


class ArchiveAlert(IdMixin, TimestampMixin, Base):
    """An alert raised by an archived message with findings (会话存档告警): open → resolved | false_positive."""

    __tablename__ = "archive_alert"
    __table_args__ = (
        UniqueConstraint("message_id"),
        Index("ix_archive_alert_corp_status", "corp_id", "status", "sent_at"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("archive_message.id", ondelete="CASCADE"))
    severity: Mapped[str] = mapped_column(String(16))  # block | review
    categories: Mapped[list] = mapped_column(JSON, default=list)
    # Finding spans: category, rule, start, end, severity, source, phrase, entry_id (never the matched text).
    findings: Mapped[list] = mapped_column(JSON, default=list)
    excerpt: Mapped[str] = mapped_column(EncryptedString(context="archive_alert.excerpt", length=1200), default="")
    staff_userid: Mapped[str] = mapped_column(String(64), default="")
    customer_userid: Mapped[str] = mapped_column(String(64), default="")
    sent_at: Mapped[dt.datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | resolved | false_positive
    assignee_staff_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("staff.id", ondelete="SET NULL"))
    resolution_note: Mapped[str] = mapped_column(Text, default="")
    closed_by: Mapped[str] = mapped_column(String(120), default="")
    closed_at: Mapped[dt.datetime | None] = mapped_column()


class LabelledMessage(IdMixin, TimestampMixin, Base):
    """A message of a corp's labelled set (标注语料): a violation or an acceptable message, used to test
    the wording review and dictionary drafts before they are published. Its text is encrypted."""

    __tablename__ = "wording_labelled_message"
    __table_args__ = (UniqueConstraint("corp_id", "ref"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    ref: Mapped[str] = mapped_column(String(80))  # the imported file's id, or alert:<id>
    text: Mapped[str] = mapped_column(EncryptedString(context="wording_labelled_message.text", length=16400),
                                      default="")
    label: Mapped[str] = mapped_column(String(16))  # violation | ok
    expected: Mapped[str | None] = mapped_column(String(16))  # block | review | pass
    category: Mapped[str] = mapped_column(String(40), default="")
    speaker: Mapped[str | None] = mapped_column(String(16))  # advisor | firm | customer
    source: Mapped[str] = mapped_column(String(16))  # import | alert
    alert_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("archive_alert.id", ondelete="SET NULL"))
    added_by: Mapped[str] = mapped_column(String(120), default="")


class ArchiveFalsePositive(IdMixin, TimestampMixin, Base):
    """A dictionary finding of an alert marked false positive: what counts against the entry."""

    __tablename__ = "archive_false_positive"
    __table_args__ = (Index("ix_archive_false_positive_corp_phrase", "corp_id", "phrase"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    alert_id: Mapped[int] = mapped_column(BigId, ForeignKey("archive_alert.id", ondelete="CASCADE"), index=True)
    entry_id: Mapped[int | None] = mapped_column(BigId)  # None: a seed entry not in the database
    category: Mapped[str] = mapped_column(String(32))
    phrase: Mapped[str] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(120))


# Chat-archive consent lives in the consent ledger (`siyu.privacy.models.ConsentRecord`, purpose chat_archiving).


# Conversations are read by customer (service quality recomputes the waits of one chat from its messages).
Index("ix_archive_message_customer", ArchiveMessage.corp_id, ArchiveMessage.customer_userid, ArchiveMessage.sent_at)
