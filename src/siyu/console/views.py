"""The console's home: a dashboard of real counts."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from siyu.console.dashboard import dashboard_counts
from siyu.console.templating import render
from siyu.db import get_session
from siyu.tenancy.deps import current_staff
from siyu.tenancy.principal import Principal

router = APIRouter(include_in_schema=False)


@router.get("/")
def dashboard(request: Request, principal: Principal = Depends(current_staff), session: Session = Depends(get_session)):
    return render(request, "dashboard.html", {"counts": dashboard_counts(session, principal=principal)})
