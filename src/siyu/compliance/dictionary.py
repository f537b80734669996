"""The wording dictionary (措辞词库): entries per corp on top of the installation's, versioned and audited.

Scopes: the installation (corp_id NULL, scope 0) — seeded from the package's data file — and each
corp (scope = corp id). A corp's dictionary is the installation's active entries overridden, phrase
by phrase (by normalised form), by the corp's own active entries; so a corp can tighten a seed entry
("第一" → block), relax it, or add its own allowed phrases ("第一创业" as a firm name).

Every change bumps its scope's version, writes a revision row and an audit entry in the caller's
transaction. Compiled automata are cached per process by (corp, installation stamp, corp stamp)
(random stamps renewed with each version), so a change is seen by every process at its next
`load_dictionary` without shared memory.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.compliance.matcher import DictEntry, Dictionary
from siyu.compliance.models import WordingDictionaryVersion, WordingEntry, WordingEntryRevision
from siyu.compliance.normalize import BARRIER, normalize
from siyu.compliance.schemas import WordingEntryCreate, WordingEntryUpdate
from siyu.compliance.seed import load_seed_file, seed_dictionary
from siyu.db import utcnow
from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.tenancy import audit
from siyu.tenancy.principal import Principal

INSTALLATION = 0
MAX_ID = 2**63 - 1


def _scope(corp_id: int | None) -> int:
    if corp_id is None:
        return INSTALLATION
    if not isinstance(corp_id, int) or isinstance(corp_id, bool) or not 1 <= corp_id <= MAX_ID:
        raise InvalidInput("invalid corp", field="corp_id")
    return corp_id


def _actor_fields(actor: Principal | str) -> tuple[str, int | None]:
    if isinstance(actor, Principal):
        return actor.label, actor.staff_id
    return str(actor), None


def _validation_error(exc: ValidationError) -> InvalidInput:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or None
    return InvalidInput(err.get("msg", "invalid value"), field=field)


def _phrase_key(phrase: str) -> str:
    if BARRIER in phrase:
        raise InvalidInput("the phrase contains a character that cannot be matched", field="phrase")
    key = normalize(phrase)
    if not key:
        raise InvalidInput("the phrase has no letters or characters once spaces and symbols are removed",
                           field="phrase")
    return key


def _bump_version(session: Session, scope_id: int) -> int:
    """The scope's next version; concurrent changes of one scope queue on its row lock."""
    row = session.get(WordingDictionaryVersion, scope_id, with_for_update=True)
    if row is None:
        try:
            with session.begin_nested():  # another transaction may create the row first
                session.add(WordingDictionaryVersion(scope_id=scope_id, version=0, stamp=""))
        except IntegrityError:
            pass
        row = session.get(WordingDictionaryVersion, scope_id, with_for_update=True, populate_existing=True)
        assert row is not None
    row.version += 1
    row.stamp = uuid.uuid4().hex
    row.updated_at = utcnow()
    session.flush()
    return row.version


def _revise(session: Session, entry: WordingEntry, *, action: str, actor: Principal | str, version: int) -> None:
    label, staff_id = _actor_fields(actor)
    session.add(WordingEntryRevision(
        entry_id=entry.id, scope_id=entry.scope_id, version=version, action=action, category=entry.category,
        phrase=entry.phrase, severity=entry.severity, rule=entry.rule, notes=entry.notes or "",
        is_active=entry.is_active, actor=label[:120], actor_staff_id=staff_id,
    ))


def _audit(session: Session, entry: WordingEntry, *, action: str, actor: Principal | str, version: int,
           changes: dict | None = None) -> None:
    detail = {"phrase": entry.phrase, "category": entry.category, "severity": entry.severity, "version": version}
    if changes:
        detail["changes"] = changes
    audit.record(session, corp_id=entry.corp_id, actor=actor, action=f"wording_entry.{action}",
                 target_type="wording_entry", target_id=entry.id, detail=detail)


def _get_entry(session: Session, *, corp_id: int | None, entry_id: int) -> WordingEntry:
    scope_id = _scope(corp_id)
    entry = session.get(WordingEntry, entry_id) if isinstance(entry_id, int) and 1 <= entry_id <= MAX_ID else None
    if entry is None or entry.scope_id != scope_id:
        # Another corp's entry (or an installation entry, for a corp) is not there for this caller.
        raise NotFound("no such wording entry", field="entry_id")
    return entry


def _ensure_unique(session: Session, *, scope_id: int, key: str, exclude_id: int | None = None) -> None:
    q = select(WordingEntry.id, WordingEntry.phrase).where(
        WordingEntry.scope_id == scope_id, WordingEntry.phrase_key == key
    )
    for other_id, other_phrase in session.execute(q):
        if other_id != exclude_id:
            raise Conflict("the dictionary already has this phrase (as %(phrase)s)", field="phrase",
                           params={"phrase": other_phrase})


def add_entry(
    session: Session,
    *,
    corp_id: int | None,
    actor: Principal | str,
    category: str,
    phrase: str,
    severity: str,
    rule: str,
    notes: str = "",
) -> WordingEntry:
    """Add a phrase to a corp's dictionary (corp_id None: to the installation's)."""
    scope_id = _scope(corp_id)
    try:
        data = WordingEntryCreate(category=category, phrase=phrase, severity=severity, rule=rule, notes=notes or "")
    except ValidationError as exc:
        raise _validation_error(exc) from None
    key = _phrase_key(data.phrase)
    _ensure_unique(session, scope_id=scope_id, key=key)
    entry = WordingEntry(
        corp_id=corp_id, scope_id=scope_id, category=data.category, phrase=data.phrase, phrase_key=key,
        severity=data.severity, rule=data.rule, notes=data.notes, is_active=True,
    )
    session.add(entry)
    session.flush()
    version = _bump_version(session, scope_id)
    _revise(session, entry, action="created", actor=actor, version=version)
    _audit(session, entry, action="created", actor=actor, version=version)
    session.flush()
    return entry


def edit_entry(
    session: Session,
    *,
    corp_id: int | None,
    actor: Principal | str,
    entry_id: int,
    category: str | None = None,
    phrase: str | None = None,
    severity: str | None = None,
    rule: str | None = None,
    notes: str | None = None,
) -> WordingEntry:
    """Change some fields of an entry; fields left None stay as they are."""
    entry = _get_entry(session, corp_id=corp_id, entry_id=entry_id)
    try:
        data = WordingEntryUpdate(category=category, phrase=phrase, severity=severity, rule=rule, notes=notes)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    changes: dict[str, list] = {}
    for name in ("category", "phrase", "severity", "rule", "notes"):
        value = getattr(data, name)
        if value is not None and value != getattr(entry, name):
            changes[name] = [getattr(entry, name), value]
    if not changes:
        return entry
    if "phrase" in changes:
        key = _phrase_key(data.phrase)
        _ensure_unique(session, scope_id=entry.scope_id, key=key, exclude_id=entry.id)
        entry.phrase_key = key
    for name, (_, new) in changes.items():
        setattr(entry, name, new)
    entry.updated_at = utcnow()
    session.flush()
    version = _bump_version(session, entry.scope_id)
    _revise(session, entry, action="edited", actor=actor, version=version)
    _audit(session, entry, action="edited", actor=actor, version=version, changes=changes)
    session.flush()
    return entry


def _set_active(session: Session, *, corp_id: int | None, actor: Principal | str, entry_id: int, active: bool,
                reason: str) -> WordingEntry:
    entry = _get_entry(session, corp_id=corp_id, entry_id=entry_id)
    if entry.is_active == active:
        return entry
    entry.is_active = active
    entry.updated_at = utcnow()
    session.flush()
    action = "reactivated" if active else "deactivated"
    version = _bump_version(session, entry.scope_id)
    _revise(session, entry, action=action, actor=actor, version=version)
    _audit(session, entry, action=action, actor=actor, version=version,
           changes={"reason": reason[:500]} if reason else None)
    session.flush()
    return entry


def deactivate_entry(
    session: Session, *, corp_id: int | None, actor: Principal | str, entry_id: int, reason: str = ""
) -> WordingEntry:
    """Take an entry out of the dictionary (it stays, with its history)."""
    return _set_active(session, corp_id=corp_id, actor=actor, entry_id=entry_id, active=False, reason=reason)


def reactivate_entry(
    session: Session, *, corp_id: int | None, actor: Principal | str, entry_id: int, reason: str = ""
) -> WordingEntry:
    return _set_active(session, corp_id=corp_id, actor=actor, entry_id=entry_id, active=True, reason=reason)


def list_entries(
    session: Session, *, corp_id: int | None, active_only: bool = False, category: str | None = None
) -> list[WordingEntry]:
    """The entries of one scope (a corp's own, or the installation's), by category and phrase."""
    q = select(WordingEntry).where(WordingEntry.scope_id == _scope(corp_id))
    if active_only:
        q = q.where(WordingEntry.is_active.is_(True))
    if category:
        q = q.where(WordingEntry.category == category)
    return list(session.scalars(q.order_by(WordingEntry.category, WordingEntry.phrase_key)))


def entry_history(session: Session, *, corp_id: int | None, entry_id: int) -> list[WordingEntryRevision]:
    entry = _get_entry(session, corp_id=corp_id, entry_id=entry_id)
    return list(session.scalars(
        select(WordingEntryRevision).where(WordingEntryRevision.entry_id == entry.id)
        .order_by(WordingEntryRevision.version, WordingEntryRevision.id)
    ))


def _version_rows(session: Session, corp_id: int | None) -> dict[int, tuple[int, str]]:
    scopes = {INSTALLATION, _scope(corp_id)}
    return {
        scope: (version, stamp)
        for scope, version, stamp in session.execute(
            select(WordingDictionaryVersion.scope_id, WordingDictionaryVersion.version, WordingDictionaryVersion.stamp)
            .where(WordingDictionaryVersion.scope_id.in_(scopes))
        )
    }


def dictionary_versions(session: Session, *, corp_id: int | None) -> tuple[int, int]:
    """(installation version, corp version); 0 where a scope was never changed."""
    rows = _version_rows(session, corp_id)
    return rows.get(INSTALLATION, (0, ""))[0], (rows.get(corp_id, (0, ""))[0] if corp_id is not None else 0)


def sync_installation_seed(session: Session, *, actor: Principal | str = "system") -> dict:
    """Copy the package seed into the installation scope: adds phrases not there yet, and never
    reverts what the installation's compliance officer changed. One version bump for the batch."""
    existing = set(session.scalars(select(WordingEntry.phrase_key).where(WordingEntry.scope_id == INSTALLATION)))
    seed = load_seed_file()
    added: list[WordingEntry] = []
    for e in seed.entries:
        key = normalize(e.phrase)
        if not key or key in existing:
            continue
        existing.add(key)
        entry = WordingEntry(corp_id=None, scope_id=INSTALLATION, category=e.category, phrase=e.phrase,
                             phrase_key=key, severity=e.severity, rule=e.rule, notes=e.notes, is_active=True)
        session.add(entry)
        added.append(entry)
    if not added:
        return {"added": 0, "version": dictionary_versions(session, corp_id=None)[0]}
    session.flush()
    version = _bump_version(session, INSTALLATION)
    for entry in added:
        _revise(session, entry, action="created", actor=actor, version=version)
    audit.record(session, corp_id=None, actor=actor, action="wording_entry.seeded", target_type="wording_dictionary",
                 target_id=INSTALLATION, detail={"seed": f"{seed.name}@{seed.version}", "added": len(added),
                                                 "version": version})
    session.flush()
    return {"added": len(added), "version": version}


def _to_dict_entry(e: WordingEntry) -> DictEntry:
    return DictEntry(phrase=e.phrase, category=e.category, severity=e.severity, rule=e.rule, notes=e.notes or "",
                     entry_id=e.id, corp_id=e.corp_id)


_CACHE: OrderedDict[tuple, Dictionary] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 64


def load_dictionary(session: Session, *, corp_id: int | None) -> Dictionary:
    """The dictionary in force for a corp: installation entries (the package seed until the
    installation scope was synced or edited) overridden by the corp's own active entries."""
    rows = _version_rows(session, corp_id)
    inst_version, inst_stamp = rows.get(INSTALLATION, (0, ""))
    corp_version, corp_stamp = rows.get(corp_id, (0, "")) if corp_id is not None else (0, "")
    cache_key = (corp_id, inst_stamp, corp_stamp)
    with _CACHE_LOCK:
        cached = _CACHE.get(cache_key)
        if cached is not None:
            _CACHE.move_to_end(cache_key)
            return cached
    if inst_version:
        base = [_to_dict_entry(e) for e in list_entries(session, corp_id=None, active_only=True)]
        base_label = f"installation:{inst_version}"
    else:
        base = list(seed_dictionary().entries)
        base_label = seed_dictionary().version
    own = [_to_dict_entry(e) for e in list_entries(session, corp_id=corp_id, active_only=True)] if corp_id else []
    dictionary = Dictionary([*base, *own], version=f"{base_label}+corp{corp_id}:{corp_version}")
    with _CACHE_LOCK:
        _CACHE[cache_key] = dictionary
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return dictionary


# --- firm-type lexicons (行业词库) ---------------------------------------------------------------------


def corp_lexicons(session: Session, *, corp_id: int | None) -> frozenset[str] | None:
    """The firm-type lexicons a corp has switched on (rules.FIRM_TYPES), or None: all of them (the
    default, and the installation's)."""
    from siyu.compliance.models import WordingSettings

    if corp_id is None:
        return None
    row = session.get(WordingSettings, _scope(corp_id))
    if row is None:
        return None
    return frozenset(row.lexicons)


def set_lexicons(session: Session, *, corp_id: int, actor: Principal | str, lexicons) -> frozenset[str]:
    """Switch a corp's firm-type lexicons (at least one; audited as wording.lexicons_set)."""
    from siyu.compliance.models import WordingSettings
    from siyu.compliance.rules import FIRM_TYPES

    scope_id = _scope(corp_id)
    if scope_id == INSTALLATION:
        raise InvalidInput("lexicons are chosen per corp", field="corp_id")
    if isinstance(lexicons, str) or not all(isinstance(x, str) for x in lexicons):
        raise InvalidInput("a list of firm types", field="lexicons")
    chosen = sorted(set(lexicons))
    unknown = [x for x in chosen if x not in FIRM_TYPES]
    if unknown:
        raise InvalidInput("unknown firm type %(value)s", field="lexicons", params={"value": ", ".join(unknown)})
    if not chosen:
        raise InvalidInput("switch on at least one lexicon", field="lexicons")
    label, _staff_id = _actor_fields(actor)
    row = session.get(WordingSettings, scope_id)
    before = list(row.lexicons) if row is not None else list(FIRM_TYPES)
    if row is None:
        row = WordingSettings(corp_id=scope_id, lexicons=chosen, updated_by=label)
        session.add(row)
    else:
        row.lexicons = chosen
        row.updated_by = label
        row.updated_at = utcnow()
    session.flush()
    audit.record(session, corp_id=scope_id, actor=actor, action="wording.lexicons_set",
                 target_type="wording_settings", target_id=str(scope_id),
                 detail={"before": before, "after": chosen})
    return frozenset(chosen)
