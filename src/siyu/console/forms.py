"""Form helpers shared by every domain's console pages."""

from __future__ import annotations

from fastapi import Request

from siyu.errors import SiyuError, localized_message


class FieldErrors(dict):
    """field name -> message shown next to that field (already in the reader's language)."""

    def add(self, request: Request, exc: SiyuError, default_field: str = "form") -> None:
        self[exc.field or default_field] = localized_message(request, exc)

    @classmethod
    def of(cls, request: Request, exc: SiyuError, default_field: str = "form") -> FieldErrors:
        """The errors of one refusal: its message next to its field (or `default_field`)."""
        errors = cls()
        errors.add(request, exc, default_field)
        return errors
