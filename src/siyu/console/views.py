"""The console's home: today's work per role (each figure a link to its list), and charts."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from siyu.console.dashboard import dashboard_charts, localize_chart
from siyu.console.home import home_sections
from siyu.console.i18n import translations
from siyu.console.templating import render, request_locale
from siyu.db import get_session
from siyu.tenancy.deps import current_staff
from siyu.tenancy.principal import Principal

router = APIRouter(include_in_schema=False)


@router.get("/")
def dashboard(request: Request, principal: Principal = Depends(current_staff), session: Session = Depends(get_session)):
    translate = translations(request_locale(request)).gettext
    charts = [localize_chart(c, translate) for c in dashboard_charts(session, principal=principal)]
    return render(request, "dashboard.html", {"sections": home_sections(session, principal=principal),
                                              "charts": charts})
