"""Jinja2 rendering for console pages: language, the caller, CSRF token and navigation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from siyu.console.i18n import LANG_COOKIE, pick_locale, translations
from siyu.tenancy.principal import Principal

TEMPLATE_DIR = Path(__file__).parent / "templates"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
    autoescape=jinja2.select_autoescape(["html", "xml"]),
    extensions=["jinja2.ext.i18n"],
)
_env.policies["ext.i18n.trimmed"] = True

# The console shows times in China Standard Time; they are stored in UTC.
DISPLAY_ZONE = ZoneInfo("Asia/Shanghai")


def _localtime(value: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    if value is None:
        return ""
    return value.astimezone(DISPLAY_ZONE).strftime(fmt)


_env.filters["localtime"] = _localtime


def _json_compact(value: object) -> str:
    """JSON for reading (Chinese as characters, not \\u escapes); autoescaping makes it HTML-safe."""
    import json

    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "), default=str)


_env.filters["json_compact"] = _json_compact


@jinja2.pass_context
def _action_label(context, value: str) -> str:
    from siyu.console.labels import audit_action_label

    return audit_action_label(value, context.resolve("gettext"))


@jinja2.pass_context
def _job_label(context, value: str) -> str:
    from siyu.console.labels import job_kind_label

    return job_kind_label(value, context.resolve("gettext"))


# Audit actions and job names as readable labels (the raw value goes in a title for hover).
_env.filters["action_label"] = _action_label
_env.filters["job_label"] = _job_label
templates = Jinja2Templates(env=_env)

# (path, message id, roles that see it; empty = everyone logged in). Domains to come are listed
# here already; an entry whose page does not exist yet is left out of the menu until it does.
NAV: list[tuple[str, str, frozenset[str]]] = [
    ("/", "Dashboard", frozenset()),
    ("/customers", "Customers", frozenset()),
    ("/customers/recommendations", "Recommendations",
     frozenset({"administrator", "operations", "compliance", "auditor", "advisor"})),
    ("/acquisition", "Acquisition", frozenset({"administrator", "operations"})),
    ("/acquisition/leads", "Leads", frozenset({"administrator", "operations", "advisor"})),
    ("/acquisition/gated", "Gated communities", frozenset({"administrator", "operations", "compliance", "auditor"})),
    ("/acquisition/keywords", "Keyword replies", frozenset({"administrator", "operations", "advisor"})),
    ("/groups", "Communities", frozenset({"administrator", "operations", "advisor"})),
    ("/sop", "SOP calendars", frozenset({"administrator", "operations", "advisor", "compliance", "auditor"})),
    ("/broadcasts", "Broadcasts", frozenset({"administrator", "operations", "compliance", "auditor"})),
    ("/delivery", "Delivery policy", frozenset({"administrator", "operations", "compliance", "auditor"})),
    ("/groups/moderation", "Red-line alerts in groups",
     frozenset({"administrator", "operations", "advisor", "compliance", "auditor"})),
    ("/audiences", "Segments", frozenset({"administrator", "operations", "compliance", "auditor"})),
    ("/campaigns", "Campaigns", frozenset({"administrator", "operations"})),
    ("/compliance", "Compliance", frozenset({"administrator", "compliance", "auditor"})),
    ("/compliance/products", "Products & suitability", frozenset({"administrator", "compliance", "operations"})),
    ("/compliance/alerts", "Chat-archive alerts", frozenset({"administrator", "compliance", "auditor"})),
    ("/compliance/wording-tests", "Dictionary regression test", frozenset({"administrator", "compliance", "auditor"})),
    ("/compliance/quality", "Service quality",
     frozenset({"administrator", "operations", "compliance", "auditor", "advisor"})),
    ("/compliance/handovers", "Handover",
     frozenset({"administrator", "operations", "compliance", "auditor"})),
    ("/compliance/approvals", "Content approval",
     frozenset({"administrator", "compliance", "operations", "auditor"})),
    ("/compliance/privacy", "Personal data requests", frozenset({"administrator", "compliance", "auditor"})),
    ("/compliance/retention", "Retention", frozenset({"administrator", "compliance", "auditor"})),
    ("/compliance/privacy-notice", "Privacy notice", frozenset({"administrator", "compliance", "auditor"})),
    ("/analytics", "Analytics", frozenset({"administrator", "operations", "auditor", "advisor"})),
    ("/jobs", "Job queue", frozenset({"administrator", "operations"})),
    ("/staff", "Staff & roles", frozenset({"administrator"})),
    ("/departments", "Org structure", frozenset({"administrator"})),
    ("/api-keys", "API keys", frozenset({"administrator"})),
    ("/integration/webhooks", "Webhooks", frozenset({"administrator"})),
    ("/wecom", "WeCom connection", frozenset({"administrator"})),
    ("/audit", "Audit log", frozenset({"administrator", "auditor", "compliance"})),
]


def request_locale(request: Request) -> str:
    settings = request.app.state.settings
    return pick_locale(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE),
                       settings.default_locale)


def iter_routes(app) -> list:
    """Every route of the app, with routers that were included flattened (FastAPI ≥ 0.160 keeps an
    included router as one entry of `app.routes`; `iter_route_contexts` walks into it)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: include_router copied the routes into app.routes
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def _available_paths(request: Request) -> set[str]:
    paths = getattr(request.app.state, "_console_paths", None)
    if paths is None:
        paths = {getattr(r, "path", "") for r in iter_routes(request.app)
                 if "GET" in (getattr(r, "methods", None) or ())}
        request.app.state._console_paths = paths
    return paths


def nav_for(request: Request, principal: Principal | None) -> list[dict]:
    if principal is None:
        return []
    available = _available_paths(request)
    current = request.url.path
    entries = [(path, label) for path, label, roles in NAV if not roles or principal.has_role(*roles)]
    # The entry for this page is the one whose path is the longest prefix of it (/acquisition/gated is
    # 门槛社群's page, not also 获客's): one entry is highlighted.
    matching = [path for path, _ in entries
                if current == path or (path != "/" and current.startswith(path + "/"))]
    active = max(matching, key=len, default=None)
    return [{"path": path, "label": label, "enabled": path in available, "active": path == active}
            for path, label in entries]


def render(
    request: Request,
    template: str,
    context: dict | None = None,
    *,
    principal: Principal | None = None,
    status_code: int = 200,
) -> Response:
    principal = principal or getattr(request.state, "principal", None)
    locale = request_locale(request)
    trans = translations(locale)
    ctx = {
        "request": request,
        "principal": principal,
        "csrf_token": principal.csrf_token if principal else request.cookies.get("siyu_login_csrf", ""),
        "locale": locale,
        "html_lang": "zh-CN" if locale == "zh_CN" else "en",
        "nav": nav_for(request, principal),
        "_": trans.gettext,
        "gettext": trans.gettext,
        "ngettext": trans.ngettext,
    }
    ctx.update(context or {})
    response = templates.TemplateResponse(request, template, ctx, status_code=status_code)
    if request.query_params.get("lang") == locale:
        response.set_cookie(LANG_COOKIE, locale, max_age=365 * 86400, samesite="lax", httponly=True)
    return response
