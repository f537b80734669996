"""REST shapes of communities (社群). Customers appear by customer id and masked name only."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

PositioningName = Literal["novice_class", "benefit", "product", "high_net_worth", "other"]


class GroupOut(BaseModel):
    id: int
    name: str
    owner_name: str
    owner_staff_id: int | None
    positioning: PositioningName
    group_set_id: int | None
    group_set_name: str
    tags: list[str]
    member_count: int
    customer_count: int
    wecom_created_at: dt.datetime | None
    dismissed_at: dt.datetime | None


class GroupList(BaseModel):
    items: list[GroupOut]
    total: int
    offset: int
    limit: int


class MemberOut(BaseModel):
    display_name: str = Field(description="a customer's masked name, or a member of staff's name")
    member_type: Literal["staff", "customer"]
    customer_id: int | None = Field(description="the customer record, when Siyu knows the customer")
    joined_at: dt.datetime
    join_scene: int = Field(description="1 invited directly, 2 invited by link, 3 scanned the group QR code")
    invitor_name: str
    state: str | None = Field(description="the join way's state the member came through")
    left_at: dt.datetime | None = None
    quit_scene: int | None = Field(None, description="0 left by themselves, 1 removed by the owner or an admin")


class JoinsAndLeavesOut(BaseModel):
    x: list[str] = Field(description="calendar days (Asia/Shanghai)")
    joins: list[int]
    leaves: list[int]


class GroupDetailOut(GroupOut):
    admin_names: list[str]
    notice: str
    synced_at: dt.datetime | None
    members: list[MemberOut]
    recently_left: list[MemberOut]
    joins_and_leaves: JoinsAndLeavesOut


class GroupPatch(BaseModel):
    positioning: PositioningName | None = None
    tags: list[str] | None = Field(None, max_length=10)
    group_set_id: int | None = Field(None, ge=1, description="null with `clear_group_set` to take the group out")
    clear_group_set: bool = False


class GroupSetOut(BaseModel):
    id: int
    name: str
    description: str
    positioning: PositioningName
    group_count: int
    member_count: int
    customer_count: int


class GroupSetList(BaseModel):
    items: list[GroupSetOut]


class GroupSetIn(BaseModel):
    name: str = Field(min_length=1, max_length=60)
    description: str = Field("", max_length=500)
    positioning: PositioningName = "other"


class GroupSetPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=60)
    description: str | None = Field(None, max_length=500)
    positioning: PositioningName | None = None
    add_group_ids: list[int] = Field(default_factory=list, max_length=500)


class SyncOut(BaseModel):
    run: str
