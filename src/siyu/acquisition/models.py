"""Tables of the acquisition domain (获客): personas (人设), channel codes (渠道活码) with their
advisors, the adds attributed to them, welcome flows (欢迎语) with A/B variants, and the
follow-ups an advisor owes when WeCom gave no welcome code."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, IdMixin, TimestampMixin, utcnow
from siyu.pii import EncryptedString


class Persona(IdMixin, TimestampMixin, Base):
    """An advisor persona (人设) that channel codes and welcome flows speak as."""

    __tablename__ = "persona"
    __table_args__ = (UniqueConstraint("corp_id", "display_name"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # see service.PERSONA_KINDS
    display_name: Mapped[str] = mapped_column(String(60))
    title: Mapped[str] = mapped_column(String(60), default="")
    years_experience: Mapped[int] = mapped_column(Integer, default=0)
    avatar_url: Mapped[str] = mapped_column(String(500), default="")
    introduction: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ChannelCode(IdMixin, TimestampMixin, Base):
    """A WeCom contact way (联系我 QR) whose `state` attributes every add to a channel, a
    campaign, the advisor who was added and the money spent on it.

    `status`: pending (created here, waiting for WeCom), active, failed (WeCom refused, see
    `wecom_detail`), expired, deleted."""

    __tablename__ = "channel_code"
    __table_args__ = (UniqueConstraint("corp_id", "state"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    channel: Mapped[str] = mapped_column(String(32))  # see service.CHANNELS
    campaign: Mapped[str] = mapped_column(String(60), default="")
    persona_id: Mapped[int | None] = mapped_column(ForeignKey("persona.id", ondelete="SET NULL"))
    multi_advisor: Mapped[bool] = mapped_column(Boolean, default=False)
    cost_fen: Mapped[int] = mapped_column(BigId, default=0)
    expires_at: Mapped[dt.datetime | None]
    state: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    config_id: Mapped[str | None] = mapped_column(String(64))
    qr_url: Mapped[str | None] = mapped_column(String(500))
    wecom_detail: Mapped[str] = mapped_column(String(500), default="")
    # The user list WeCom has, and the version of it: each change is one effect at WeCom.
    wecom_users: Mapped[list] = mapped_column(JSON, default=list)
    users_version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ChannelCodeAdvisor(Base):
    """An advisor on a channel code, with the most adds a day they take from it (0: no cap)."""

    __tablename__ = "channel_code_advisor"

    code_id: Mapped[int] = mapped_column(ForeignKey("channel_code.id", ondelete="CASCADE"), primary_key=True)
    userid: Mapped[str] = mapped_column(String(64), primary_key=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    daily_cap: Mapped[int] = mapped_column(Integer, default=0)
    position: Mapped[int] = mapped_column(Integer, default=0)


class ChannelAdd(IdMixin, Base):
    """One add attributed to a channel code (渠道归因), once per inbox event."""

    __tablename__ = "channel_add"
    __table_args__ = (
        UniqueConstraint("corp_id", "inbox_event_id"),
        Index("ix_channel_add_code_day", "code_id", "day", "advisor_userid"),
        Index("ix_channel_add_contact", "corp_id", "external_userid", "advisor_userid"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    code_id: Mapped[int] = mapped_column(ForeignKey("channel_code.id", ondelete="CASCADE"))
    advisor_userid: Mapped[str] = mapped_column(String(64))
    external_userid: Mapped[str] = mapped_column(String(64))
    inbox_event_id: Mapped[int] = mapped_column(BigId)
    at: Mapped[dt.datetime]
    day: Mapped[str] = mapped_column(String(10))  # the calendar day in Asia/Shanghai, for daily caps
    lost_at: Mapped[dt.datetime | None]


class WelcomeFlow(IdMixin, TimestampMixin, Base):
    """The welcome (欢迎语) of one channel code; its texts are the variants."""

    __tablename__ = "welcome_flow"
    __table_args__ = (UniqueConstraint("corp_id", "code_id"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    code_id: Mapped[int] = mapped_column(ForeignKey("channel_code.id", ondelete="CASCADE"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    group_keyword: Mapped[str] = mapped_column(String(20), default="")  # e.g. "1"
    group_invitation: Mapped[str] = mapped_column(String(200), default="")  # e.g. "回复 1 加入理财学习群"
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WelcomeVariant(IdMixin, TimestampMixin, Base):
    """One A/B variant of a welcome flow: text with variables, attachments, a weight."""

    __tablename__ = "welcome_variant"

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("welcome_flow.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(20))
    weight: Mapped[int] = mapped_column(Integer, default=1)
    text: Mapped[str] = mapped_column(Text, default="")
    attachments: Mapped[list] = mapped_column(JSON, default=list)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class WelcomeSend(IdMixin, Base):
    """A welcome that was sent (or held) for one add: the results of a variant."""

    __tablename__ = "welcome_send"
    __table_args__ = (UniqueConstraint("corp_id", "inbox_event_id"),
                      Index("ix_welcome_send_variant", "variant_id", "state"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    inbox_event_id: Mapped[int] = mapped_column(BigId)
    code_id: Mapped[int | None] = mapped_column(ForeignKey("channel_code.id", ondelete="SET NULL"))
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("welcome_variant.id", ondelete="SET NULL"))
    external_userid: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # the wecom_outbound state: sent, failed, unknown, blocked
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WelcomeFollowUp(IdMixin, TimestampMixin, Base):
    """An add that came without a welcome code: the advisor greets the customer by hand."""

    __tablename__ = "welcome_follow_up"
    __table_args__ = (UniqueConstraint("corp_id", "inbox_event_id"),
                      Index("ix_welcome_follow_up_open", "corp_id", "advisor_userid", "done_at"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    inbox_event_id: Mapped[int] = mapped_column(BigId)
    advisor_userid: Mapped[str] = mapped_column(String(64))
    external_userid: Mapped[str] = mapped_column(String(64))
    code_id: Mapped[int | None] = mapped_column(ForeignKey("channel_code.id", ondelete="SET NULL"))
    done_at: Mapped[dt.datetime | None]


class KeywordRule(IdMixin, TimestampMixin, Base):
    """A keyword reply (关键词回复): a customer's 1-on-1 message that matches the keyword (exact or
    contains, after normalisation) gets the reply — text, a group QR image, a link — from the advisor,
    or becomes a one-click task for the advisor; at most once per customer within the cooldown."""

    __tablename__ = "keyword_rule"
    __table_args__ = (UniqueConstraint("corp_id", "name"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    keyword: Mapped[str] = mapped_column(String(60))
    keyword_key: Mapped[str] = mapped_column(String(120))  # normalised, as matched
    match_mode: Mapped[str] = mapped_column(String(16), default="contains")  # exact | contains
    advisors: Mapped[list] = mapped_column(JSON, default=list)  # WeCom userids; empty: every advisor
    action: Mapped[str] = mapped_column(String(16), default="reply")  # reply | task
    reply_text: Mapped[str] = mapped_column(Text, default="")
    attachments: Mapped[list] = mapped_column(JSON, default=list)  # image (group QR) / link, as WeCom takes them
    cooldown_minutes: Mapped[int] = mapped_column(Integer, default=1440)
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher wins when several match
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class KeywordHit(IdMixin, Base):
    """What one customer message that matched a rule led to (once per message): `outcome` is
    sending, sent, failed, unknown, blocked (compliance), task, cooldown or opted_out."""

    __tablename__ = "keyword_hit"
    __table_args__ = (UniqueConstraint("corp_id", "msgid"), Index("ix_keyword_hit_rule", "rule_id", "outcome"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("keyword_rule.id", ondelete="SET NULL"))
    msgid: Mapped[str] = mapped_column(String(128))
    advisor_userid: Mapped[str] = mapped_column(String(64))
    external_userid: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class KeywordCooldown(Base):
    """When a rule last answered a customer: the next answer waits for the rule's cooldown."""

    __tablename__ = "keyword_cooldown"

    rule_id: Mapped[int] = mapped_column(ForeignKey("keyword_rule.id", ondelete="CASCADE"), primary_key=True)
    external_userid: Mapped[str] = mapped_column(String(64), primary_key=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    last_at: Mapped[dt.datetime]


class KeywordTask(IdMixin, TimestampMixin, Base):
    """A prepared reply on the advisor's task list, sent with one click (`state`: open, sending,
    sent, failed, unknown, blocked, dismissed)."""

    __tablename__ = "keyword_task"
    __table_args__ = (UniqueConstraint("corp_id", "msgid"),
                      Index("ix_keyword_task_open", "corp_id", "advisor_userid", "state"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("keyword_rule.id", ondelete="SET NULL"))
    msgid: Mapped[str] = mapped_column(String(128))
    advisor_userid: Mapped[str] = mapped_column(String(64))
    external_userid: Mapped[str] = mapped_column(String(64))
    reply_text: Mapped[str] = mapped_column(Text, default="")
    attachments: Mapped[list] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), default="open")
    detail: Mapped[str] = mapped_column(String(500), default="")
    done_at: Mapped[dt.datetime | None]


# --- verification gate (门槛社群): see siyu.acquisition.verification --------------------------------------


class GatedCommunity(IdMixin, TimestampMixin, Base):
    """A community whose group code (QR image and/or join link) is shown only to a customer who
    proved on the H5 page that they are the firm's customer. `verify_by`: sms, firm or both."""

    __tablename__ = "gated_community"
    __table_args__ = (UniqueConstraint("corp_id", "name"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    verify_by: Mapped[str] = mapped_column(String(8), default="sms")
    join_url: Mapped[str] = mapped_column(String(500), default="")
    qr_image_url: Mapped[str] = mapped_column(String(500), default="")
    qr_image: Mapped[bytes | None] = mapped_column(LargeBinary)
    qr_image_type: Mapped[str] = mapped_column(String(20), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class VerificationHook(IdMixin, TimestampMixin, Base):
    """The firm's REST hook that answers whether a phone belongs to one of its customers."""

    __tablename__ = "verification_hook"
    __table_args__ = (UniqueConstraint("corp_id"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(EncryptedString("verification_hook.secret"))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class GatedVisit(IdMixin, Base):
    """One opening of a gated community's link: the H5 page's state from phone to verified.

    `status`: opened, code_sent, verified, refused (the firm's hook said not a customer), failed
    (a code killed by wrong entries). The browser holds `key`, Siyu only its hash."""

    __tablename__ = "gated_visit"
    __table_args__ = (UniqueConstraint("key_hash"), Index("ix_gated_visit_community", "community_id", "status"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("gated_community.id", ondelete="CASCADE"))
    key_hash: Mapped[str] = mapped_column(String(64))
    external_userid: Mapped[str | None] = mapped_column(String(64))
    ip_hash: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default="opened")
    phone_hash: Mapped[str | None] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(EncryptedString("gated_visit.phone"))
    firm_customer_id: Mapped[str | None] = mapped_column(String(64))
    phone_tries: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The privacy notice the visitor agreed to before giving their phone (siyu.privacy.notices).
    notice_version: Mapped[int | None] = mapped_column(Integer)
    consented_at: Mapped[dt.datetime | None] = mapped_column()


class VerificationCode(IdMixin, Base):
    """A one-time code sent by SMS: stored as a keyed hash, dead after expiry, use or too many wrong entries."""

    __tablename__ = "verification_code"
    __table_args__ = (Index("ix_verification_code_phone", "corp_id", "phone_hash", "sent_at"),
                      Index("ix_verification_code_ip", "corp_id", "ip_hash", "sent_at"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    visit_id: Mapped[int] = mapped_column(ForeignKey("gated_visit.id", ondelete="CASCADE"), index=True)
    phone_hash: Mapped[str] = mapped_column(String(64))
    ip_hash: Mapped[str] = mapped_column(String(64), default="")
    code_hash: Mapped[str] = mapped_column(String(64))
    sent_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    wrong_entries: Mapped[int] = mapped_column(Integer, default=0)
    last_wrong_at: Mapped[dt.datetime | None]
    used_at: Mapped[dt.datetime | None]
    dead: Mapped[bool] = mapped_column(Boolean, default=False)


class CustomerVerification(IdMixin, Base):
    """A customer who passed the gate: who (phone as keyed hash and encrypted), how, when, where."""

    __tablename__ = "customer_verification"
    __table_args__ = (UniqueConstraint("visit_id"), Index("ix_customer_verification_community", "community_id", "at"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("gated_community.id", ondelete="CASCADE"))
    visit_id: Mapped[int] = mapped_column(ForeignKey("gated_visit.id", ondelete="CASCADE"))
    phone_hash: Mapped[str] = mapped_column(String(64), index=True)
    phone: Mapped[str] = mapped_column(EncryptedString("customer_verification.phone"))
    method: Mapped[str] = mapped_column(String(8))  # sms, firm, both
    external_userid: Mapped[str | None] = mapped_column(String(64))
    firm_customer_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SmsOutbox(IdMixin, Base):
    """Every SMS handed to the provider. The text (it holds the code) is kept only when the
    installation allows showing codes (SIYU_SMS_SHOW_CODES, for the demo); else it is empty."""

    __tablename__ = "sms_outbox"
    __table_args__ = (Index("ix_sms_outbox_corp_at", "corp_id", "at"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(EncryptedString("sms_outbox.phone"))
    provider: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(EncryptedString("sms_outbox.text", length=1000), default="")
    state: Mapped[str] = mapped_column(String(10), default="sent")  # sent, failed, blocked (compliance)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- leads and outbound calls (线索与外呼) -------------------------------------------------------------


class LeadList(IdMixin, TimestampMixin, Base):
    """One imported file of the firm's existing customers (a lead list), staged before it is
    committed. `status`: uploaded, parsing, parsed (preview), committing, committed, failed
    (the file could not be read, see `detail`), discarded."""

    __tablename__ = "lead_list"

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    file_name: Mapped[str] = mapped_column(String(200), default="")
    file_format: Mapped[str] = mapped_column(String(8), default="csv")
    file_path: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), default="uploaded")
    detail: Mapped[str] = mapped_column(String(500), default="")
    estimated_rows: Mapped[int] = mapped_column(Integer, default=0)
    rows_parsed: Mapped[int] = mapped_column(Integer, default=0)
    good_rows: Mapped[int] = mapped_column(Integer, default=0)
    bad_rows: Mapped[int] = mapped_column(Integer, default=0)
    imported_rows: Mapped[int] = mapped_column(Integer, default=0)
    skip_bad: Mapped[bool] = mapped_column(Boolean, default=False)
    script: Mapped[str] = mapped_column(Text, default="")
    created_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    committed_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LeadStagingRow(IdMixin, Base):
    """A parsed row of a lead list waiting for the operator's commit; `errors` lists each problem
    as {"column", "reason"} (empty: the row is good). Deleted once the list is committed."""

    __tablename__ = "lead_staging_row"
    __table_args__ = (Index("ix_lead_staging_row_list", "list_id", "row_number"),
                      Index("ix_lead_staging_row_hash", "list_id", "phone_hash"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lead_list.id", ondelete="CASCADE"))
    row_number: Mapped[int] = mapped_column(Integer)
    # The same encryption contexts as the lead's columns: a commit copies the ciphertexts as they are.
    name: Mapped[str | None] = mapped_column(EncryptedString(context="lead.name"))
    phone: Mapped[str | None] = mapped_column(EncryptedString(context="lead.phone"))
    phone_hash: Mapped[str | None] = mapped_column(String(64))
    segment: Mapped[str] = mapped_column(String(100), default="")
    advisor_staff_id: Mapped[int | None] = mapped_column(BigId)
    do_not_call: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(30), default="")
    is_bad: Mapped[bool] = mapped_column(Boolean, default=False)
    errors: Mapped[list | None] = mapped_column(JSON)


class Lead(IdMixin, TimestampMixin, Base):
    """A customer of the firm to call and invite to add their advisor. Name and phone are
    encrypted at rest (the phone found by its keyed hash) and shown masked.

    `status`: new, retry (no answer yet, called again at `next_call_at`), reached (spoke, no
    decision: called again), agreed, refused, unreachable (no answer after the last attempt),
    wrong_number, do_not_call, converted (added the advisor through the lead's code)."""

    __tablename__ = "lead"
    __table_args__ = (UniqueConstraint("corp_id", "phone_hash"), UniqueConstraint("corp_id", "state"),
                      Index("ix_lead_queue", "corp_id", "advisor_staff_id", "status", "next_call_at"),
                      Index("ix_lead_list", "list_id", "advisor_staff_id"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lead_list.id", ondelete="CASCADE"))
    row_number: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(EncryptedString(context="lead.name"))
    phone: Mapped[str] = mapped_column(EncryptedString(context="lead.phone"))
    phone_hash: Mapped[str] = mapped_column(String(64))
    segment: Mapped[str] = mapped_column(String(100), default="")
    advisor_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    do_not_call: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="new")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_call_at: Mapped[dt.datetime | None]
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    reached_at: Mapped[dt.datetime | None]
    agreed_at: Mapped[dt.datetime | None]
    # The add code: `state` ties the WeCom add back to this lead.
    state: Mapped[str] = mapped_column(String(30))
    code_status: Mapped[str] = mapped_column(String(16), default="none")  # none, pending, active, failed
    config_id: Mapped[str | None] = mapped_column(String(64))
    qr_url: Mapped[str | None] = mapped_column(String(500))
    external_userid: Mapped[str | None] = mapped_column(String(64))
    converted_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LeadCall(IdMixin, Base):
    """One outbound call to a lead and its outcome."""

    __tablename__ = "lead_call"
    __table_args__ = (Index("ix_lead_call_lead", "lead_id", "at"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id", ondelete="CASCADE"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    outcome: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(String(500), default="")
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
