"""Siyu (私域): private-domain customer operations for financial institutions on WeCom."""

__version__ = "0.1.0"

# Every domain package, in dependency order. The app mounts each domain's `api.router` and
# `views.router`, Alembic sees each domain's `models`, the worker loads each domain's `jobs`.
DOMAINS: tuple[str, ...] = ("tenancy", "jobs", "console", "wecom", "privacy", "compliance", "customers",
                             "delivery", "acquisition", "communities", "sop", "handover", "quality", "integration",
                             "analytics", "audiences", "broadcasts")


def domain_module(domain: str, part: str):
    """`siyu.<domain>.<part>`, or None when that domain has no such module (an import error inside
    an existing module is raised, not taken for absence)."""
    import importlib

    name = f"siyu.{domain}.{part}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def domain_modules(part: str) -> list:
    """Every domain's `part` module that exists (models, jobs, privacy, content, home, ...), in
    dependency order: how the app, the worker and the registries find what each domain offers."""
    return [m for d in DOMAINS if (m := domain_module(d, part)) is not None]
