"""The communities domain's customer-facing content for compliance's content gate (kind
"group_welcome"): a group set's group welcome, its rules and its announcement
(`siyu.communities.group_welcome`). Each is owned by the set; the console edits them on the set's page."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.compliance.content import OwnerType, register_owner
from siyu.console.i18n import N_


def _lookup(suffix: str):
    def lookup(session: Session, corp_id: int, ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
        from siyu.communities.models import GroupSet

        rows = session.execute(select(GroupSet.id, GroupSet.name).where(
            GroupSet.corp_id == corp_id, GroupSet.id.in_([i for i in ids if 0 < i < 2**63])))
        return {sid: (f"{name} · {suffix}", f"/groups/sets/{sid}#welcome") for sid, name in rows}
    return lookup


def _choices(suffix: str):
    def choices(session: Session, corp_id: int) -> list[tuple[int, str]]:
        from siyu.communities.models import GroupSet

        rows = session.execute(select(GroupSet.id, GroupSet.name).where(GroupSet.corp_id == corp_id)
                               .order_by(GroupSet.name).limit(500))
        return [(sid, f"{name} · {suffix}") for sid, name in rows]
    return choices


for _name, _label, _suffix in (("group_set_welcome", N_("Group set's group welcome"), "入群欢迎语"),
                               ("group_set_rules", N_("Group set's rules"), "群规"),
                               ("group_set_announcement", N_("Group set's announcement"), "群公告")):
    register_owner(OwnerType(name=_name, label=_label, kinds=("group_welcome",), lookup=_lookup(_suffix),
                             choices=_choices(_suffix)))
