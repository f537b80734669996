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
    health_score: int | None = Field(None, description="the latest daily health score, 0–100 (none yet: null)")
    dying: bool = Field(False, description="the latest daily health says the group is dying")


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


class GroupHealthOut(BaseModel):
    """A group's health over the 7 days up to now (see docs/architecture.md, Group health)."""

    group_id: int
    day: dt.date
    score: int = Field(description="0–100")
    dying: bool
    reasons: list[Literal["quiet", "shrinking", "low_score"]]
    parts: dict[str, float] = Field(description="activity, content, replies, retention, standing: each 0–1")
    customers: int
    joins: int
    leaves: int
    joins_by_state: dict[str, int] = Field(description="joins by the join way's state ('' without one)")
    messages: int
    speakers: int
    owner_median_wait_min: float | None
    owner_waiting: int
    days_since_content: int | None
    verified_share: float
    invested_share: float


class RedLineAlertOut(BaseModel):
    id: int
    group_id: int | None
    group_name: str
    owner_name: str
    member_name: str = Field(description="masked")
    customer_id: int | None
    sent_at: dt.datetime
    msgtype: str
    severity: Literal["block", "review"]
    categories: list[str]
    suggested_action: Literal["warn", "remove"]
    offender_groups: int = Field(description="in how many groups this member crossed a red line")
    status: Literal["open", "warned", "removed", "dismissed"]
    handled_at: dt.datetime | None


class RedLineAlertList(BaseModel):
    items: list[RedLineAlertOut]
