"""Customers (客户): WeCom external contacts of a corp, who follows them (跟进关系), corp tags,
advisors' notes and the timeline of what happened to each.

Personal data is encrypted at rest (`siyu.pii.EncryptedString`): the name, the advisors' remarks and
the notes. Exact search works on keyed lookup hashes, never on clear text.

Indexes are for the console's list and filters at a million customers per corp: every list is
ordered by (first_added_at, id) descending and paged by keyset, so each filter has an index that
starts with the corp and ends with that order."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, IdMixin, TimestampMixin, utcnow
from siyu.pii import EncryptedString


class LifecycleStage(enum.StrEnum):
    """生命周期: 新客 → 已激活 → 已投资 → 已复投; 沉睡; 流失 (no advisor follows them any more)."""

    NEW = "new"
    ACTIVATED = "activated"
    INVESTED = "invested"
    REINVESTED = "reinvested"
    DORMANT = "dormant"
    LOST = "lost"


class FollowStatus(enum.StrEnum):
    ACTIVE = "active"
    DELETED_BY_STAFF = "deleted_by_staff"  # the advisor deleted the customer (del_external_contact)
    LOST = "lost"  # the customer deleted the advisor (del_follow_user)
    TRANSFERRED = "transferred"  # handed over to another advisor (del_external_contact, Source=DELETE_BY_TRANSFER)


class Customer(IdMixin, TimestampMixin, Base):
    """One external contact of the corp (外部联系人), known by WeCom's external_userid."""

    __tablename__ = "customer"
    __table_args__ = (
        UniqueConstraint("corp_id", "external_userid"),
        # The firm's own customer id, once linked, names one customer of the corp (NULLs do not clash).
        Index("uq_customer_corp_firm_customer_id", "corp_id", "firm_customer_id", unique=True),
        Index("ix_customer_corp_added", "corp_id", "first_added_at", "id"),
        Index("ix_customer_corp_stage_added", "corp_id", "stage", "first_added_at", "id"),
        Index("ix_customer_corp_name_hash", "corp_id", "name_hash"),
        Index("ix_customer_search_version", "search_version"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    external_userid: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(EncryptedString(context="customer.name"))
    # siyu.pii.lookup_hash of the normalised name, for exact search without the clear text.
    name_hash: Mapped[str | None] = mapped_column(String(64))
    gender: Mapped[int] = mapped_column(SmallInteger, default=0)  # WeCom: 0 unknown, 1 male, 2 female
    unionid: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16), default=LifecycleStage.NEW.value)
    firm_customer_id: Mapped[str | None] = mapped_column(String(64))
    first_added_at: Mapped[dt.datetime] = mapped_column()
    lost_at: Mapped[dt.datetime | None] = mapped_column()
    # When the profile was last read from WeCom (None: not yet).
    profile_synced_at: Mapped[dt.datetime | None] = mapped_column()
    # The version of the search index (siyu.customers.search) its name and remarks are in; 0: not yet.
    search_version: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CustomerFollow(IdMixin, TimestampMixin, Base):
    """A follow relation (跟进关系): one member of staff has the customer as a WeCom contact."""

    __tablename__ = "customer_follow"
    __table_args__ = (
        UniqueConstraint("customer_id", "wecom_userid"),
        # "my customers", the advisor filter and advisors' visibility; with the stage, an advisor's
        # per-stage counts are index range counts.
        Index("ix_customer_follow_staff", "corp_id", "staff_id", "status", "stage", "shared", "customer_id"),
        # the channel filter (state prefix)
        Index("ix_customer_follow_state", "corp_id", "state", "stage", "shared", "customer_id"),
        Index("ix_customer_follow_remark_hash", "corp_id", "remark_hash"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    # The tenancy Staff row with this WeCom user id; None while Siyu does not know that member of staff.
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    wecom_userid: Mapped[str] = mapped_column(String(64))
    remark: Mapped[str | None] = mapped_column(EncryptedString(context="customer_follow.remark"))
    remark_hash: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(EncryptedString(context="customer_follow.description",
                                                                    length=1024))
    add_time: Mapped[dt.datetime] = mapped_column()
    add_way: Mapped[int | None] = mapped_column(Integer)
    # The contact way's `state` as WeCom sent it: the channel code that brought the customer.
    state: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default=FollowStatus.ACTIVE.value)
    ended_at: Mapped[dt.datetime | None] = mapped_column()
    # The customer's lifecycle stage, copied here (and kept in step by `contacts.change_stage`) so that
    # counting an advisor's customers per stage reads one index range, not a million rows.
    stage: Mapped[str] = mapped_column(String(16), default=LifecycleStage.NEW.value)
    # The customer has more than one follow relation: counting customers through their follows must
    # count such a customer once (rows without it are counted straight from the index).
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CustomerTagGroup(IdMixin, TimestampMixin, Base):
    """A group of corp tags (企业标签组), e.g. 风险等级."""

    __tablename__ = "customer_tag_group"
    __table_args__ = (UniqueConstraint("corp_id", "wecom_group_id"), UniqueConstraint("corp_id", "name"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    wecom_group_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(60))
    sort_order: Mapped[int] = mapped_column(Integer, default=0)


class CustomerTag(IdMixin, TimestampMixin, Base):
    """A corp tag (企业标签) with WeCom's tag id."""

    __tablename__ = "customer_tag"
    __table_args__ = (UniqueConstraint("corp_id", "wecom_tag_id"), UniqueConstraint("group_id", "name"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(ForeignKey("customer_tag_group.id", ondelete="CASCADE"))
    wecom_tag_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(60))
    sort_order: Mapped[int] = mapped_column(Integer, default=0)


class CustomerTagLink(Base):
    """A customer carries a corp tag (marked by any of their advisors)."""

    __tablename__ = "customer_tag_link"
    __table_args__ = (Index("ix_customer_tag_link_tag", "tag_id", "stage", "customer_id"),)

    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("customer_tag.id", ondelete="CASCADE"), primary_key=True)
    corp_id: Mapped[int] = mapped_column(BigId)
    stage: Mapped[str] = mapped_column(String(16), default=LifecycleStage.NEW.value)  # the customer's, as on follows
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CustomerSearchGram(Base):
    """The blind index of names and remarks (siyu.customers.search): a keyed token per character and
    per pair of characters, so that part of a name finds its customers without storing or decrypting
    the name. Rebuilt for a customer whenever its name or a remark changes."""

    __tablename__ = "customer_search_gram"
    __table_args__ = (Index("ix_customer_search_gram_customer", "customer_id"), {"sqlite_with_rowid": False})

    corp_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    gram: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True)


class CustomerNote(IdMixin, TimestampMixin, Base):
    """An advisor's note on a customer (跟进记录). Encrypted: notes often hold personal details."""

    __tablename__ = "customer_note"
    __table_args__ = (Index("ix_customer_note_customer", "customer_id", "created_at"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    author_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(EncryptedString(context="customer_note.text", length=8192))


class CustomerEvent(IdMixin, Base):
    """The customer's timeline (客户动态): what happened, when, by whom. `detail` never holds
    personal data in clear. `source_key` makes an entry written from an event idempotent."""

    __tablename__ = "customer_event"
    __table_args__ = (
        UniqueConstraint("corp_id", "source_key"),
        Index("ix_customer_event_customer_at", "customer_id", "at"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    at: Mapped[dt.datetime] = mapped_column()
    actor: Mapped[str] = mapped_column(String(160))
    actor_staff_id: Mapped[int | None] = mapped_column(BigId)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    source_key: Mapped[str | None] = mapped_column(String(120))


class CustomerTagMark(IdMixin, TimestampMixin, Base):
    """A corp tag added to or removed from a customer in Siyu, on its way to WeCom (`mark_tag`).

    The link changes locally at once; while the mark is `pending`, a profile read from WeCom keeps
    it (WeCom does not know it yet). `failed`: WeCom refused, and the local change was rolled back."""

    __tablename__ = "customer_tag_mark"
    __table_args__ = (Index("ix_customer_tag_mark_customer", "customer_id", "state", "id"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    # None once the tag is gone from the library (deleted at WeCom); `tag_name` keeps what it was.
    tag_id: Mapped[int | None] = mapped_column(ForeignKey("customer_tag.id", ondelete="SET NULL"))
    tag_name: Mapped[str] = mapped_column(String(130))
    action: Mapped[str] = mapped_column(String(8))  # add | remove
    actor_staff_id: Mapped[int | None] = mapped_column(BigId)
    # The advisor whose follow relation WeCom marks: the actor when they follow the customer.
    wecom_userid: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(12), default="pending")  # pending | sent | failed
    errcode: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(String(500), default="")
    finished_at: Mapped[dt.datetime | None] = mapped_column()
class ProductRecommendation(IdMixin, TimestampMixin, Base):
    """A 1-on-1 product recommendation from the advisor's chat sidebar (一对一产品推荐): the sales-process
    evidence a regulator asks for — who recommended which product to whom, the product's risk level
    and the customer's level at that moment, the suitability explanation and the final text (with its
    risk disclosure) the advisor was given to send. Written once, never edited; retention class
    "order" (orders and sales records). The final text is encrypted: the advisor's words may name
    the customer."""

    __tablename__ = "product_recommendation"
    __table_args__ = (
        Index("ix_product_recommendation_corp_at", "corp_id", "created_at", "id"),
        Index("ix_product_recommendation_advisor", "corp_id", "advisor_staff_id", "created_at"),
        Index("ix_product_recommendation_product", "corp_id", "product_code", "created_at"),
        Index("ix_product_recommendation_customer", "customer_id", "created_at"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    external_userid: Mapped[str] = mapped_column(String(64))
    advisor_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    advisor_label: Mapped[str] = mapped_column(String(160))
    product_code: Mapped[str] = mapped_column(String(64))
    product_name: Mapped[str] = mapped_column(String(200))
    product_type: Mapped[str] = mapped_column(String(32))
    product_risk_level: Mapped[str] = mapped_column(String(2))
    customer_level: Mapped[str | None] = mapped_column(String(2))  # None: not assessed (R1 only)
    assessment_expires_at: Mapped[dt.datetime | None] = mapped_column()
    decision_code: Mapped[str] = mapped_column(String(32))
    explanation: Mapped[str] = mapped_column(String(500))
    explanation_en: Mapped[str] = mapped_column(String(500))
    final_text: Mapped[str] = mapped_column(EncryptedString(context="product_recommendation.final_text", length=8192))
    disclosed: Mapped[list] = mapped_column(JSON, default=list)  # product types whose disclosures were appended
    verdict: Mapped[str] = mapped_column(String(10))  # the wording review: "pass" or "review"
