"""Tables of the compliance domain: the wording dictionary (措辞词库) with its version history."""

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

from siyu.pii import EncryptedString  # noqa: E402

ARCHIVE_TEXT_MAX = 4000  # characters of a message's text kept (and scanned)


class ArchiveCursor(Base):
    """How far a corp's archive feed was read (the last `seq` stored), and the last poll's outcome."""

    __tablename__ = "archive_cursor"

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), primary_key=True,
                                         autoincrement=False)
    seq: Mapped[int] = mapped_column(BigId, default=0)
    polled_at: Mapped[dt.datetime | None] = mapped_column()
    last_error: Mapped[str] = mapped_column(String(300), default="")


class ArchiveMessage(IdMixin, TimestampMixin, Base):
    """One archived chat message (会话存档消息), stored once per corp and msgid; its text encrypted."""

    __tablename__ = "archive_message"
    __table_args__ = (
        UniqueConstraint("corp_id", "msgid"),
        Index("ix_archive_message_corp_sent", "corp_id", "sent_at"),
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


# Chat-archive consent lives in the consent ledger (`ConsentRecord`, purpose chat_archiving) below.


# --- personal information (个人信息保护): consent ledger, data-subject requests, retention ----------------------

from siyu.pii import EncryptedText  # noqa: E402


class ConsentRecord(IdMixin, Base):
    """One entry of the consent ledger (同意记录): a customer granted or withdrew consent to one purpose.

    Append-only: a change of mind is a new row; the state in force for (customer, purpose) is the
    latest row by id. See `compliance.privacy`."""

    __tablename__ = "consent_record"
    __table_args__ = (Index("ix_consent_record_lookup", "corp_id", "external_userid", "purpose", "id"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    external_userid: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(24))  # marketing | chat_archiving | data_sharing | profiling
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(16))  # h5 | advisor | import | api | chat | wecom
    note: Mapped[str] = mapped_column(EncryptedString(context="consent_record.note", length=1400), default="")
    staff_userid: Mapped[str] = mapped_column(String(64), default="")  # the advisor concerned, if any
    actor: Mapped[str] = mapped_column(String(120))
    actor_staff_id: Mapped[int | None] = mapped_column(BigId)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DataSubjectRequest(IdMixin, TimestampMixin, Base):
    """A customer's request to get a copy of their data or to have it deleted (个人信息主体请求).

    requested → in_progress → done | refused. An export's bundle is kept encrypted until it is
    downloaded once or expires; then it is cleared."""

    __tablename__ = "data_subject_request"
    __table_args__ = (Index("ix_data_subject_request_corp", "corp_id", "id"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    external_userid: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))  # export | delete
    status: Mapped[str] = mapped_column(String(16), default="requested")
    verification_note: Mapped[str] = mapped_column(EncryptedString(context="dsr.verification", length=1400))
    refusal_reason: Mapped[str] = mapped_column(Text, default="")
    requested_by: Mapped[str] = mapped_column(String(120))
    requested_by_staff_id: Mapped[int | None] = mapped_column(BigId)
    handled_by: Mapped[str] = mapped_column(String(120), default="")
    started_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    # Per domain: records exported / erased, and the records kept under a legal hold with the reason.
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    bundle: Mapped[str | None] = mapped_column(EncryptedText(context="dsr.bundle"))
    bundle_expires_at: Mapped[dt.datetime | None] = mapped_column()
    downloaded_at: Mapped[dt.datetime | None] = mapped_column()
    downloaded_by: Mapped[str] = mapped_column(String(120), default="")


class RetentionPolicy(IdMixin, Base):
    """How long one class of records is kept in a corp (保存期限), and on what legal basis.
    `keep_days` None: kept for ever (the audit log). Set by the firm's compliance officer."""

    __tablename__ = "retention_policy"
    __table_args__ = (UniqueConstraint("corp_id", "record_class"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    record_class: Mapped[str] = mapped_column(String(40))
    keep_days: Mapped[int | None] = mapped_column(Integer)
    legal_basis: Mapped[str] = mapped_column(String(500), default="")
    updated_by: Mapped[str] = mapped_column(String(120), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PurgeRun(IdMixin, Base):
    """One run of the retention purge for a corp: rows deleted per record class."""

    __tablename__ = "purge_run"
    __table_args__ = (Index("ix_purge_run_corp", "corp_id", "id"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
    chunks: Mapped[int] = mapped_column(Integer, default=0)


# --- service quality (服务质量): working hours, first-reply waits, daily reports ---------------------------

from sqlalchemy import Date, SmallInteger  # noqa: E402


class QualitySettings(TimestampMixin, Base):
    """A corp's working hours for service quality (Asia/Shanghai), its reply timeout and whether
    messages on non-working days count. Defaults: Mon–Fri 09:00–18:00, public holidays, 30 minutes."""

    __tablename__ = "quality_settings"

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), primary_key=True,
                                         autoincrement=False)
    weekdays: Mapped[list] = mapped_column(JSON, default=lambda: [0, 1, 2, 3, 4])  # Monday = 0
    day_start: Mapped[int] = mapped_column(SmallInteger, default=540)  # minutes after midnight
    day_end: Mapped[int] = mapped_column(SmallInteger, default=1080)
    public_holidays: Mapped[bool] = mapped_column(Boolean, default=True)  # China's holidays and make-up days
    timeout_minutes: Mapped[int] = mapped_column(Integer, default=30)  # working minutes
    count_off_days: Mapped[bool] = mapped_column(Boolean, default=True)  # messages on non-working days count
    updated_by: Mapped[str] = mapped_column(String(120), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReplyWait(IdMixin, TimestampMixin, Base):
    """A customer waiting for an advisor's reply in a 1-on-1 chat: opened by the first unanswered
    customer message, closed by the advisor's next message; its length counts working time only.
    `timeout_at` is when the reply-timeout alert was raised (open while the wait is)."""

    __tablename__ = "reply_wait"
    __table_args__ = (
        UniqueConstraint("corp_id", "opened_msgid"),
        Index("ix_reply_wait_conversation", "corp_id", "staff_userid", "customer_userid", "opened_at"),
        Index("ix_reply_wait_corp_opened", "corp_id", "opened_at"),
        Index("ix_reply_wait_open", "closed_at", "timeout_at", "opened_at"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    staff_userid: Mapped[str] = mapped_column(String(64))
    customer_userid: Mapped[str] = mapped_column(String(64))
    opened_msgid: Mapped[str] = mapped_column(String(128))
    opened_at: Mapped[dt.datetime] = mapped_column()
    customer_messages: Mapped[int] = mapped_column(Integer, default=1)  # before the reply
    counted: Mapped[bool] = mapped_column(Boolean, default=True)  # False: opened on a day that does not count
    closed_at: Mapped[dt.datetime | None] = mapped_column()
    reply_msgid: Mapped[str] = mapped_column(String(128), default="")
    working_seconds: Mapped[int | None] = mapped_column(Integer)  # set when closed
    timeout_at: Mapped[dt.datetime | None] = mapped_column()


# Conversations are read by customer (the waits of one chat are recomputed from its messages).
Index("ix_archive_message_customer", ArchiveMessage.corp_id, ArchiveMessage.customer_userid, ArchiveMessage.sent_at)


class QualityReport(IdMixin, TimestampMixin, Base):
    """The daily service-quality report of a corp (a China calendar day), stored at 08:00 the next day."""

    __tablename__ = "quality_report"
    __table_args__ = (UniqueConstraint("corp_id", "day"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    day: Mapped[dt.date] = mapped_column(Date)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Handover(IdMixin, TimestampMixin, Base):
    """A handover of an advisor's customers and groups (客户继承): resigned (离职继承) or in-service
    (在职继承), to one take-over advisor or spread over several. Its items carry the states."""

    __tablename__ = "handover"
    __table_args__ = (Index("ix_handover_corp_created", "corp_id", "created_at"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # resigned | in_service
    handover_userid: Mapped[str] = mapped_column(String(64))
    takeover_userids: Mapped[list] = mapped_column(JSON, default=list)
    message: Mapped[str | None] = mapped_column(String(200))  # transfer_success_msg, in-service only, reviewed
    all_groups: Mapped[bool] = mapped_column(Boolean, default=False)  # resolve the owner's groups at WeCom
    groups_resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done | attention
    created_by: Mapped[str] = mapped_column(String(120))
    next_poll_at: Mapped[dt.datetime | None] = mapped_column()  # a result query is queued for then
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()


class HandoverItem(IdMixin, TimestampMixin, Base):
    """One customer or group of a handover: pending → waiting (24 h) → done | refused | failed | limit
    (groups: pending → done | failed). A failure is retried (to the next take-over advisor) up to
    `handover.MAX_ATTEMPTS` times, then escalated."""

    __tablename__ = "handover_item"
    __table_args__ = (
        UniqueConstraint("handover_id", "kind", "target_id"),
        Index("ix_handover_item_corp_target", "corp_id", "kind", "target_id", "requested_at"),
        Index("ix_handover_item_handover_state", "handover_id", "state"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    handover_id: Mapped[int] = mapped_column(BigId, ForeignKey("handover.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # customer | group
    target_id: Mapped[str] = mapped_column(String(64))  # external_userid or chat_id
    takeover_userid: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str] = mapped_column(String(200), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # calls made for it
    accepted: Mapped[int] = mapped_column(Integer, default=0)  # transfers WeCom started (count to 2 per 90 days)
    batch_key: Mapped[str | None] = mapped_column(String(120))  # the send-once key of its current call
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_at: Mapped[dt.datetime | None] = mapped_column()
    takeover_at: Mapped[dt.datetime | None] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
