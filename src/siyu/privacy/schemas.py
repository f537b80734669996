"""Shapes of the consent ledger's REST API (`privacy.api`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

USERID_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"

Purpose = Literal["marketing", "chat_archiving", "data_sharing", "profiling"]


class ConsentIn(BaseModel):
    """A customer granted or withdrew consent to one purpose."""

    model_config = ConfigDict(extra="forbid")

    external_userid: str = Field(pattern=USERID_PATTERN, description="the customer's WeCom external_userid")
    purpose: Purpose
    granted: bool
    source: Literal["h5", "advisor", "import", "api"] = "api"
    note: str = Field(default="", max_length=1000, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$",
                      description="required when an advisor records on the customer's behalf")


class ConsentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    external_userid: str
    purpose: Purpose
    granted: bool
    source: str
    actor: str
    at: datetime


class ConsentState(BaseModel):
    """Each purpose's record in force (null: never asked). A withdrawn `marketing` stops marketing."""

    external_userid: str
    purposes: dict[str, ConsentOut | None]
    history: list[ConsentOut]
