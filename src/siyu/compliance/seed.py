"""The installation seed of the wording dictionary, shipped in the package (data/wording_seed.json).

It works without a database: `review_text` uses it when no dictionary is given. A migrated
database copies it into `wording_entry` rows with corp_id NULL (see dictionary.sync_installation_seed),
where the installation's compliance officer can edit it with a history."""

from __future__ import annotations

import functools
import json
from importlib import resources

from siyu.compliance.matcher import DictEntry, Dictionary
from siyu.compliance.schemas import SeedFile

SEED_RESOURCE = "data/wording_seed.json"


@functools.lru_cache(maxsize=1)
def load_seed_file() -> SeedFile:
    raw = resources.files("siyu.compliance").joinpath(SEED_RESOURCE).read_text(encoding="utf-8")
    return SeedFile.model_validate(json.loads(raw))


def seed_entries() -> list[DictEntry]:
    return [
        DictEntry(phrase=e.phrase, category=e.category, severity=e.severity, rule=e.rule, notes=e.notes)
        for e in load_seed_file().entries
    ]


@functools.lru_cache(maxsize=1)
def seed_dictionary() -> Dictionary:
    """The package seed as a Dictionary; compiled once per process."""
    return Dictionary(seed_entries(), version=f"seed:{load_seed_file().version}")
