"""Charts for the home page, gathered from each domain's service (never its tables); the figures
are the role sections of `siyu.console.home`."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from sqlalchemy.orm import Session

from siyu import DOMAINS
from siyu.tenancy.principal import Principal


def _offered(name: str) -> list[Callable]:
    functions = []
    for domain in DOMAINS:
        try:
            module = importlib.import_module(f"siyu.{domain}.service")
        except ModuleNotFoundError as exc:
            if exc.name != f"siyu.{domain}.service":
                raise
            continue
        fn = getattr(module, name, None)
        if fn is not None:
            functions.append(fn)
    return functions


def dashboard_charts(session: Session, *, principal: Principal) -> list[dict]:
    """Each domain may offer `dashboard_charts(session, *, principal) -> list[dict]`, each chart
    `{key, title, kind: "bar"|"line", x: [labels], series: [{label, values}]}`; title and series
    labels are English message ids."""
    charts: list[dict] = []
    for fn in _offered("dashboard_charts"):
        charts.extend(fn(session, principal=principal))
    return charts


def localize_chart(chart: dict, translate: Callable[[str], str]) -> dict:
    """The chart as the page draws it: texts in the reader's language, days shown as MM-DD."""
    return {
        "key": chart["key"],
        "title": translate(chart["title"]),
        "kind": chart.get("kind", "bar"),
        "x": [x[5:] if len(x) == 10 and x[4] == "-" else x for x in map(str, chart["x"])],
        "series": [{"name": translate(s["label"]), "values": list(s["values"])} for s in chart["series"]],
    }
