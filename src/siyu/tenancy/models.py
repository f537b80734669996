"""Corps (tenants), their org tree, staff and roles, API keys, console sessions, the audit log."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from siyu.db import Base, BigId, IdMixin, TimestampMixin


class Role(enum.StrEnum):
    """Console roles. 管理员 / 运营 / 理财顾问 / 合规 / 审计."""

    ADMINISTRATOR = "administrator"
    OPERATIONS = "operations"
    ADVISOR = "advisor"
    COMPLIANCE = "compliance"
    AUDITOR = "auditor"


class Corp(IdMixin, TimestampMixin, Base):
    """A tenant: one firm's WeCom corp (企业)."""

    __tablename__ = "corp"
    # A corp's id scopes rows that outlive it (its audit chain, its dictionary): never reuse one.
    __table_args__ = {"sqlite_autoincrement": True}

    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    wecom_corp_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class Department(IdMixin, TimestampMixin, Base):
    """A node of the corp's org tree (部门)."""

    __tablename__ = "department"
    __table_args__ = (UniqueConstraint("corp_id", "parent_id", "name"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    name: Mapped[str] = mapped_column(String(120))
    wecom_department_id: Mapped[int | None] = mapped_column(Integer)


class Staff(IdMixin, TimestampMixin, Base):
    """A member of staff who may log in to the console and/or serves customers in WeCom."""

    __tablename__ = "staff"
    # A login is unique within its corp only: staff log in naming their corp (see tenancy.service.
    # authenticate), so the same login in another corp reveals nothing and collides with nothing.
    __table_args__ = (UniqueConstraint("corp_id", "wecom_userid"), UniqueConstraint("corp_id", "login"))

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"), index=True)
    login: Mapped[str] = mapped_column(String(120))
    name: Mapped[str] = mapped_column(String(120))
    wecom_userid: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # An advisor sees only their own customers unless granted their department's.
    sees_department: Mapped[bool] = mapped_column(Boolean, default=False)
    last_login_at: Mapped[dt.datetime | None]

    roles: Mapped[list[StaffRole]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="StaffRole.role"
    )

    @property
    def role_names(self) -> set[str]:
        return {r.role for r in self.roles}


class StaffRole(Base):
    __tablename__ = "staff_role"

    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20), primary_key=True)


class ApiKey(IdMixin, TimestampMixin, Base):
    """A corp's key for the REST API. Only a hash of the secret is stored."""

    __tablename__ = "api_key"

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]


class ConsoleSession(IdMixin, TimestampMixin, Base):
    """A console login. Kept in the database so any `siyu serve` process can check it."""

    __tablename__ = "console_session"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]


class AuditEntry(IdMixin, Base):
    """Append-only audit log (审计日志). Entries form one hash chain per corp (chain 0 for the
    installation): each hash covers the previous one, and `seq` has no gaps, so a changed or
    deleted entry is found by `siyu audit verify`."""

    __tablename__ = "audit_entry"
    __table_args__ = (
        UniqueConstraint("chain_id", "seq"),
        Index("ix_audit_entry_chain_at", "chain_id", "at"),
    )

    chain_id: Mapped[int] = mapped_column(BigId)
    seq: Mapped[int] = mapped_column(BigId)
    at: Mapped[dt.datetime]
    actor_staff_id: Mapped[int | None] = mapped_column(BigId)
    actor: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(80), index=True)
    target_type: Mapped[str | None] = mapped_column(String(60))
    target_id: Mapped[str | None] = mapped_column(String(80))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class LoginThrottle(Base):
    """Failed console logins counted per key: the address, the login as typed, and the pair (see
    `tenancy.service.authenticate`). The key is a keyed hash: no address or login is stored, and an
    unknown login is counted exactly like a real one."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failed_at: Mapped[dt.datetime] = mapped_column(index=True)
    blocked_until: Mapped[dt.datetime | None]
