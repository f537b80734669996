"""Who is calling: a logged-in member of staff or an API key, always inside one corp."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Principal:
    corp_id: int
    kind: str  # "staff" | "api_key" | "system"
    label: str
    staff_id: int | None = None
    api_key_id: int | None = None
    department_id: int | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)
    sees_department: bool = False
    csrf_token: str | None = None
    session_id: int | None = None
    display_name: str = ""  # what people read: the staff member's name (label stays the login, for audit)

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def has_scope(self, scope: str) -> bool:
        return "*" in self.scopes or scope in self.scopes

    @property
    def is_admin(self) -> bool:
        return "administrator" in self.roles

    @classmethod
    def system(cls, corp_id: int, label: str = "system") -> Principal:
        return cls(corp_id=corp_id, kind="system", label=label)
