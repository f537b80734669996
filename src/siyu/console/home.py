"""The home page per role: today's work, each figure a link to the list it counts.

Each domain may offer `siyu.<domain>.home.tiles(session, *, principal) -> list[Tile]`; the page
shows the tiles of the sections the reader's roles open (an advisor's own work, operations,
compliance, administration). A tile counts exactly what its link lists, so that a figure and the
list behind it never disagree."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from sqlalchemy.orm import Session

from siyu import DOMAINS
from siyu.tenancy.principal import Principal

# Sections in the order the page shows them, with the roles that open each.
SECTIONS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("advisor", "My work today", frozenset({"advisor"})),
    ("operations", "Operations today", frozenset({"operations", "administrator"})),
    ("compliance", "Compliance", frozenset({"compliance", "auditor", "administrator"})),
    ("administrator", "System health", frozenset({"administrator"})),
)
TONES = ("normal", "warn", "alert")


@dataclass(frozen=True)
class Tile:
    """One figure of the home page. `label` and `note` are English message ids (`note` may carry
    %(name)s parameters from `params`); `href` lists exactly what `value` counts. A tile whose
    value is None shows its note in the value's place (a state rather than a count)."""

    section: str
    key: str
    label: str
    value: int | None
    href: str
    tone: str = "normal"
    note: str = ""
    params: dict | None = None


def sections_for(principal: Principal) -> list[str]:
    return [key for key, _, roles in SECTIONS if principal.has_role(*roles)]


def _providers():
    for domain in DOMAINS:
        name = f"siyu.{domain}.home"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        provider = getattr(module, "tiles", None)  # this module is console's own, and offers none
        if provider is not None:
            yield provider


def home_sections(session: Session, *, principal: Principal) -> list[dict]:
    """The sections the reader sees, each with its tiles (sections with no tile are left out)."""
    wanted = sections_for(principal)
    tiles: dict[str, list[Tile]] = {key: [] for key in wanted}
    for provider in _providers():
        for tile in provider(session, principal=principal):
            if tile.section in tiles:
                tiles[tile.section].append(tile)
    titles = {key: title for key, title, _ in SECTIONS}
    return [{"key": key, "title": titles[key], "tiles": tiles[key]} for key in wanted if tiles[key]]
