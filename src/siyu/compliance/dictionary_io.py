"""The wording dictionary in and out of spreadsheets (CSV / XLSX through `siyu.tabular`), and "test a
text" for the compliance officer's console page (措辞词库).

Import is all or nothing: every row is checked first, and a file with any bad row is refused naming
each bad row and column (at most `MAX_REPORTED` of them); only a clean file changes the dictionary,
inside a savepoint, so nothing is ever half-imported. A row whose phrase the corp's own dictionary
already has (compared normalised) changes that entry (and brings it back if it was deactivated);
any other row adds an entry. Every change is versioned and audited by `compliance.dictionary`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pydantic import ValidationError
from sqlalchemy.orm import Session

from siyu import tabular
from siyu.compliance import dictionary
from siyu.compliance.models import WordingEntry
from siyu.compliance.normalize import normalize
from siyu.compliance.schemas import WordingEntryCreate
from siyu.errors import InvalidInput, SiyuError
from siyu.tenancy import audit
from siyu.tenancy.principal import Principal

COLUMNS = {
    "category": ("类别", "分类"),
    "phrase": ("词语", "短语", "用语"),
    "severity": ("严重程度", "级别"),
    "rule": ("规则", "依据", "说明"),
    "notes": ("备注",),
}
HEADER = ["category", "phrase", "severity", "rule", "notes", "active"]
MAX_ROWS = 5000
MAX_REPORTED = 20


@dataclass(frozen=True)
class ImportResult:
    added: int
    changed: int
    unchanged: int


def _rows(table: tabular.Table, columns: dict[str, int]) -> Iterator[tuple[int, dict[str, str]]]:
    for number, cells in table.rows():
        yield number, {name: (cells[i].strip() if i < len(cells) else "") for name, i in columns.items()}


def import_entries(session: Session, *, corp_id: int, actor: Principal | str, path: Path | str,
                   filename: str = "") -> ImportResult:
    """Import the corp's own dictionary entries from a CSV or XLSX file (see the module)."""
    with tabular.open_table(path, filename=filename) as table:
        columns = tabular.map_header(table.header, COLUMNS, required=("category", "phrase", "severity", "rule"))
        names = {name: table.header[i] for name, i in columns.items()}
        problems: list[str] = []
        rows: list[tuple[int, WordingEntryCreate]] = []
        seen: dict[str, int] = {}
        for number, values in _rows(table, columns):
            if len(rows) + len(problems) >= MAX_ROWS:
                raise InvalidInput("at most %(n)s rows per file", field="file", params={"n": MAX_ROWS})
            try:
                data = WordingEntryCreate(**{k: values.get(k, "") for k in ("category", "phrase", "severity",
                                                                            "rule", "notes")})
            except ValidationError as exc:
                for err in exc.errors():
                    field = str(err.get("loc", ("",))[0])
                    problems.append(f"row {number}, column {names.get(field, field)}: {err.get('msg', 'invalid')}")
                continue
            key = normalize(data.phrase)
            if not key:
                problems.append(f"row {number}, column {names['phrase']}: the phrase has no letters or characters")
                continue
            if key in seen:
                problems.append(f"row {number}, column {names['phrase']}: the same phrase as row {seen[key]}")
                continue
            seen[key] = number
            rows.append((number, data))
    if problems:
        shown = problems[:MAX_REPORTED]
        more = len(problems) - len(shown)
        raise InvalidInput("nothing was imported: %(problems)s", field="file",
                           params={"problems": "; ".join(shown) + (f"; and {more} more" if more else "")})
    if not rows:
        raise InvalidInput("the file has no entries", field="file")
    own = {e.phrase_key: e for e in dictionary.list_entries(session, corp_id=corp_id)}
    added = changed = unchanged = 0
    with session.begin_nested():  # all or nothing, whatever fails below
        for number, data in rows:
            try:
                entry = own.get(normalize(data.phrase))
                if entry is None:
                    dictionary.add_entry(session, corp_id=corp_id, actor=actor, category=data.category,
                                         phrase=data.phrase, severity=data.severity, rule=data.rule,
                                         notes=data.notes)
                    added += 1
                    continue
                before = (entry.category, entry.phrase, entry.severity, entry.rule, entry.notes, entry.is_active)
                dictionary.edit_entry(session, corp_id=corp_id, actor=actor, entry_id=entry.id,
                                      category=data.category, phrase=data.phrase, severity=data.severity,
                                      rule=data.rule, notes=data.notes)
                if not entry.is_active:
                    dictionary.reactivate_entry(session, corp_id=corp_id, actor=actor, entry_id=entry.id,
                                                reason="imported")
                after = (entry.category, entry.phrase, entry.severity, entry.rule, entry.notes, entry.is_active)
                changed, unchanged = (changed + 1, unchanged) if after != before else (changed, unchanged + 1)
            except SiyuError as exc:
                raise InvalidInput("nothing was imported: row %(row)s: %(error)s", field="file",
                                   params={"row": number, "error": exc.message}) from None
    audit.record(session, corp_id=corp_id, actor=actor, action="wording_dictionary.imported",
                 target_type="corp", target_id=corp_id,
                 detail={"file": (filename or Path(path).name)[:120], "added": added, "changed": changed,
                         "unchanged": unchanged})
    return ImportResult(added=added, changed=changed, unchanged=unchanged)


def export_entries(session: Session, *, corp_id: int, actor: Principal | str, fmt: str, out: IO[bytes]) -> int:
    """The corp's own entries (active and deactivated) as CSV or XLSX; audited."""
    entries: list[WordingEntry] = dictionary.list_entries(session, corp_id=corp_id)
    count = tabular.write_table(out, fmt, HEADER, ([e.category, e.phrase, e.severity, e.rule, e.notes,
                                                    "yes" if e.is_active else "no"] for e in entries))
    audit.record(session, corp_id=corp_id, actor=actor, action="wording_dictionary.exported", target_type="corp",
                 target_id=corp_id, detail={"format": fmt, "rows": count})
    return count


def try_text(session: Session, *, corp_id: int, text: str):
    """The corp's dictionary in force on one text, as outbound content is reviewed: the verdict and
    each finding's rule, category, severity and span (offsets into `text`)."""
    from siyu.compliance.dictionary import load_dictionary
    from siyu.compliance.review import review_text

    text = (text or "").replace("\r\n", "\n")
    if not text.strip():
        raise InvalidInput("write a text to test", field="text")
    if len(text) > 4000:
        raise InvalidInput("the text is at most %(max)s characters", field="text", params={"max": 4000})
    return review_text(text, context="outbound", dictionary=load_dictionary(session, corp_id=corp_id))
