"""`siyu compliance archive-import FILE --corp SLUG`: bad lines named by number, the rest stored once."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import func, select
from typer.testing import CliRunner

from siyu.compliance.cli import app
from siyu.compliance.models import ArchiveAlert, ArchiveMessage
from siyu.db import session_scope
from siyu.tenancy import service as tenancy

MS = 1_767_225_600_000


def _line(msgid, text, sender="zhangsan"):
    return json.dumps({"msgid": msgid, "action": "send", "from": sender, "tolist": ["wmCustomer0001"], "roomid": "",
                       "msgtime": MS, "msgtype": "text", "text": {"content": text}}, ensure_ascii=False)


def test_archive_import(tmp_path, database_url):
    slug = "imp-" + uuid.uuid4().hex[:8]
    with session_scope() as s:
        corp_id = tenancy.create_corp(s, slug=slug, name="导入银行").id
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join([_line("m1", "这款产品保本保息"), "{oops", _line("m2", "您好"),
                               json.dumps({"msgid": "m3", "from": "zhangsan", "msgtime": MS, "msgtype": "text"}),
                               _line("m1", "这款产品保本保息")]) + "\n", encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["archive-import", str(path), "--corp", slug])
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"lines": 5, "stored": 2, "duplicates": 1, "skipped": 0, "alerts": 1, "rejected": 2}
    assert "line 2: not JSON" in result.stderr and "line 4: text: text is missing" in result.stderr
    again = runner.invoke(app, ["archive-import", str(path), "--corp", slug])
    assert json.loads(again.stdout.strip().splitlines()[-1])["stored"] == 0
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(ArchiveMessage).where(ArchiveMessage.corp_id == corp_id)) == 2
        assert s.scalar(select(func.count()).select_from(ArchiveAlert).where(ArchiveAlert.corp_id == corp_id)) == 1
    assert runner.invoke(app, ["archive-import", str(path), "--corp", "no-such-corp"]).exit_code == 2
