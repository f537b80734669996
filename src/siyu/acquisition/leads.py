"""Leads and outbound calls (线索与外呼): lists of the firm's existing customers imported from
Excel/CSV, called by their advisors, and invited to add them on WeCom through a personal code.

Import is staged. An upload is stored and parsed by a job (`acquisition.parse_lead_list`) row by
row into staging rows, a chunk per transaction, each row checked (name; phone: a mainland mobile;
segment; advisor: a staff member of the corp; duplicates within the file and against the corp's
leads, by the phone's keyed hash). The operator sees the preview (counts, first rows masked, every
bad row with its row number, column and reason) and commits: "import all" only when no row is bad,
else "skip the N bad rows". The commit (`acquisition.commit_lead_list`) copies the good staging
rows into leads in one statement of one transaction: it imports all of them or none.

Calls: an advisor's queue holds their callable leads (new, due for a retry, reached without a
decision), never a do-not-call one. Outcomes: reached, agreed (to add), refused, no answer, wrong
number, do not call. Retries (documented in docs/leads.md): a lead is called at most
MAX_ATTEMPTS times; no answer is retried RETRY_AFTER later when that is still within working
hours (09:00-18:00 Asia/Shanghai, Monday to Friday), else at 09:00 the next working day; reached
without a decision is called again the next working day. Wrong number and do not call end the
lead's calling (do not call for good). Every outcome is audited.

Conversion: each lead has a `state` ("ld" + base-36 list id + "-" + base-36 row number, at most
30 characters) used on its personal contact way; the `customer.added` event carrying that state
marks the lead converted, so the console shows call -> add conversion per advisor and per list."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import case, delete, func, insert, literal, select, update
from sqlalchemy.orm import Session

from siyu import pii, tabular
from siyu.acquisition import service
from siyu.acquisition.models import Lead, LeadCall, LeadList, LeadStagingRow
from siyu.acquisition.service import SHANGHAI
from siyu.config import get_settings
from siyu.db import UTCDateTime, utcnow
from siyu.errors import Conflict, Forbidden, InvalidInput, NotFound
from siyu.jobs.service import enqueue
from siyu.tenancy import audit
from siyu.tenancy.models import Staff
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import valid_id

OPERATORS = ("administrator", "operations")
IMPORT_QUEUE = "imports"  # long parses and commits do not hold up the default queue
STATE_PREFIX = "ld"
PHONE_HASH_KIND = "lead.phone"
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_ROWS = 200_000
CHUNK_ROWS = 2000
MAX_NAME, MAX_SEGMENT, MAX_SCRIPT = 60, 100, 5000
MAX_ATTEMPTS = 3
RETRY_AFTER = dt.timedelta(hours=2)
WORK_START, WORK_END = dt.time(9, 0), dt.time(18, 0)

# The columns of a lead file, each with the names it may have (Chinese and English).
COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("姓名", "客户姓名", "客户名称", "name", "customer name", "customer"),
    "phone": ("手机号", "手机号码", "手机", "电话", "联系电话", "phone", "mobile", "phone number", "mobile phone"),
    "segment": ("客群", "客户分层", "分层", "客户类型", "segment", "tier"),
    "advisor": ("顾问", "理财顾问", "客户经理", "理财经理", "所属顾问", "advisor", "assigned advisor", "manager"),
    "do_not_call": ("勿扰", "拒绝外呼", "禁止外呼", "do not call", "dnc"),
}
REQUIRED = ("name", "phone", "advisor")
OUTCOMES = ("reached", "agreed", "refused", "no_answer", "wrong_number", "do_not_call")
CALLABLE = ("new", "retry", "reached")
STATUSES = ("new", "retry", "reached", "agreed", "refused", "unreachable", "no_decision", "wrong_number",
            "do_not_call", "converted")
_PHONE_RE = re.compile(r"1[3-9]\d{9}")
_PHONE_NOISE = re.compile(r"[\s\-()（）]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_YES = {"1", "是", "y", "yes", "true", "勿扰", "拒绝"}
_NO = {"", "0", "否", "n", "no", "false"}
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


# --- rows ------------------------------------------------------------------------------------------------

class RowProblem(ValueError):
    def __init__(self, column: str, reason: str):
        super().__init__(reason)
        self.column, self.reason = column, reason


def normalize_phone(value: str) -> str:
    """A mainland China mobile number as 11 digits ("+86 138-1234-5678" -> "13812345678"), or
    RowProblem("phone", ...)."""
    text = _PHONE_NOISE.sub("", value or "")
    if text.startswith("+86"):
        text = text[3:]
    elif text.startswith("0086"):
        text = text[4:]
    elif len(text) == 13 and text.startswith("86"):
        text = text[2:]
    if not text:
        raise RowProblem("phone", "the phone number is missing")
    if not _PHONE_RE.fullmatch(text) or not text.isascii():
        raise RowProblem("phone", "not a mainland mobile number (11 digits starting with 13-19)")
    return text


def _plain(value: str, column: str, max_length: int, *, required: bool) -> str:
    value = (value or "").strip()
    if required and not value:
        raise RowProblem(column, "this column is empty")
    if len(value) > max_length:
        raise RowProblem(column, f"longer than {max_length} characters")
    if _CONTROL.search(value):
        raise RowProblem(column, "control characters are not allowed")
    return value


def _flag(value: str) -> bool:
    v = (value or "").strip().lower()
    if v in _YES:
        return True
    if v in _NO:
        return False
    raise RowProblem("do_not_call", "write 是 / 否 (yes / no)")


@dataclass
class ParsedRow:
    row_number: int
    name: str = ""
    phone: str = ""
    segment: str = ""
    advisor_staff_id: int | None = None
    do_not_call: bool = False
    errors: list[dict[str, str]] = field(default_factory=list)


def parse_row(row_number: int, cells: list[str], columns: dict[str, int], advisors: dict[str, int]) -> ParsedRow:
    """One data row checked column by column: every problem is kept, not only the first."""
    def cell(name: str) -> str:
        i = columns.get(name)
        return cells[i] if i is not None and i < len(cells) else ""

    row = ParsedRow(row_number)
    checks: list[tuple[str, Callable[[], Any]]] = [
        ("name", lambda: _plain(cell("name"), "name", MAX_NAME, required=True)),
        ("phone", lambda: normalize_phone(cell("phone"))),
        ("segment", lambda: _plain(cell("segment"), "segment", MAX_SEGMENT, required=False)),
        ("advisor_staff_id", lambda: _advisor(cell("advisor"), advisors)),
        ("do_not_call", lambda: _flag(cell("do_not_call"))),
    ]
    for attr, check in checks:
        try:
            setattr(row, attr, check())
        except RowProblem as problem:
            row.errors.append({"column": problem.column, "reason": problem.reason})
    if not row.phone:
        row.phone = ""
    row.name = row.name or cell("name")[:MAX_NAME]
    return row


def _advisor(value: str, advisors: dict[str, int]) -> int:
    key = (value or "").strip()
    if not key:
        raise RowProblem("advisor", "this column is empty")
    staff_id = advisors.get(key) or advisors.get(key.lower())
    if staff_id is None:
        raise RowProblem("advisor", "no active staff member of the corp has this WeCom id, login or name")
    return staff_id


def advisor_keys(session: Session, *, corp_id: int) -> dict[str, int]:
    """How a file may name an advisor: WeCom userid, login, or name when no two staff share it."""
    staff = session.execute(select(Staff.id, Staff.login, Staff.name, Staff.wecom_userid)
                            .where(Staff.corp_id == corp_id, Staff.is_active.is_(True))).all()
    names: dict[str, list[int]] = {}
    for s in staff:
        names.setdefault(s.name, []).append(s.id)
    keys = {name: ids[0] for name, ids in names.items() if len(ids) == 1}
    for s in staff:
        keys[s.login.lower()] = s.id
        if s.wecom_userid:
            keys[s.wecom_userid] = s.id
            keys[s.wecom_userid.lower()] = s.id
    return keys


def _b36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if not n:
            return out


def lead_state(list_id: int, row_number: int) -> str:
    """The state of a lead's add code: unique in the corp for ever (list ids are never reused)."""
    return f"{STATE_PREFIX}{_b36(list_id)}-{_b36(row_number)}"


def is_lead_state(state: str | None) -> bool:
    return bool(state) and state.startswith(STATE_PREFIX) and "-" in state


# --- lists: upload, parse, preview, commit ---------------------------------------------------------------

def upload_dir() -> Path:
    path = get_settings().data_dir / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def create_list(session: Session, *, corp_id: int, actor: Principal | str, name: str, file_name: str,
                stream: IO[bytes], script: str = "", enqueue_parse: bool = True) -> LeadList:
    """Store an uploaded lead file and queue its parse; nothing is read into leads yet."""
    name = service.text_field(name, field="name", max_length=MAX_NAME, required=True)
    script = service.text_field(script, field="script", max_length=MAX_SCRIPT)
    file_name = (file_name or "").strip()[-200:]
    target = upload_dir() / f"{uuid.uuid4().hex}.upload"
    size = 0
    try:
        with target.open("wb") as out:
            while chunk := stream.read(1 << 20):
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise InvalidInput("the file is larger than %(n)s MB", field="file",
                                       params={"n": MAX_UPLOAD_BYTES // (1024 * 1024)})
                out.write(chunk)
        if size == 0:
            raise InvalidInput("choose a file", field="file")
        with target.open("rb") as f:
            fmt = tabular.detect_format(file_name, f.read(8))
    except Exception:
        target.unlink(missing_ok=True)
        raise
    lead_list = LeadList(corp_id=corp_id, name=name, file_name=file_name, file_format=fmt, file_path=str(target),
                         status="uploaded", script=script,
                         created_by_staff_id=actor.staff_id if isinstance(actor, Principal) else None)
    session.add(lead_list)
    session.flush()
    if enqueue_parse:
        enqueue(session, name="acquisition.parse_lead_list", payload={"list_id": lead_list.id}, corp_id=corp_id,
                queue=IMPORT_QUEUE, idempotency_key=f"acquisition.parse_lead_list:{lead_list.id}")
    audit.record(session, corp_id=corp_id, actor=actor, action="acquisition.lead_list_uploaded",
                 target_type="lead_list", target_id=lead_list.id,
                 detail={"name": name, "file_name": file_name, "format": fmt, "bytes": size})
    return lead_list


def get_list(session: Session, *, corp_id: int, list_id: int) -> LeadList:
    lead_list = session.get(LeadList, list_id) if valid_id(list_id) else None
    if lead_list is None or lead_list.corp_id != corp_id:
        raise NotFound("no such lead list", field="list_id")
    return lead_list


def list_lists(session: Session, *, corp_id: int) -> list[LeadList]:
    return list(session.scalars(select(LeadList).where(LeadList.corp_id == corp_id, LeadList.status != "discarded")
                                .order_by(LeadList.id.desc()).limit(200)))


SessionOpener = Callable[[], AbstractContextManager[Session]]


def parse_list(open_session: SessionOpener, *, corp_id: int, list_id: int, chunk_rows: int = CHUNK_ROWS) -> None:
    """Read the list's file row by row into staging rows, `chunk_rows` per transaction (each opened
    with `open_session()`), with the progress updated after each chunk. A re-run starts over."""
    with open_session() as s:
        lead_list = get_list(s, corp_id=corp_id, list_id=list_id)
        if lead_list.status not in ("uploaded", "parsing"):
            return
        path, file_name = Path(lead_list.file_path), lead_list.file_name
        s.execute(delete(LeadStagingRow).where(LeadStagingRow.list_id == list_id))
        lead_list.status, lead_list.rows_parsed, lead_list.good_rows, lead_list.bad_rows = "parsing", 0, 0, 0
        advisors = advisor_keys(s, corp_id=corp_id)
    try:
        table = tabular.open_table(path, filename=file_name)
    except (tabular.TableError, OSError) as exc:
        _fail(open_session, corp_id=corp_id, list_id=list_id, detail=str(exc))
        return
    with table:
        try:
            columns = tabular.map_header(table.header, COLUMNS, required=REQUIRED)
        except tabular.TableError as exc:
            _fail(open_session, corp_id=corp_id, list_id=list_id, detail=_describe(exc))
            return
        with open_session() as s:
            get_list(s, corp_id=corp_id, list_id=list_id).estimated_rows = table.estimated_rows
        batch: list[ParsedRow] = []
        parsed = 0
        try:
            for row_number, cells in table.rows():
                batch.append(parse_row(row_number, cells, columns, advisors))
                parsed += 1
                if parsed > MAX_ROWS:
                    raise tabular.TableError("a list has at most %(n)s rows: split the file", field="file",
                                             params={"n": MAX_ROWS})
                if len(batch) >= chunk_rows:
                    _stage(open_session, corp_id=corp_id, list_id=list_id, rows=batch)
                    batch = []
            _stage(open_session, corp_id=corp_id, list_id=list_id, rows=batch, last=True)
        except tabular.TableError as exc:
            _fail(open_session, corp_id=corp_id, list_id=list_id, detail=_describe(exc))


def _describe(exc: InvalidInput) -> str:
    params = exc.params or {}
    try:
        return (str(exc) % params)[:500] if params else str(exc)[:500]
    except (KeyError, TypeError, ValueError):
        return str(exc)[:500]


def _fail(open_session: SessionOpener, *, corp_id: int, list_id: int, detail: str) -> None:
    with open_session() as s:
        s.execute(delete(LeadStagingRow).where(LeadStagingRow.list_id == list_id))
        lead_list = get_list(s, corp_id=corp_id, list_id=list_id)
        lead_list.status, lead_list.detail, lead_list.updated_at = "failed", detail[:500], utcnow()
        lead_list.rows_parsed = lead_list.good_rows = lead_list.bad_rows = 0


def _stage(open_session: SessionOpener, *, corp_id: int, list_id: int, rows: list[ParsedRow],
           last: bool = False) -> None:
    """Check one chunk for duplicates (within it, against the list's earlier rows and against the
    corp's leads) and write it as staging rows, with the list's progress, in one transaction."""
    hashes = {r.row_number: pii.lookup_hash(r.phone, kind=PHONE_HASH_KIND) for r in rows if r.phone}
    with open_session() as s:
        wanted = list(set(hashes.values()))
        earlier: dict[str, int] = {}
        existing: set[str] = set()
        for i in range(0, len(wanted), 500):
            part = wanted[i:i + 500]
            earlier.update(s.execute(select(LeadStagingRow.phone_hash, func.min(LeadStagingRow.row_number))
                                     .where(LeadStagingRow.list_id == list_id, LeadStagingRow.phone_hash.in_(part))
                                     .group_by(LeadStagingRow.phone_hash)).all())
            existing.update(s.scalars(select(Lead.phone_hash).where(Lead.corp_id == corp_id,
                                                                    Lead.phone_hash.in_(part))))
        values, good, bad = [], 0, 0
        for r in rows:
            h = hashes.get(r.row_number)
            if h is not None:
                if h in existing:
                    r.errors.append({"column": "phone", "reason": "already a lead of an earlier list"})
                elif h in earlier:
                    r.errors.append({"column": "phone", "reason": f"the same phone as row {earlier[h]}"})
                else:
                    earlier[h] = r.row_number
            good, bad = (good + 1, bad) if not r.errors else (good, bad + 1)
            values.append({"corp_id": corp_id, "list_id": list_id, "row_number": r.row_number, "name": r.name or None,
                           "phone": r.phone or None, "phone_hash": h, "segment": r.segment[:MAX_SEGMENT],
                           "advisor_staff_id": r.advisor_staff_id, "do_not_call": r.do_not_call,
                           "state": lead_state(list_id, r.row_number), "is_bad": bool(r.errors),
                           "errors": r.errors or None})
        if values:
            s.execute(insert(LeadStagingRow.__table__), values)  # Core executemany: no ORM bookkeeping
        s.execute(update(LeadList).where(LeadList.id == list_id).values(
            rows_parsed=LeadList.rows_parsed + len(rows), good_rows=LeadList.good_rows + good,
            bad_rows=LeadList.bad_rows + bad, updated_at=utcnow(),
            **({"status": "parsed"} if last else {})))


@dataclass
class Preview:
    lead_list: LeadList
    first_rows: list[dict]
    bad_rows: list[dict]
    more_bad: int


def preview(session: Session, *, corp_id: int, list_id: int, first: int = 10, bad_limit: int = 1000) -> Preview:
    """What the operator checks before committing: the first rows (masked) and the bad rows."""
    lead_list = get_list(session, corp_id=corp_id, list_id=list_id)
    names = dict(session.execute(select(Staff.id, Staff.name).where(Staff.corp_id == corp_id)).all())
    base = select(LeadStagingRow).where(LeadStagingRow.list_id == list_id).order_by(LeadStagingRow.row_number)
    first_rows = [_staged(r, names) for r in session.scalars(base.where(LeadStagingRow.is_bad.is_(False))
                                                             .limit(first))]
    bad = [_staged(r, names) for r in session.scalars(base.where(LeadStagingRow.is_bad.is_(True)).limit(bad_limit))]
    return Preview(lead_list, first_rows, bad, max(0, lead_list.bad_rows - len(bad)))


def _staged(r: LeadStagingRow, names: dict[int, str]) -> dict:
    return {"row_number": r.row_number, "name": pii.mask_name(r.name), "phone": pii.mask_phone(r.phone),
            "segment": r.segment, "advisor": names.get(r.advisor_staff_id or 0, ""), "do_not_call": r.do_not_call,
            "errors": r.errors or []}


def bad_rows(session: Session, *, corp_id: int, list_id: int) -> Iterator[tuple[int, str, str]]:
    """Every problem of the list: (row number, column, reason), in row order, read in pages."""
    get_list(session, corp_id=corp_id, list_id=list_id)
    after = 0
    while True:
        rows = session.execute(select(LeadStagingRow.row_number, LeadStagingRow.errors)
                               .where(LeadStagingRow.list_id == list_id, LeadStagingRow.is_bad.is_(True),
                                      LeadStagingRow.row_number > after)
                               .order_by(LeadStagingRow.row_number).limit(1000)).all()
        if not rows:
            return
        for number, errors in rows:
            for e in errors or []:
                yield number, e["column"], e["reason"]
        after = rows[-1][0]


def request_commit(session: Session, *, corp_id: int, actor: Principal | str, list_id: int, skip_bad: bool,
                   enqueue_commit: bool = True) -> LeadList:
    """The operator's choice after the preview: all rows (only when none is bad) or the good ones."""
    lead_list = get_list(session, corp_id=corp_id, list_id=list_id)
    if lead_list.status != "parsed":
        raise Conflict("the list is not waiting for a commit", field="list_id")
    if lead_list.bad_rows and not skip_bad:
        raise InvalidInput("%(n)s rows have errors: correct the file and upload it again, or skip them",
                           field="mode", params={"n": lead_list.bad_rows})
    if not lead_list.good_rows:
        raise InvalidInput("the list has no row that can be imported", field="mode")
    lead_list.status, lead_list.skip_bad, lead_list.updated_at = "committing", skip_bad, utcnow()
    if enqueue_commit:
        enqueue(session, name="acquisition.commit_lead_list", payload={"list_id": list_id}, corp_id=corp_id,
                queue=IMPORT_QUEUE, idempotency_key=f"acquisition.commit_lead_list:{list_id}:{lead_list.bad_rows}")
    audit.record(session, corp_id=corp_id, actor=actor, action="acquisition.lead_list_commit_requested",
                 target_type="lead_list", target_id=list_id,
                 detail={"good_rows": lead_list.good_rows, "skipped_bad_rows": lead_list.bad_rows if skip_bad else 0})
    return lead_list


def commit_list(session: Session, *, corp_id: int, list_id: int) -> int:
    """Copy the good staging rows into leads, all in the caller's transaction; returns how many.

    Rows whose phone became a lead since the preview (another list committed meanwhile) make the
    list bad again: it goes back to the preview with those rows marked, and nothing is imported."""
    lead_list = get_list(session, corp_id=corp_id, list_id=list_id)
    if lead_list.status != "committing":
        return 0
    good = (LeadStagingRow.list_id == list_id, LeadStagingRow.is_bad.is_(False))
    clash = select(LeadStagingRow.id).where(*good, LeadStagingRow.phone_hash.in_(
        select(Lead.phone_hash).where(Lead.corp_id == corp_id)))
    clashing = list(session.scalars(clash))
    if clashing:
        session.execute(update(LeadStagingRow).where(LeadStagingRow.id.in_(clashing)).values(
            is_bad=True, errors=[{"column": "phone", "reason": "already a lead of an earlier list"}]))
        lead_list.good_rows -= len(clashing)
        lead_list.bad_rows += len(clashing)
        lead_list.status, lead_list.updated_at = "parsed", utcnow()
        lead_list.detail = "rows became duplicates of another list committed meanwhile"
        return 0
    if lead_list.bad_rows and not lead_list.skip_bad:
        lead_list.status = "parsed"
        return 0
    now = utcnow()
    stamp = literal(now, type_=UTCDateTime())
    columns = ["corp_id", "list_id", "row_number", "name", "phone", "phone_hash", "segment", "advisor_staff_id",
               "do_not_call", "status", "attempts", "state", "code_status", "created_at", "updated_at"]
    source = select(
        LeadStagingRow.corp_id, LeadStagingRow.list_id, LeadStagingRow.row_number, LeadStagingRow.name,
        LeadStagingRow.phone, LeadStagingRow.phone_hash, LeadStagingRow.segment, LeadStagingRow.advisor_staff_id,
        LeadStagingRow.do_not_call,
        case((LeadStagingRow.do_not_call.is_(True), literal("do_not_call")), else_=literal("new")),
        literal(0), LeadStagingRow.state, literal("none"), stamp, stamp,
    ).where(*good).order_by(LeadStagingRow.row_number)
    # Counted, not taken from the INSERT's rowcount: PostgreSQL's driver reports -1 for INSERT … SELECT.
    n = session.scalar(select(func.count()).select_from(LeadStagingRow).where(*good))
    session.execute(insert(Lead.__table__).from_select(columns, source))
    session.execute(delete(LeadStagingRow).where(LeadStagingRow.list_id == list_id))
    lead_list.status, lead_list.imported_rows, lead_list.committed_at, lead_list.updated_at = "committed", n, now, now
    lead_list.detail = ""
    audit.record(session, corp_id=corp_id, actor="system", action="acquisition.lead_list_committed",
                 target_type="lead_list", target_id=list_id,
                 detail={"imported": n, "skipped_bad_rows": lead_list.bad_rows if lead_list.skip_bad else 0})
    with_file = Path(lead_list.file_path) if lead_list.file_path else None
    lead_list.file_path = ""
    if with_file is not None:
        with_file.unlink(missing_ok=True)
    return n


def discard_list(session: Session, *, corp_id: int, actor: Principal | str, list_id: int) -> LeadList:
    lead_list = get_list(session, corp_id=corp_id, list_id=list_id)
    if lead_list.status in ("committed", "committing"):
        raise Conflict("an imported list cannot be discarded", field="list_id")
    session.execute(delete(LeadStagingRow).where(LeadStagingRow.list_id == list_id))
    if lead_list.file_path:
        Path(lead_list.file_path).unlink(missing_ok=True)
    lead_list.status, lead_list.file_path, lead_list.updated_at = "discarded", "", utcnow()
    audit.record(session, corp_id=corp_id, actor=actor, action="acquisition.lead_list_discarded",
                 target_type="lead_list", target_id=list_id, detail={"name": lead_list.name})
    return lead_list


def save_script(session: Session, *, corp_id: int, actor: Principal | str, list_id: int, script: str) -> LeadList:
    lead_list = get_list(session, corp_id=corp_id, list_id=list_id)
    lead_list.script = service.text_field(script, field="script", max_length=MAX_SCRIPT)
    lead_list.updated_at = utcnow()
    audit.record(session, corp_id=corp_id, actor=actor, action="acquisition.lead_script_changed",
                 target_type="lead_list", target_id=list_id, detail={"length": len(lead_list.script)})
    return lead_list


def copy_upload(source: Path, *, suffix: str = ".upload") -> Path:
    """A copy of a file in the upload folder (benchmarks and demos hand files in this way)."""
    target = upload_dir() / f"{uuid.uuid4().hex}{suffix}"
    shutil.copyfile(source, target)
    return target


# --- leads and calls ------------------------------------------------------------------------------------

def _is_operator(principal: Principal) -> bool:
    return principal.has_role(*OPERATORS)


def get_lead(session: Session, *, principal: Principal, lead_id: int) -> Lead:
    """A lead the caller may work on: operators any of the corp's, an advisor their own."""
    lead = session.get(Lead, lead_id) if valid_id(lead_id) else None
    if lead is None or lead.corp_id != principal.corp_id:
        raise NotFound("no such lead", field="lead_id")
    if not _is_operator(principal) and (principal.staff_id is None or lead.advisor_staff_id != principal.staff_id):
        raise NotFound("no such lead", field="lead_id")
    return lead


def queue(session: Session, *, corp_id: int, staff_id: int, now: dt.datetime | None = None, limit: int = 100
          ) -> tuple[list[Lead], list[Lead]]:
    """An advisor's calls: (due now, scheduled later), do-not-call leads never among them."""
    now = now or utcnow()
    base = select(Lead).where(Lead.corp_id == corp_id, Lead.advisor_staff_id == staff_id,
                              Lead.status.in_(CALLABLE), Lead.do_not_call.is_(False))
    due = list(session.scalars(base.where((Lead.next_call_at.is_(None)) | (Lead.next_call_at <= now))
                               .order_by(Lead.next_call_at.is_not(None), Lead.next_call_at, Lead.id).limit(limit)))
    later = list(session.scalars(base.where(Lead.next_call_at > now).order_by(Lead.next_call_at, Lead.id)
                                 .limit(limit)))
    return due, later


def _working(at: dt.datetime) -> bool:
    local = at.astimezone(SHANGHAI)
    return local.weekday() < 5 and WORK_START <= local.time() < WORK_END


def next_working_start(at: dt.datetime) -> dt.datetime:
    """09:00 Asia/Shanghai of the next working day (Monday to Friday) after `at`'s day."""
    day = at.astimezone(SHANGHAI).date() + dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, WORK_START, tzinfo=SHANGHAI).astimezone(dt.UTC)


def retry_at(now: dt.datetime) -> dt.datetime:
    """When an unanswered lead is called again: RETRY_AFTER later within working hours, else at the
    start of the next working day (also when `now` itself is before opening on a working day)."""
    later = now + RETRY_AFTER
    if _working(later) and later.astimezone(SHANGHAI).date() == now.astimezone(SHANGHAI).date():
        return later
    local = now.astimezone(SHANGHAI)
    if local.weekday() < 5 and local.time() < WORK_START:
        return dt.datetime.combine(local.date(), WORK_START, tzinfo=SHANGHAI).astimezone(dt.UTC)
    return next_working_start(now)


def record_outcome(session: Session, *, principal: Principal, lead_id: int, outcome: str, note: str = "",
                   now: dt.datetime | None = None) -> Lead:
    if outcome not in OUTCOMES:
        raise InvalidInput("choose one of the outcomes", field="outcome")
    note = service.text_field(note, field="note", max_length=500)
    lead = get_lead(session, principal=principal, lead_id=lead_id)
    if lead.do_not_call:
        raise Conflict("this customer asked not to be called", field="outcome")
    if lead.status not in CALLABLE:
        raise Conflict("this lead is no longer being called", field="outcome")
    now = now or utcnow()
    lead.attempts += 1
    lead.last_outcome, lead.updated_at, lead.next_call_at = outcome, now, None
    if outcome in ("reached", "agreed", "refused") and lead.reached_at is None:
        lead.reached_at = now
    if outcome == "no_answer":
        if lead.attempts < MAX_ATTEMPTS:
            lead.status, lead.next_call_at = "retry", retry_at(now)
        else:
            lead.status = "unreachable"
    elif outcome == "reached":
        if lead.attempts < MAX_ATTEMPTS:
            lead.status, lead.next_call_at = "reached", next_working_start(now)
        else:
            lead.status = "no_decision"
    elif outcome == "agreed":
        lead.status, lead.agreed_at = "agreed", now
    elif outcome == "do_not_call":
        lead.status, lead.do_not_call = "do_not_call", True
    else:  # refused, wrong_number
        lead.status = outcome
    session.add(LeadCall(corp_id=lead.corp_id, lead_id=lead.id, staff_id=principal.staff_id, outcome=outcome,
                         note=note, at=now))
    session.flush()
    audit.record(session, corp_id=lead.corp_id, actor=principal, action="acquisition.lead_called",
                 target_type="lead", target_id=lead.id,
                 detail={"outcome": outcome, "attempt": lead.attempts, "status": lead.status})
    return lead


def calls_of(session: Session, *, lead: Lead) -> list[LeadCall]:
    return list(session.scalars(select(LeadCall).where(LeadCall.lead_id == lead.id).order_by(LeadCall.at.desc())))


def reveal_phone(session: Session, *, principal: Principal, lead_id: int, ip: str | None = None) -> str:
    """The phone in clear, to dial; audited."""
    lead = get_lead(session, principal=principal, lead_id=lead_id)
    if lead.do_not_call:
        raise Conflict("this customer asked not to be called", field="lead_id")
    audit.record(session, corp_id=lead.corp_id, actor=principal, action="acquisition.lead_phone_unmasked",
                 target_type="lead", target_id=lead.id, detail={"phone": pii.mask_phone(lead.phone)}, ip=ip)
    return lead.phone


def request_add_code(session: Session, *, principal: Principal, lead_id: int) -> Lead:
    """Create the lead's personal contact way at WeCom (a job), offering only its advisor."""
    lead = get_lead(session, principal=principal, lead_id=lead_id)
    if lead.code_status in ("pending", "active"):
        return lead
    staff = session.get(Staff, lead.advisor_staff_id) if lead.advisor_staff_id else None
    if staff is None or not staff.wecom_userid or not staff.is_active:
        raise InvalidInput("the lead's advisor is not an active WeCom member", field="lead_id")
    lead.code_status, lead.updated_at = "pending", utcnow()
    session.flush()
    enqueue(session, name="acquisition.lead_code", payload={"lead_id": lead.id}, corp_id=lead.corp_id, queue="wecom",
            idempotency_key=f"acquisition.lead_code:{lead.id}:{lead.updated_at.timestamp():.0f}")
    audit.record(session, corp_id=lead.corp_id, actor=principal, action="acquisition.lead_code_requested",
                 target_type="lead", target_id=lead.id, detail={"state": lead.state})
    return lead


def lead_by_state(session: Session, *, corp_id: int, state: str | None) -> Lead | None:
    if not is_lead_state(state):
        return None
    return session.scalar(select(Lead).where(Lead.corp_id == corp_id, Lead.state == state))


def mark_converted(session: Session, *, corp_id: int, state: str | None, external_userid: str,
                   at: dt.datetime) -> Lead | None:
    """The customer added through the lead's code: the lead is converted (once; the first add counts)."""
    lead = lead_by_state(session, corp_id=corp_id, state=state)
    if lead is None or lead.converted_at is not None:
        return lead
    lead.converted_at, lead.external_userid, lead.status, lead.updated_at = at, external_userid[:64], "converted", at
    lead.next_call_at = None
    return lead


# --- lists of leads, export, conversion -----------------------------------------------------------------

@dataclass(frozen=True)
class LeadFilters:
    list_id: int | None = None
    staff_id: int | None = None
    status: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in (("list_id", self.list_id), ("staff_id", self.staff_id), ("status", self.status))
                if v is not None}


def make_filters(*, list_id: str = "", staff_id: str = "", status: str = "") -> LeadFilters:
    def number(value: str, field: str) -> int | None:
        value = (value or "").strip()
        if not value:
            return None
        if not value.isdigit() or not valid_id(int(value)):
            raise InvalidInput("not a valid id", field=field)
        return int(value)

    status = (status or "").strip()
    if status and status not in STATUSES:
        raise InvalidInput("unknown status", field="status")
    return LeadFilters(number(list_id, "list_id"), number(staff_id, "staff_id"), status or None)


def _lead_conditions(principal: Principal, filters: LeadFilters) -> list:
    conds = [Lead.corp_id == principal.corp_id]
    if not _is_operator(principal):
        conds.append(Lead.advisor_staff_id == (principal.staff_id or 0))
    if filters.list_id is not None:
        conds.append(Lead.list_id == filters.list_id)
    if filters.staff_id is not None:
        conds.append(Lead.advisor_staff_id == filters.staff_id)
    if filters.status is not None:
        conds.append(Lead.status == filters.status)
    return conds


def list_leads(session: Session, *, principal: Principal, filters: LeadFilters, limit: int = 100) -> list[Lead]:
    return list(session.scalars(select(Lead).where(*_lead_conditions(principal, filters)).order_by(Lead.id)
                                .limit(limit)))


def count_leads(session: Session, *, principal: Principal, filters: LeadFilters) -> int:
    return session.scalar(select(func.count()).select_from(Lead).where(*_lead_conditions(principal, filters))) or 0


EXPORT_HEADER = ("行号 row", "姓名 name", "手机 phone", "客群 segment", "顾问 advisor", "名单 list", "状态 status",
                 "外呼次数 attempts", "已添加 added")
MAX_EXPORT_ROWS = 200_000


def export_leads(session: Session, *, principal: Principal, filters: LeadFilters, fmt: str, out: IO[bytes],
                 ip: str | None = None) -> int:
    """The leads of the filter as CSV or XLSX, names and phones masked, read in pages; audited
    with the filter and the row count."""
    if fmt not in tabular.FORMATS:
        raise InvalidInput("choose csv or xlsx", field="format")
    corp_id = principal.corp_id
    staff = dict(session.execute(select(Staff.id, Staff.name).where(Staff.corp_id == corp_id)).all())
    lists = dict(session.execute(select(LeadList.id, LeadList.name).where(LeadList.corp_id == corp_id))
                 .all())
    conds = _lead_conditions(principal, filters)

    def rows() -> Iterator[list]:
        after, n = 0, 0
        while n < MAX_EXPORT_ROWS:
            page = session.execute(select(Lead.id, Lead.row_number, Lead.name, Lead.phone, Lead.segment,
                                          Lead.advisor_staff_id, Lead.list_id, Lead.status, Lead.attempts,
                                          Lead.converted_at)
                                   .where(*conds, Lead.id > after).order_by(Lead.id).limit(1000)).all()
            if not page:
                return
            for r in page:
                n += 1
                yield [r.row_number, pii.mask_name(r.name), pii.mask_phone(r.phone), r.segment,
                       staff.get(r.advisor_staff_id or 0, ""), lists.get(r.list_id, ""), r.status, r.attempts,
                       "是" if r.converted_at else ""]
            after = page[-1].id

    count = tabular.write_table(out, fmt, EXPORT_HEADER, rows())
    audit.record(session, corp_id=corp_id, actor=principal, action="acquisition.leads_exported",
                 target_type="lead_list", target_id=filters.list_id,
                 detail={"format": fmt, "filter": filters.as_dict(), "rows": count}, ip=ip)
    return count


@dataclass
class Funnel:
    key: int
    label: str
    leads: int = 0
    called: int = 0
    reached: int = 0
    agreed: int = 0
    added: int = 0

    @staticmethod
    def _pct(a: int, b: int) -> str:
        return f"{100 * a / b:.1f}%" if b else "—"

    @property
    def reach_rate(self) -> str:
        return self._pct(self.reached, self.called)

    @property
    def agree_rate(self) -> str:
        return self._pct(self.agreed, self.reached)

    @property
    def add_rate(self) -> str:
        """Call -> add conversion: added among the called."""
        return self._pct(self.added, self.called)


def conversion(session: Session, *, corp_id: int) -> dict[str, list[Funnel]]:
    """Leads, called, reached, agreed and added, per advisor and per list, in two grouped queries."""
    def counts(group) -> list:
        return session.execute(select(
            group, func.count(), func.coalesce(func.sum(case((Lead.attempts > 0, 1), else_=0)), 0),
            func.count(Lead.reached_at), func.count(Lead.agreed_at), func.count(Lead.converted_at))
            .where(Lead.corp_id == corp_id).group_by(group).order_by(group)).all()

    staff = dict(session.execute(select(Staff.id, Staff.name).where(Staff.corp_id == corp_id)).all())
    lists = dict(session.execute(select(LeadList.id, LeadList.name).where(LeadList.corp_id == corp_id))
                 .all())
    by_advisor = [Funnel(k or 0, staff.get(k or 0, "—"), n, int(c), r, a, d)
                  for k, n, c, r, a, d in counts(Lead.advisor_staff_id)]
    by_list = [Funnel(k, lists.get(k, "—"), n, int(c), r, a, d) for k, n, c, r, a, d in counts(Lead.list_id)]
    return {"by_advisor": by_advisor, "by_list": by_list}


def require_lead_worker(principal: Principal) -> None:
    if not (_is_operator(principal) or principal.has_role("advisor")):
        raise Forbidden("not allowed")
