"""`siyu quality report --date YYYY-MM-DD [--corp SLUG]`: a day's service-quality report as JSON.

The stored daily report when there is one, else the figures computed now (`"stored": false`).
Without --corp, every active corp's, keyed by slug."""

from __future__ import annotations

import datetime as dt
import json

import typer

app = typer.Typer(help="Service quality (服务质量): first-reply times, timeouts, daily reports.", no_args_is_help=True)


@app.command("report")
def report(
    date: str = typer.Option(..., "--date", help="the China calendar day, YYYY-MM-DD"),
    corp: str = typer.Option(None, "--corp", help="the corp's slug (default: every active corp)"),
) -> None:
    """Print a day's service-quality report as JSON."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from siyu.db import session_scope
    from siyu.quality import service as quality
    from siyu.tenancy.models import Corp

    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        typer.echo("--date: not a date (YYYY-MM-DD)", err=True)
        raise typer.Exit(2) from None
    try:
        with session_scope() as session:
            q = select(Corp.id, Corp.slug).where(Corp.is_active.is_(True)).order_by(Corp.slug)
            if corp is not None:
                q = select(Corp.id, Corp.slug).where(Corp.slug == corp)
            corps = session.execute(q).all()
            if corp is not None and not corps:
                typer.echo(f"--corp: no corp with slug {corp!r}", err=True)
                raise typer.Exit(2)
            out = {slug: quality.get_report(session, corp_id=corp_id, day=day) for corp_id, slug in corps}
    except SQLAlchemyError as exc:
        typer.echo(f"cannot read the database (run `siyu db upgrade`?): {exc.__class__.__name__}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(out[corp] if corp is not None else out, ensure_ascii=False, indent=2))
