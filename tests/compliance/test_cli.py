"""`siyu compliance check`: JSON lines in, one verdict per line out; bad lines reported, not fatal."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from typer.testing import CliRunner

from siyu.compliance.cli import app

LINES = [
    json.dumps({"id": 1, "text": "本产品保本保收益，稳赚不赔！"}, ensure_ascii=False),
    json.dumps({"id": "b", "text": "本产品不保本。理财非存款，产品有风险，投资须谨慎"}, ensure_ascii=False),
    "this is not json",
    json.dumps({"id": 3}),
    "",
    json.dumps({"id": 4, "text": "加我微信 abc12345，电话 138 0013 8000 https://x.cn/a"}, ensure_ascii=False),
    json.dumps({"id": 5, "text": "详情见 https://m.mybank.com/p"}, ensure_ascii=False),
]


def _records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_check_a_file_in_a_subprocess(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(("\n".join(LINES) + "\n").encode() + b"\xff\xfe broken\n")
    proc = subprocess.run(
        [sys.executable, "-m", "siyu.compliance.cli", "check", str(path), "--context", "outbound",
         "--allow-domain", "mybank.com"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    out = _records(proc.stdout)
    assert [r.get("id") for r in out] == [1, "b", None, None, 4, 5, None]
    assert out[0]["verdict"] == "block"
    assert [(f["category"], f["match"], f["start"], f["end"]) for f in out[0]["findings"]] == [
        ("promise", "保本保收益", 3, 8), ("promise", "稳赚不赔", 9, 13)]
    assert set(out[0]["findings"][0]) == {"category", "rule", "start", "end", "match", "severity"}
    assert out[1] == {"id": "b", "verdict": "pass", "findings": []}
    assert out[2]["line"] == 3 and "JSON" in out[2]["error"]
    assert out[3]["line"] == 4 and "text" in out[3]["error"]
    assert out[4]["verdict"] == "block"
    assert {f["category"] for f in out[4]["findings"]} == {"off_platform", "wechat_id", "phone", "external_link"}
    assert out[5]["verdict"] == "pass"
    assert out[6]["line"] == 8 and "UTF-8" in out[6]["error"]
    assert "3 line(s)" in proc.stderr


def test_check_stdin_with_cli_runner():
    result = CliRunner().invoke(app, ["check", "--context", "archive"], input="\n".join(LINES[:2]) + "\n")
    assert result.exit_code == 0, result.output
    out = _records(result.stdout)
    assert [r["verdict"] for r in out] == ["block", "pass"]


def test_archive_context_turns_contact_sharing_into_review():
    line = json.dumps({"id": 9, "text": "我的vx: abc_12345"})
    out = _records(CliRunner().invoke(app, ["check", "--context", "archive"], input=line + "\n").stdout)
    assert out[0]["verdict"] == "review"
    out = _records(CliRunner().invoke(app, ["check"], input=line + "\n").stdout)
    assert out[0]["verdict"] == "block"


def test_missing_file_and_bad_context():
    runner = CliRunner()
    assert runner.invoke(app, ["check", "/nonexistent/file.jsonl"]).exit_code == 2
    assert runner.invoke(app, ["check", "--context", "inbound"], input="").exit_code == 2


def test_corp_dictionary_from_the_database(engine):
    from sqlalchemy.orm import Session

    from siyu.compliance import dictionary as svc
    from siyu.tenancy import service
    from siyu.tenancy.models import Corp

    slug = f"cli-{uuid.uuid4().hex[:8]}"
    with Session(engine) as s, s.begin():
        corp = service.create_corp(s, slug=slug, name="CLI 银行")
        svc.add_entry(s, corp_id=corp.id, actor="test", category="firm", phrase="独家秘方", severity="block",
                      rule="本机构规定")
    try:
        line = json.dumps({"id": 1, "text": "独家秘方理财"}, ensure_ascii=False) + "\n"
        runner = CliRunner()
        assert _records(runner.invoke(app, ["check"], input=line).stdout)[0]["verdict"] == "review"  # seed: 独家
        out = runner.invoke(app, ["check", "--corp", slug], input=line)
        assert out.exit_code == 0, out.output
        assert _records(out.stdout)[0]["verdict"] == "block"
        assert runner.invoke(app, ["check", "--corp", "no-such-corp"], input=line).exit_code == 2
    finally:
        from sqlalchemy import delete, select

        from siyu.compliance.models import TABLES

        with Session(engine) as s, s.begin():
            corp = s.scalars(select(Corp).where(Corp.slug == slug)).one()
            for table in TABLES:  # scoped by corp id without a foreign key: removed by hand
                s.execute(delete(table).where(table.c.scope_id == corp.id))
            s.delete(corp)
