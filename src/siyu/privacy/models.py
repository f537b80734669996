"""Tables of personal-information protection (个人信息保护): the consent ledger, data-subject requests,
retention policies and purge runs."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, IdMixin, TimestampMixin, utcnow
from siyu.pii import EncryptedString, EncryptedText


class ConsentRecord(IdMixin, Base):
    """One entry of the consent ledger (同意记录): a customer granted or withdrew consent to one purpose.

    Append-only: a change of mind is a new row; the state in force for (customer, purpose) is the
    latest row by id. See `privacy.service`."""

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
    notice_version: Mapped[int | None] = mapped_column(Integer)  # the privacy notice agreed to (H5 pages)


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


class PrivacyNotice(IdMixin, Base):
    """One published version of a corp's privacy notice (个人信息处理规则), the text a customer reads
    and agrees to before an H5 page collects their phone. Versions are never edited: a change is a new
    version, and what a customer agreed to stays readable by its number."""

    __tablename__ = "privacy_notice"
    __table_args__ = (UniqueConstraint("corp_id", "version"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    published_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    published_by: Mapped[str] = mapped_column(String(120))

