"""Figures for the dashboard, gathered from each domain's service (never its tables)."""

from __future__ import annotations

import importlib

from sqlalchemy.orm import Session

from siyu import DOMAINS
from siyu.tenancy.principal import Principal


def dashboard_counts(session: Session, *, principal: Principal) -> list[dict]:
    """Each domain may offer `dashboard_figures(session, *, principal) -> list[dict(label, value)]`
    in its service module; the dashboard shows whatever the installed domains offer."""
    figures: list[dict] = []
    for domain in DOMAINS:
        try:
            module = importlib.import_module(f"siyu.{domain}.service")
        except ModuleNotFoundError:
            continue
        fn = getattr(module, "dashboard_figures", None)
        if fn is not None:
            figures.extend(fn(session, principal=principal))
    return figures
