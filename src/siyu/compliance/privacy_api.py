"""REST API of the consent ledger (see `compliance.privacy`): record a customer's grant or withdrawal
for one purpose (scope `consent:write`) and read a customer's consent state (scope `consent:read`).
Mounted under `/api/v1/compliance` by `compliance.api`; limited to the API key's own corp."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from siyu.compliance import privacy
from siyu.db import get_session
from siyu.tenancy.deps import require_scope
from siyu.tenancy.principal import Principal

router = APIRouter(tags=["compliance"])

read_consent = require_scope("consent:read")
write_consent = require_scope("consent:write")
USERID_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"
ERRORS = {
    401: {"description": "no valid API key"},
    403: {"description": "the key lacks the scope"},
    422: {"description": "a parameter is not valid (`field` or `errors[].field` names it)"},
}

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


@router.post("/consents", response_model=ConsentOut, status_code=201, responses=ERRORS)
def post_consent(body: ConsentIn, principal: Principal = Depends(write_consent),
                 session: Session = Depends(get_session)) -> ConsentOut:
    """Append a grant or withdrawal to the consent ledger (scope `consent:write`)."""
    row = privacy.record_consent(session, corp_id=principal.corp_id, actor=principal,
                                 external_userid=body.external_userid, purpose=body.purpose, granted=body.granted,
                                 source=body.source, note=body.note)
    return ConsentOut.model_validate(row)


@router.get("/consents/{external_userid}", response_model=ConsentState, responses=ERRORS)
def get_consent(external_userid: str = Path(pattern=USERID_PATTERN), principal: Principal = Depends(read_consent),
                session: Session = Depends(get_session)) -> ConsentState:
    """A customer's consent per purpose and the ledger's history, newest first (scope `consent:read`)."""
    state = privacy.consent_state(session, corp_id=principal.corp_id, external_userid=external_userid)
    history = privacy.consent_history(session, corp_id=principal.corp_id, external_userid=external_userid)
    return ConsentState(external_userid=external_userid,
                        purposes={p: ConsentOut.model_validate(r) if r else None for p, r in state.items()},
                        history=[ConsentOut.model_validate(r) for r in history])
