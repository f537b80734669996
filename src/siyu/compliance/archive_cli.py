"""`siyu compliance archive-import FILE --corp SLUG`: import a chat-archive export (JSON lines).

Each line is one record in the shape the official archive tool writes (see `compliance.archive`).
Prints one JSON line: {"lines", "stored", "duplicates", "skipped", "alerts", "rejected"}; each line
that cannot be read is reported on stderr as `line N: field: error` (nothing of it is stored) and
the command then exits 1, after storing the good lines. Messages stored before are not stored again."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def archive_import(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="JSON-lines export"),
    corp: str = typer.Option(..., "--corp", help="the corp's slug"),
) -> None:
    """Import a chat-archive export file (JSON lines) and scan it."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from siyu.compliance import archive
    from siyu.db import session_scope
    from siyu.tenancy.models import Corp

    try:
        with session_scope() as session:
            corp_id = session.scalar(select(Corp.id).where(Corp.slug == corp))
            if corp_id is None:
                typer.echo(f"--corp: no corp with slug {corp!r}", err=True)
                raise typer.Exit(2)
            with file.open("rb") as fh:
                lines = fh.read().splitlines()
            result = archive.import_lines(session, corp_id=corp_id, lines=lines)
    except SQLAlchemyError as exc:
        typer.echo(f"cannot write to the database (run `siyu db upgrade`?): {exc.__class__.__name__}", err=True)
        raise typer.Exit(2) from None
    for e in result.errors:
        typer.echo(f"line {e['line']}: {e['field'] + ': ' if e['field'] else ''}{e['error']}", err=True)
    typer.echo(json.dumps({"lines": len(lines), **result.as_dict()}, ensure_ascii=False))
    if result.errors:
        raise typer.Exit(1)


def archive_sdk(
    corp: str = typer.Option(..., "--corp", help="the corp's slug"),
    secret_file: Path = typer.Option(..., "--secret-file", exists=True, dir_okay=False, readable=True,
                                     help="a file holding the archive app's secret (not on the command line)"),
    key: list[str] = typer.Option(..., "--key", help="VERSION=PEMFILE: the private key of WeCom's key version "
                                  "VERSION (repeat for each version still in use)"),
    disable: bool = typer.Option(False, "--disable", help="store the settings but keep reading the feed URL"),
) -> None:
    """Read a corp's chat archive through WeCom's Finance SDK: store its archive secret and private keys
    (encrypted). The installation's SIYU_ARCHIVE_SDK_LIBRARY names the SDK's library."""
    from sqlalchemy import select

    from siyu.compliance import finance_sdk
    from siyu.db import session_scope
    from siyu.errors import InvalidInput
    from siyu.tenancy.models import Corp

    keys: dict[int, str] = {}
    for spec in key:
        version, sep, path = spec.partition("=")
        if not sep or not version.isdigit() or not Path(path).is_file():
            typer.echo(f"--key {spec!r}: expected VERSION=PEMFILE with an existing file", err=True)
            raise typer.Exit(2)
        keys[int(version)] = Path(path).read_text()
    try:
        with session_scope() as session:
            corp_id = session.scalar(select(Corp.id).where(Corp.slug == corp))
            if corp_id is None:
                typer.echo(f"--corp: no corp with slug {corp!r}", err=True)
                raise typer.Exit(2)
            finance_sdk.set_config(session, corp_id=corp_id, actor="cli", secret=secret_file.read_text().strip(),
                                   private_keys=keys, enabled=not disable)
    except InvalidInput as exc:
        typer.echo(f"{exc.field}: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps({"corp": corp, "key_versions": sorted(keys), "enabled": not disable}))
