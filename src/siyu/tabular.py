"""Spreadsheets in and out, a row at a time: CSV (UTF-8 with or without a byte-order mark, or
GB18030 as Chinese spreadsheet programs save it) and .xlsx (openpyxl's read-only and write-only
modes), with header mapping from Chinese or English column names.

Nothing here holds a whole file or all of its rows: readers yield rows, writers take an iterable.
Exported cells that a spreadsheet would run as a formula are written as text."""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from siyu.errors import InvalidInput

FORMATS = ("csv", "xlsx")
XLSX_MAGIC = b"PK\x03\x04"
_CHUNK = 1 << 20
_SPACE = re.compile(r"[\s_\-（）()：:*]+")


class TableError(InvalidInput):
    """The file as a whole cannot be read (format, encoding, header)."""


def detect_format(filename: str, head: bytes) -> str:
    """"xlsx" or "csv", from the content first (a zip is a workbook), then the name."""
    name = (filename or "").lower()
    if head.startswith(XLSX_MAGIC):
        if name.endswith((".xls", ".et")):
            raise TableError("save the sheet as .xlsx or .csv: the old .xls format is not read", field="file")
        return "xlsx"
    if name.endswith((".xlsx", ".xlsm")):
        raise TableError("the file is not a valid .xlsx workbook", field="file")
    if name.endswith(".xls") or head.startswith(b"\xd0\xcf\x11\xe0"):
        raise TableError("save the sheet as .xlsx or .csv: the old .xls format is not read", field="file")
    return "csv"


def _csv_encoding(path: Path) -> tuple[str, int]:
    """(encoding, line count) of a CSV file, read in chunks: UTF-8 (BOM or not) when every byte
    decodes as UTF-8, else GB18030 (which decodes any byte sequence GBK/GB2312 writers produce)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8, lines, first = True, 0, True
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            lines += chunk.count(b"\n")
            if first and chunk.startswith(codecs.BOM_UTF8):
                chunk = chunk[3:]
            first = False
            if utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
        if utf8:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8 = False
    return ("utf-8-sig" if utf8 else "gb18030"), lines


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone typed as a number: 13812345678.0
    return str(value).strip()


@dataclass
class Table:
    """An opened file: its header cells, a row-count estimate (for progress) and its rows."""

    format: str
    header: list[str]
    estimated_rows: int
    _rows: Iterator[tuple[int, list[str]]]
    _close: Any

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(row number as the spreadsheet shows it, the header being row 1; cells as text).
        Rows with no value at all are skipped."""
        return self._rows

    def close(self) -> None:
        self._close()

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_table(path: Path | str, *, filename: str = "") -> Table:
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(8)
    fmt = detect_format(filename or path.name, head)
    return _open_xlsx(path, filename=filename or path.name) if fmt == "xlsx" else _open_csv(path)


def _open_csv(path: Path) -> Table:
    encoding, lines = _csv_encoding(path)
    f = path.open("r", encoding=encoding, newline="")
    reader = csv.reader(f)
    try:
        header = [_cell(c) for c in next(reader)]
    except StopIteration:
        f.close()
        raise TableError("the file is empty", field="file") from None
    except csv.Error as exc:
        f.close()
        raise TableError("the file is not a readable CSV file: %(reason)s", field="file",
                         params={"reason": str(exc)[:100]}) from None

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for cells in reader:
                if any(c.strip() for c in cells):
                    yield reader.line_num, [c.strip() for c in cells]
        except csv.Error as exc:
            raise TableError("line %(line)s is not valid CSV: %(reason)s", field="file",
                             params={"line": reader.line_num, "reason": str(exc)[:100]}) from None

    return Table("csv", header, max(0, lines - 1), rows(), f.close)


RATIO_CHECK_FROM = 1024 * 1024  # small members (styles, a short sheet) compress far better; harmless


def check_zip_bomb(path: Path, *, filename: str) -> None:
    """Refuses a workbook whose zip members would inflate past the installation's caps
    (SIYU_XLSX_MAX_MEMBER_BYTES each, SIYU_XLSX_MAX_RATIO for members over 1 MiB,
    SIYU_XLSX_MAX_MEMBERS in all), judged from the zip directory before anything is inflated.
    Python's zipfile never inflates a member past the size its directory declares, so a member
    cannot lie its way past the check."""
    import zipfile

    from siyu.config import get_settings

    settings = get_settings()
    try:
        with zipfile.ZipFile(path) as z:
            members = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise TableError("the file is not a valid .xlsx workbook", field="file") from exc
    if len(members) > settings.xlsx_max_members:
        raise TableError("%(name)s has %(n)s parts, more than a workbook has: refused", field="file",
                         params={"name": filename, "n": len(members)})
    mib = settings.xlsx_max_member_bytes // (1024 * 1024)
    for m in members:
        if m.file_size > settings.xlsx_max_member_bytes:
            raise TableError("%(name)s would inflate to more than %(mib)s MB (its part %(part)s): refused; "
                             "split the file", field="file",
                             params={"name": filename, "mib": mib, "part": m.filename[:80]})
        if m.file_size > RATIO_CHECK_FROM and m.file_size > settings.xlsx_max_ratio * max(m.compress_size, 1):
            raise TableError("%(name)s is compressed %(ratio)s to 1 (its part %(part)s), far more than a real "
                             "spreadsheet: refused", field="file",
                             params={"name": filename, "ratio": m.file_size // max(m.compress_size, 1),
                                     "part": m.filename[:80]})


def _open_xlsx(path: Path, *, filename: str = "") -> Table:
    import zipfile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    check_zip_bomb(path, filename=filename or path.name)
    f = path.open("rb")  # a file object: openpyxl judges a path by its extension

    def close() -> None:
        wb.close()
        f.close()

    try:
        wb = load_workbook(f, read_only=True, data_only=True)
        ws = wb.worksheets[0]
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError, IndexError) as exc:
        f.close()
        raise TableError("the file is not a valid .xlsx workbook", field="file") from exc
    it = ws.iter_rows(values_only=True)
    try:
        header = [_cell(c) for c in next(it)]
    except StopIteration:
        close()
        raise TableError("the file is empty", field="file") from None
    total = max(0, (ws.max_row or 1) - 1)

    def rows() -> Iterator[tuple[int, list[str]]]:
        for n, values in enumerate(it, start=2):
            cells = [_cell(c) for c in values]
            if any(cells):
                yield n, cells

    return Table("xlsx", header, total, rows(), close)


# --- header mapping --------------------------------------------------------------------------------------

def _norm(text: str) -> str:
    return _SPACE.sub("", text.replace("\ufeff", "")).lower()


def map_header(header: Sequence[str], columns: Mapping[str, Sequence[str]], *, required: Sequence[str] = ()
               ) -> dict[str, int]:
    """{field: column index} from a header row, each field known by any of its names (Chinese or
    English; case, spaces, underscores and brackets ignored). A required field that is missing,
    or a field named twice, is refused naming the column."""
    lookup = {_norm(alias): name for name, aliases in columns.items() for alias in (name, *aliases)}
    found: dict[str, int] = {}
    for i, cell in enumerate(header):
        name = lookup.get(_norm(cell))
        if name is None:
            continue
        if name in found:
            raise TableError("the column %(column)s appears twice", field="file", params={"column": cell})
        found[name] = i
    missing = [f"{name} ({columns[name][0]})" if columns[name] else name for name in required if name not in found]
    if missing:
        raise TableError("the header lacks the column(s): %(columns)s", field="file",
                         params={"columns": ", ".join(missing)})
    return found


# --- writing ------------------------------------------------------------------------------------------------

# What a spreadsheet program takes as the start of a formula (or, TAB and CR, skips before one),
# in ASCII and full width (an input method gives ＝ ＋ － ＠, and some programs accept them).
FORMULA_STARTS = frozenset("=+-@\t\r＝＋－＠")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """A cell as exported: text a spreadsheet would take for a formula gets a leading apostrophe;
    numbers (and text that is a plain number, such as "-12.50") stay as they are. Every CSV and
    Excel file Siyu writes goes through this (tests/security/test_csv_formulas.py finds any that
    does not)."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A small CSV as text (no byte-order mark), every cell through `safe_cell`."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([safe_cell(c) for c in header])
    for row in rows:
        writer.writerow([safe_cell(c) for c in row])
    return out.getvalue()


def write_csv(out: IO[bytes], header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """UTF-8 with a byte-order mark (so that spreadsheet programs pick the right encoding); returns
    the number of data rows written."""
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=True)
    writer = csv.writer(text)
    writer.writerow(header)
    n = 0
    for row in rows:
        writer.writerow([safe_cell(c) for c in row])
        n += 1
    text.flush()
    text.detach()
    return n


def write_xlsx(out: IO[bytes], header: Sequence[str], rows: Iterable[Sequence[Any]], *, sheet: str = "Sheet1") -> int:
    """A workbook written row by row (openpyxl write-only mode); returns the number of data rows."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet[:31])
    ws.append(list(header))
    n = 0
    for row in rows:
        ws.append([safe_cell(c) for c in row])
        n += 1
    wb.save(out)
    return n


def write_table(out: IO[bytes], fmt: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    if fmt == "csv":
        return write_csv(out, header, rows)
    if fmt == "xlsx":
        return write_xlsx(out, header, rows)
    raise InvalidInput("choose csv or xlsx", field="format")


MEDIA_TYPES = {"csv": "text/csv; charset=utf-8",
               "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
