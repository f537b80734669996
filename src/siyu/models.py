"""Imports every domain's tables so that Base.metadata is complete (Alembic, tests)."""

from __future__ import annotations

from siyu import domain_modules
from siyu.db import Base


def load_all() -> type[Base]:
    domain_modules("models")
    return Base
