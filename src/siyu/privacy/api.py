"""REST API of the consent ledger (see `siyu.privacy`): record a customer's grant or withdrawal
for one purpose (scope `consent:write`) and read a customer's consent state (scope `consent:read`).
Under `/api/v1/compliance`, where the API has always had it; limited to the API key's own corp."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path
from sqlalchemy.orm import Session

from siyu.db import get_session
from siyu.privacy import service as privacy
from siyu.privacy.schemas import USERID_PATTERN, ConsentIn, ConsentOut, ConsentState
from siyu.tenancy.deps import API_ERRORS, require_scope
from siyu.tenancy.principal import Principal

router = APIRouter(prefix="/api/v1/compliance", tags=["compliance"])

read_consent = require_scope("consent:read")
write_consent = require_scope("consent:write")
ERRORS = API_ERRORS

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
