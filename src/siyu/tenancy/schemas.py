"""Pydantic shapes of the tenancy REST API (ORM models never leave the service layer as they are)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class CorpOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    slug: str
    name: str


class MeOut(BaseModel):
    """Who the API key is: its corp and what it may do."""

    corp: CorpOut
    api_key_id: int
    api_key_prefix: str = Field(description="the public part of the key, as the console lists it")
    scopes: list[str]


class DepartmentOut(BaseModel):
    id: int
    parent_id: int | None
    name: str
    wecom_department_id: int | None
    path: str = Field(description="names from the root down, separated by ' / '")
    depth: int


class StaffOut(BaseModel):
    id: int
    login: str
    name: str
    department_id: int | None
    wecom_userid: str | None
    roles: list[str]
    is_active: bool
    sees_department: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None


class StaffPage(BaseModel):
    items: list[StaffOut]
    next_after_id: int | None = Field(description="pass as `after_id` for the next page; null on the last page")


class DepartmentList(BaseModel):
    items: list[DepartmentOut]
