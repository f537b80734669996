"""Spreadsheet bombs: a small .xlsx whose members inflate to far more is refused, naming the file,
before the spreadsheet library opens it."""

from __future__ import annotations

import io
import zipfile

import pytest
from openpyxl import Workbook

from siyu import tabular
from siyu.config import get_settings


def _workbook_bytes(rows=3) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.append(["姓名", "手机"])
    for i in range(rows):
        ws.append([f"客户{i}", f"1380000{i:04d}"])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _bomb(tmp_path, *, member_bytes: int, extra_members: int = 0):
    """A real workbook whose first sheet is padded with whitespace that deflates to almost nothing."""
    source = zipfile.ZipFile(io.BytesIO(_workbook_bytes()))
    path = tmp_path / "名单.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"<sheetData>", b"<sheetData>" + b" " * member_bytes, 1)
            z.writestr(info.filename, data)
        for i in range(extra_members):
            z.writestr(f"customXml/item{i}.xml", b"<a/>")
    return path


def test_a_member_that_inflates_past_the_cap_is_refused_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(get_settings(), "xlsx_max_member_bytes", 2 * 1024 * 1024)
    path = _bomb(tmp_path, member_bytes=3 * 1024 * 1024)
    assert path.stat().st_size < 64 * 1024
    with pytest.raises(tabular.TableError) as refused:
        tabular.open_table(path, filename="名单.xlsx")
    assert refused.value.field == "file" and "名单.xlsx" in refused.value.message


def test_a_compression_ratio_no_real_sheet_has_is_refused(tmp_path):
    path = _bomb(tmp_path, member_bytes=8 * 1024 * 1024)  # under the member cap, ~1000:1
    with pytest.raises(tabular.TableError) as refused:
        tabular.open_table(path, filename="名单.xlsx")
    assert "名单.xlsx" in refused.value.message


def test_too_many_members_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(get_settings(), "xlsx_max_members", 50)
    path = _bomb(tmp_path, member_bytes=0, extra_members=60)
    with pytest.raises(tabular.TableError):
        tabular.open_table(path, filename="名单.xlsx")


def test_an_ordinary_workbook_still_opens(tmp_path):
    path = tmp_path / "ok.xlsx"
    path.write_bytes(_workbook_bytes(rows=2000))
    with tabular.open_table(path, filename="ok.xlsx") as table:
        assert table.header == ["姓名", "手机"] and sum(1 for _ in table.rows()) == 2000
