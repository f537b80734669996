"""Small SQL helpers shared by the WeCom connector's stores."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from siyu.db import is_postgres


def dialect_insert(session: Session):
    """The INSERT construct of the session's database, for ON CONFLICT (upsert / insert-or-skip)."""
    return postgresql.insert if is_postgres(session) else sqlite.insert
