"""Imports every domain's tables so that Base.metadata is complete (Alembic, tests)."""

from __future__ import annotations

import importlib

from siyu import DOMAINS
from siyu.db import Base


def load_all() -> type[Base]:
    for domain in DOMAINS:
        try:
            importlib.import_module(f"siyu.{domain}.models")
        except ModuleNotFoundError as exc:
            if exc.name != f"siyu.{domain}.models":
                raise
    return Base
