"""The WeCom connection on the administrator's home page: whether it is set up, when the last
callback came, whether an access token is live, and WeCom's refusals of the last 24 hours."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.console.home import Tile
from siyu.console.i18n import N_
from siyu.db import utcnow
from siyu.tenancy.models import Corp
from siyu.tenancy.principal import Principal
from siyu.wecom.models import WecomAccessToken, WecomInboxEvent, WecomOutbound

LINK = "/wecom"
# No callback for this long while connected is worth a look (customers add advisors all day).
QUIET = dt.timedelta(hours=6)


def _ago(delta: dt.timedelta) -> tuple[str, dict]:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return N_("%(n)s min ago"), {"n": minutes}
    if minutes < 48 * 60:
        return N_("%(n)s h ago"), {"n": minutes // 60}
    return N_("%(n)s days ago"), {"n": minutes // 1440}


def tiles(session: Session, *, principal: Principal) -> list[Tile]:
    if not principal.has_role("administrator"):
        return []
    now = utcnow()
    corp = session.get(Corp, principal.corp_id)
    if corp is None or not corp.wecom_corp_id:
        return [Tile("administrator", "wecom_connection", N_("WeCom connection"), None, LINK, tone="alert",
                     note=N_("not connected"))]
    last = session.scalar(select(func.max(WecomInboxEvent.received_at))
                          .where(WecomInboxEvent.wecom_corp_id == corp.wecom_corp_id))
    if last is None:
        callback = Tile("administrator", "wecom_last_callback", N_("Last WeCom callback"), None, LINK, tone="warn",
                        note=N_("none received yet"))
    else:
        last = last if last.tzinfo else last.replace(tzinfo=dt.UTC)
        note, params = _ago(now - last)
        callback = Tile("administrator", "wecom_last_callback", N_("Last WeCom callback"), None, LINK,
                        tone="warn" if now - last > QUIET else "normal", note=note, params=params)
    live = session.scalar(select(func.count()).select_from(WecomAccessToken).where(
        WecomAccessToken.corp_id == corp.wecom_corp_id, WecomAccessToken.expires_at > now)) or 0
    refused = session.scalar(select(func.count()).select_from(WecomOutbound).where(
        WecomOutbound.corp_id == corp.id, WecomOutbound.created_at >= now - dt.timedelta(hours=24),
        WecomOutbound.state.in_(("failed", "unknown")))) or 0
    return [
        callback,
        Tile("administrator", "wecom_token", N_("Live WeCom access tokens"), live, LINK,
             tone="normal" if live else "warn"),
        Tile("administrator", "wecom_errors_24h", N_("WeCom calls failed or unanswered (24 h)"), refused, LINK,
             tone="alert" if refused else "normal"),
    ]
