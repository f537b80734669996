"""Customers on the home page: an advisor's new customers today (the list behind it is the
customer list filtered to today's adds, which shows an advisor only their own)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from siyu.console.home import Tile
from siyu.console.i18n import N_
from siyu.customers.listing import CALENDAR_ZONE, count_customers, make_filters
from siyu.db import utcnow
from siyu.tenancy.principal import Principal


def tiles(session: Session, *, principal: Principal) -> list[Tile]:
    today = utcnow().astimezone(CALENDAR_ZONE).date()
    filters = make_filters(added_from=today, added_to=today)
    n = count_customers(session, principal=principal, filters=filters)
    href = f"/customers?added_from={today.isoformat()}&added_to={today.isoformat()}"
    out = []
    if principal.has_role("advisor"):
        out.append(Tile("advisor", "my_new_customers_today", N_("My new customers today"), n, href))
    if principal.has_role("operations", "administrator"):
        out.append(Tile("operations", "new_customers_today", N_("New customers today"), n, href))
    return out
