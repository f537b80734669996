"""Tables of the compliance domain: the wording dictionary (措辞词库) with its version history."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
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
