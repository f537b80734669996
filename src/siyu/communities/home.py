"""Communities on the home page: open red-line alerts in the groups the reader may see (an advisor:
their own groups) and groups whose latest health says dying — each figure counts what its link lists."""

from __future__ import annotations

from sqlalchemy.orm import Session

from siyu.communities import health, moderation, service
from siyu.console.home import Tile
from siyu.console.i18n import N_
from siyu.tenancy.principal import Principal


def _tiles(session: Session, principal: Principal, section: str) -> list[Tile]:
    alerts = moderation.counts(session, principal=principal)["open"]
    live = service.visible_group_ids(session, principal=principal, include_dismissed=False)
    dying = len(health.dying_groups(session, group_ids=live))
    return [
        Tile(section, "group_red_lines", N_("Red-line alerts in groups"), alerts, "/groups/moderation?status=open",
             tone="alert" if alerts else "normal"),
        Tile(section, "groups_dying", N_("Dying groups"), dying, "/groups/health", tone="warn" if dying else "normal"),
    ]


def tiles(session: Session, *, principal: Principal) -> list[Tile]:
    if principal.kind != "staff":
        return []
    if principal.has_role("operations", "administrator"):
        return _tiles(session, principal, "operations")
    if principal.has_role("advisor"):
        return _tiles(session, principal, "advisor")
    return []
