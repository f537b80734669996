"""Request and answer bodies of the audiences REST API. A rule is taken as JSON and checked by
`siyu.audiences.rules` (errors name the field path, e.g. `rule.all[1].tag_ids`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from siyu.tenancy.service import MAX_ID

RULE_DESCRIPTION = ('a rule: {"all"|"any"|"none": [node, ...]}, {"not": node} or a condition {"kind": ..., ...} '
                    "(see the audiences section of docs/architecture.md)")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleIn(_In):
    rule: Any = Field(description=RULE_DESCRIPTION)


class SegmentIn(_In):
    name: str = Field(max_length=60)
    description: str = Field("", max_length=500)
    rule: Any = Field(description=RULE_DESCRIPTION)
    owner_staff_id: int | None = Field(None, ge=1, le=MAX_ID, description="default: the caller, if a member of staff")


class SegmentPatch(_In):
    name: str | None = Field(None, max_length=60)
    description: str | None = Field(None, max_length=500)
    rule: Any = Field(None, description=RULE_DESCRIPTION)
    owner_staff_id: int | None = Field(None, ge=1, le=MAX_ID)


class SegmentOut(BaseModel):
    id: int
    name: str
    description: str
    rule: dict
    owner_staff_id: int | None
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    last_count: int | None
    last_counted_at: dt.datetime | None


class CountOut(BaseModel):
    count: int
    counted_at: dt.datetime


class MemberOut(BaseModel):
    """A sampled member: the name masked, never an external id."""

    id: int
    name: str
    gender: int
    stage: str
    first_added_at: dt.datetime


class SampleOut(BaseModel):
    count: int
    members: list[MemberOut]


class HistoryPointOut(BaseModel):
    day: dt.date
    count: int


class HistoryOut(BaseModel):
    segment_id: int
    points: list[HistoryPointOut]
