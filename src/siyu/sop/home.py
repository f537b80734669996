"""SOP on the home page: an advisor's group SOP sends waiting for them to confirm in WeCom, and for
operations the slot times of the last day that are late, missed or held by compliance."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.console.home import Tile
from siyu.console.i18n import N_
from siyu.db import utcnow
from siyu.sop.models import RunState, SendState, SopRun, SopSend
from siyu.tenancy.principal import Principal


def tiles(session: Session, *, principal: Principal) -> list[Tile]:
    out = []
    now = utcnow()
    if principal.has_role("advisor") and principal.staff_id is not None:
        waiting = session.scalar(select(func.count()).select_from(SopSend).join(SopRun, SopRun.id == SopSend.run_id)
                                 .where(SopSend.corp_id == principal.corp_id,
                                        SopSend.owner_staff_id == principal.staff_id,
                                        SopSend.state.in_((SendState.CALLING.value, SendState.WAITING.value)),
                                        SopRun.due_at <= now)) or 0
        out.append(Tile("advisor", "sop_to_confirm", N_("Group SOP sends to confirm in WeCom"), waiting,
                        "/sop/tasks", tone="alert" if waiting else "normal"))
    if principal.has_role("operations", "administrator"):
        from siyu.sop.service import run_state, settings_for

        cfg = settings_for(session, corp_id=principal.corp_id)
        late_after = dt.timedelta(minutes=cfg.late_after_minutes)
        window = dt.timedelta(minutes=cfg.confirm_window_minutes)
        runs = {r.id: r for r in session.scalars(select(SopRun).where(
            SopRun.corp_id == principal.corp_id, SopRun.due_at > now - dt.timedelta(days=1), SopRun.due_at <= now))}
        sends: dict[int, list[str]] = {i: [] for i in runs}
        if runs:
            for run_id, state in session.execute(select(SopSend.run_id, SopSend.state)
                                                 .where(SopSend.run_id.in_(list(runs)))):
                sends[run_id].append(state)
        trouble = sum(run_state(sends[i], due_at=r.due_at, now=now, late_after=late_after,
                                held=r.state == RunState.HELD.value, window=window)
                      in (RunState.LATE.value, RunState.MISSED.value, RunState.HELD.value, RunState.PARTLY.value)
                      for i, r in runs.items())
        out.append(Tile("operations", "sop_trouble", N_("Group SOP slots late, missed or held (24 h)"), trouble,
                        "/sop", tone="alert" if trouble else "normal"))
    return out
