"""CSV and Excel formulas: one neutraliser for every file Siyu writes, and a scan that finds any
writer that does not use it."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from openpyxl import load_workbook

from siyu import tabular

SRC = Path(__file__).resolve().parents[2] / "src" / "siyu"
DANGEROUS = ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1+1", "\r=1+1", "＝1+1", "＋1", "－1+1", "＠SUM(A1)",
             "=HYPERLINK(\"http://x.example\",\"点我\")"]


@pytest.mark.parametrize("text", DANGEROUS)
def test_text_a_spreadsheet_would_run_is_written_as_text(text):
    assert tabular.safe_cell(text).startswith("'")


def test_real_numbers_stay_numbers():
    assert tabular.safe_cell(-12) == -12 and tabular.safe_cell(3.5) == 3.5
    assert tabular.safe_cell("-12.50") == "-12.50" and tabular.safe_cell("+8613800001111") == "+8613800001111"
    assert tabular.safe_cell("张伟") == "张伟" and tabular.safe_cell(None) == ""


def test_the_xlsx_writer_neutralises_too():
    out = io.BytesIO()
    tabular.write_xlsx(out, ["name"], [["=1+1"], ["＠A1"], [42]])
    ws = load_workbook(io.BytesIO(out.getvalue())).active
    values = [c.value for c in ws["A"]][1:]
    assert values == ["'=1+1", "'＠A1", 42]


def test_the_service_quality_csv_neutralises_formulas():
    from siyu.quality import service as quality

    row = {c: 0 for c in quality.CSV_COLUMNS}
    row.update(staff_userid="a1", name="=HYPERLINK(\"http://x.example\",\"奖励\")")
    totals = {c: 0 for c in quality.CSV_COLUMNS}
    text = quality.report_csv({"advisors": [row], "totals": totals}, headers=list(quality.CSV_COLUMNS))
    cells = list(csv.reader(io.StringIO(text)))
    assert cells[1][1].startswith("'=")


@pytest.mark.parametrize("value", ["\t=1+1", "\r=1+1", "＝1+1", "=1+1"])
def test_the_data_subject_export_neutralises_tab_cr_and_full_width(value):
    from siyu.privacy import service as privacy

    bundle = json.dumps({"data": {"customers": {"contact": [{"remark": value}]}}})
    cells = list(csv.reader(io.StringIO(privacy.bundle_csv(bundle))))
    assert cells[1][4].startswith("'")


def test_every_csv_and_excel_writer_goes_through_the_neutraliser():
    """Source scan: a csv writer or workbook made anywhere but siyu/tabular.py (benchmarks, which
    write synthetic input files, excepted) is a writer that may skip `safe_cell`."""
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if rel == "tabular.py" or rel.startswith("bench/"):
            continue
        text = path.read_text(encoding="utf-8")
        for n, line in enumerate(text.splitlines(), start=1):
            if re.search(r"csv\.(writer|DictWriter)\(|\bWorkbook\(", line):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == [], "write CSV and Excel through siyu.tabular:\n" + "\n".join(offenders)
