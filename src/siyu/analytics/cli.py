"""`siyu analytics …` (import, sync, snapshot) and `siyu report …` (funnel, retention, reinvestment,
cac, roi) on any engine. Without `--corp` the reports read the events loaded by `siyu analytics
import` without a corp."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(help="Analytics events: import, sync to the analytical engine, Parquet snapshots.",
                  no_args_is_help=True)
report_app = typer.Typer(help="Analytics reports (funnel, retention, reinvestment, cac, roi).", no_args_is_help=True)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _corp_id(code: str | None) -> int | None:
    """The id of the corp whose code (its slug) is `code`; None without one (the imported data)."""
    if code is None:
        return None
    from sqlalchemy import select

    from siyu.db import session_scope
    from siyu.tenancy.models import Corp

    with session_scope() as session:
        corp_id = session.scalar(select(Corp.id).where(Corp.slug == code))
    if corp_id is None:
        _fail(f"--corp: no corp with the code {code!r}")
    return corp_id


def _date(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        _fail(f"{option}: not a date (YYYY-MM-DD): {value!r}")
    return None


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="JSON lines: customer_id, type, ts, optional channel, campaign, ..."),
    corp: str = typer.Option(None, "--corp", help="the corp's code; without it: the imported data set"),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="load the good lines of a file with bad ones"),
) -> None:
    """Load events exported by another system; every bad line is reported, and nothing is loaded
    from a file with one unless --skip-bad."""
    from siyu.analytics.importer import MAX_REPORTED, import_file
    from siyu.db import session_factory

    if not file.is_file():
        _fail(f"{file}: no such file")
    corp_id = _corp_id(corp)
    with session_factory()() as session:
        result = import_file(session, file, corp_id=corp_id, skip_bad=skip_bad)
    for line in result.errors:
        typer.echo(line, err=True)
    if result.bad > len(result.errors):
        typer.echo(f"... and {result.bad - len(result.errors)} more bad lines (the first {MAX_REPORTED} shown)",
                   err=True)
    if result.bad and not skip_bad:
        _fail(f"{result.bad} bad line(s) of {result.lines}: nothing loaded (fix them, or --skip-bad)", 1)
    typer.echo(f"{result.loaded} events loaded, {result.duplicates} already there, {result.bad} bad lines skipped "
               f"({result.lines} lines)")


@app.command("sync")
def sync(engine: str = typer.Option("duckdb", "--engine", help="duckdb or clickhouse")) -> None:
    """Copy new events to the analytical engine now (reports do it too, before they run)."""
    from siyu.analytics.engines import EngineError, open_engine

    if engine not in ("duckdb", "clickhouse"):
        _fail("--engine: duckdb or clickhouse")
    try:
        with open_engine(engine, prepare=False) as eng:
            result = eng.sync()  # type: ignore[attr-defined]
    except EngineError as exc:
        _fail(str(exc), 1)
    typer.echo(f"{result.copied} events copied; the engine holds events up to id {result.last_id}")


@app.command("snapshot")
def snapshot(out: Path = typer.Option(..., "--out", help="directory for the Parquet files")) -> None:
    """Write the events and spend as Parquet (analytics_event.parquet, analytics_spend.parquet);
    `siyu report … --snapshot DIR` reads them."""
    from siyu.analytics.engines import DuckDBEngine

    with DuckDBEngine(sa_engine=_sa_engine()) as eng:
        counts = eng.snapshot(out)
    typer.echo(f"{counts['analytics_event']} events, {counts['analytics_spend']} spend entries written to {out}")


def _sa_engine():
    from siyu import db

    return db.get_engine()


# --- reports ----------------------------------------------------------------------------------------

_ENGINE = typer.Option("duckdb", "--engine", help="duckdb, clickhouse or sql")
_CORP = typer.Option(None, "--corp", help="the corp's code; without it: the imported data set")
_FROM = typer.Option(None, "--from", help="first day (YYYY-MM-DD, Asia/Shanghai)")
_TO = typer.Option(None, "--to", help="last day, included")
_CHANNEL = typer.Option(None, "--channel", help="only customers whose first add was in this channel")
_CAMPAIGN = typer.Option(None, "--campaign", help="only customers whose first add was in this campaign")
_JSON = typer.Option(False, "--json", help="print JSON")
_SNAPSHOT = typer.Option(None, "--snapshot", help="read a Parquet snapshot directory (duckdb)")


def _run(name: str, *, engine: str, corp: str | None, date_from: str | None, date_to: str | None,
         channel: str | None, campaign: str | None, snapshot: Path | None, **params: Any) -> dict:
    from siyu.analytics.engines import ENGINES, EngineError, open_engine
    from siyu.analytics.reports import Filters, ReportError, run_report

    if engine not in ENGINES:
        _fail(f"--engine: one of {', '.join(ENGINES)}, not {engine!r}")
    try:
        filters = Filters(corp_id=_corp_id(corp), date_from=_date(date_from, "--from"), date_to=_date(date_to, "--to"),
                          channel=channel, campaign=campaign)
        # the engine syncs at its first query, after the report has checked its parameters
        with open_engine(engine, snapshot=snapshot) as eng:
            return run_report(name, eng, filters, **params)
    except ReportError as exc:
        _fail(str(exc))
    except EngineError as exc:
        _fail(str(exc), 1)
    raise AssertionError  # unreachable


def _table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    heads = list(rows[0])
    cells = [[("-" if r[h] is None else str(r[h])) for h in heads] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.rjust(w) if c[:1].isdigit() else c.ljust(w) for c, w in zip(row, widths, strict=True))
                 for row in cells)
    return "\n".join(lines)


def _print(result: dict, as_json: bool, text_: str) -> None:
    typer.echo(json.dumps(result, ensure_ascii=False) if as_json else text_)


@report_app.command("funnel")
def funnel(
    steps: str = typer.Option(..., "--steps", help="event types in order, comma-separated"),
    window_days: int = typer.Option(..., "--window-days", help="days from the first step to the last"),
    engine: str = _ENGINE, corp: str = _CORP, date_from: str = _FROM, date_to: str = _TO,
    channel: str = _CHANNEL, campaign: str = _CAMPAIGN, snapshot: Path = _SNAPSHOT, as_json: bool = _JSON,
) -> None:
    """Customers reaching each step within the window (strict order, each counted once per step)."""
    names = [s.strip() for s in steps.split(",") if s.strip()]
    result = _run("funnel", engine=engine, corp=corp, date_from=date_from, date_to=date_to, channel=channel,
                  campaign=campaign, snapshot=snapshot, steps=names, window_days=window_days)
    first = result["steps"][0]["customers"] if result["steps"] else 0
    rows = [{"step": i + 1, "event": s["name"], "customers": s["customers"],
             "of_first": f"{s['customers'] / first:.1%}" if first else "-"} for i, s in enumerate(result["steps"])]
    _print(result, as_json, _table(rows))


@report_app.command("retention")
def retention(
    by: str = typer.Option(None, "--by", help="channel or campaign (default: cohorts by add week only)"),
    weeks: int = typer.Option(8, "--weeks", help="week offsets shown after the add week"),
    engine: str = _ENGINE, corp: str = _CORP, date_from: str = _FROM, date_to: str = _TO,
    channel: str = _CHANNEL, campaign: str = _CAMPAIGN, snapshot: Path = _SNAPSHOT, as_json: bool = _JSON,
) -> None:
    """Cohorts by add week (and channel): the share active and invested in each week after."""
    result = _run("retention", engine=engine, corp=corp, date_from=date_from, date_to=date_to, channel=channel,
                  campaign=campaign, snapshot=snapshot, by=by, weeks=weeks)
    rows = []
    for r in result["rows"]:
        row: dict[str, Any] = {"cohort_week": r["cohort_week"]}
        if by:
            row[by] = r[by]
        row["customers"] = r["customers"]
        for w in r["weeks"]:
            share, inv = w["active_share"], w["invested_share"]
            row[f"w{w['offset']}"] = "-" if share is None else f"{share:.0%}/{inv:.0%}"
        rows.append(row)
    _print(result, as_json, _table(rows) + "\n(each week: active / invested share of the cohort)")


@report_app.command("reinvestment")
def reinvestment(
    days: int = typer.Option(30, "--days", help="days after a maturity or redemption to invest again"),
    engine: str = _ENGINE, corp: str = _CORP, date_from: str = _FROM, date_to: str = _TO,
    channel: str = _CHANNEL, campaign: str = _CAMPAIGN, snapshot: Path = _SNAPSHOT, as_json: bool = _JSON,
) -> None:
    """Customers who invested again within N days of a maturity or redemption, and how fast."""
    result = _run("reinvestment", engine=engine, corp=corp, date_from=date_from, date_to=date_to, channel=channel,
                  campaign=campaign, snapshot=snapshot, days=days)
    total = {"month": "all", **{k: v for k, v in result.items() if k not in ("days", "by_month")}}
    _print(result, as_json, _table([*result["by_month"], total]))


@report_app.command("cac")
def cac(
    by: str = typer.Option("channel", "--by", help="channel or campaign"),
    engine: str = _ENGINE, corp: str = _CORP, date_from: str = _FROM, date_to: str = _TO,
    channel: str = _CHANNEL, campaign: str = _CAMPAIGN, snapshot: Path = _SNAPSHOT, as_json: bool = _JSON,
) -> None:
    """Cost per acquired customer (rewards, coupons, entered spend) per channel or campaign, in fen."""
    result = _run("cac", engine=engine, corp=corp, date_from=date_from, date_to=date_to, channel=channel,
                  campaign=campaign, snapshot=snapshot, by=by)
    _print({"rows": result["rows"]}, as_json, _table(result["rows"]))


@report_app.command("roi")
def roi(
    engine: str = _ENGINE, corp: str = _CORP, date_from: str = _FROM, date_to: str = _TO,
    channel: str = _CHANNEL, campaign: str = _CAMPAIGN, snapshot: Path = _SNAPSHOT, as_json: bool = _JSON,
) -> None:
    """Per campaign: cost, customers acquired, their investments, invested per fen of cost."""
    result = _run("roi", engine=engine, corp=corp, date_from=date_from, date_to=date_to, channel=channel,
                  campaign=campaign, snapshot=snapshot)
    _print(result, as_json, _table(result["rows"]))
