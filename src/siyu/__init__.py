"""Siyu (私域): private-domain customer operations for financial institutions on WeCom."""

__version__ = "0.1.0"

# Every domain package, in dependency order. The app mounts each domain's `api.router` and
# `views.router`, Alembic sees each domain's `models`, the worker loads each domain's `jobs`.
DOMAINS: tuple[str, ...] = ("tenancy", "jobs", "console", "wecom", "privacy", "compliance", "customers",
                             "acquisition", "communities", "handover", "quality", "integration")
