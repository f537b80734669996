"""The `siyu` command: demo, serve, worker, db, emulator, audit, bench."""

from __future__ import annotations

import importlib
import json
import logging
import os
from pathlib import Path

import typer

from siyu.config import get_settings

app = typer.Typer(help="Siyu (私域) — private-domain customer operations on WeCom.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
audit_app = typer.Typer(help="Audit log.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")


def _add_domain_commands() -> None:
    from siyu.compliance.cli import app as compliance_app

    app.add_typer(compliance_app, name="compliance")
    from siyu.quality.cli import app as quality_app

    app.add_typer(quality_app, name="quality")
    from siyu.analytics.cli import app as analytics_app
    from siyu.analytics.cli import report_app

    app.add_typer(analytics_app, name="analytics")
    app.add_typer(report_app, name="report")


_add_domain_commands()


def _logging() -> None:
    logging.basicConfig(
        level=get_settings().log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Bring the database schema up to date (safe to run again)."""
    from siyu.migrate import upgrade

    upgrade(revision)
    typer.echo("database is at " + revision)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    workers: int = typer.Option(1, help="HTTP worker processes"),
) -> None:
    """Run the console, REST API, H5 pages and WeCom callback endpoint."""
    import uvicorn

    _logging()
    # Forwarded headers are the app's business (SIYU_TRUSTED_PROXIES, see siyu.app): the server's
    # own handling would believe any peer on 127.0.0.1.
    uvicorn.run("siyu.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level=get_settings().log_level.lower(), access_log=False, proxy_headers=False)


@app.command()
def worker(
    concurrency: int = typer.Option(None, help="jobs run at once in this process"),
    queues: str = typer.Option("", help="comma-separated queues (default: all)"),
) -> None:
    """Run jobs from the durable queue until SIGTERM/SIGINT."""
    from siyu.jobs.worker import run_worker

    _logging()
    run_worker(concurrency=concurrency, queues=[q for q in queues.split(",") if q] or None)


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    reset: bool = typer.Option(False, help="start from an empty demo database"),
) -> None:
    """Seed a demo corp and run console, worker and WeCom emulator together."""
    from siyu.demo import run_demo

    _logging()
    run_demo(host=host, port=port, reset=reset)


@app.command()
def emulator(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8001),
    seed_file: str = typer.Option(None, help="JSON file of corps, staff and callback URLs to create at start"),
    seed: int = typer.Option(None, help="random seed for reproducible ids and simulated customers"),
    simulate_rate: float = typer.Option(0.0, help="simulated customer actions per second (0: none)"),
    callback_workers: int = typer.Option(4, min=1, max=256, help="callback deliveries in flight at once"),
) -> None:
    """Run the WeCom emulator (its own HTTP server) for demos, tests and benchmarks."""
    from siyu.wecom.emulator import serve_emulator

    _logging()
    serve_emulator(host, port, seed_file=seed_file, seed=seed, simulate_rate=simulate_rate,
                   log_level=get_settings().log_level.lower(), callback_workers=callback_workers)


@audit_app.command("verify")
def audit_verify(
    anchors: Path = typer.Option(None, "--anchors", help="a directory of anchor files to check the chains against"),
    public_key: str = typer.Option(None, "--public-key", help="the anchor key's public half (hex); default: "
                                   "this installation's"),
) -> None:
    """Check the hash chain of the audit log; exits 1 when an entry was changed or removed. The chain
    alone cannot tell that the newest entries were cut: with --anchors it also checks each signed
    anchor (its signature, and that its chain still holds the anchored head)."""
    from siyu.db import session_scope
    from siyu.tenancy.anchors import load_public_key, signing_key, verify_anchors
    from siyu.tenancy.audit import verify_chain

    key = None
    if anchors is not None:
        try:
            key = load_public_key(public_key) if public_key else signing_key().public_key()
        except ValueError as exc:
            typer.echo(f"--public-key: {exc}", err=True)
            raise typer.Exit(2) from None
    with session_scope() as session:
        report = verify_chain(session)
        if key is not None:
            anchored = verify_anchors(session, directory=anchors, public_key=key)
            report["ok"] = report["ok"] and anchored.pop("ok")
            report["problems"] = report["problems"] + anchored.pop("problems")
            report |= anchored
    typer.echo(json.dumps(report, ensure_ascii=False))
    raise typer.Exit(0 if report["ok"] else 1)


@audit_app.command("anchor")
def audit_anchor() -> None:
    """Write a signed anchor of every audit chain's head now (the worker does it daily)."""
    from siyu.db import session_scope
    from siyu.tenancy.anchors import write_anchors

    with session_scope() as session:
        path = write_anchors(session)
    typer.echo(str(path))


@audit_app.command("anchor-key")
def audit_anchor_key() -> None:
    """Print the public key that checks this installation's anchors (give it to auditors)."""
    from siyu.tenancy.anchors import public_key_hex, signing_key

    typer.echo(public_key_hex(signing_key()))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context, scenario: str = typer.Argument(..., help="e.g. jobs")) -> None:
    """Run a benchmark scenario; prints one JSON line with its figures and a baseline."""
    name = scenario.replace("-", "_")
    try:
        module = importlib.import_module(f"siyu.bench.{name}")
    except ModuleNotFoundError:
        typer.echo(f"unknown scenario: {scenario}", err=True)
        raise typer.Exit(2) from None
    os.environ.setdefault("SIYU_LOG_LEVEL", "WARNING")
    result = module.main(ctx.args)
    typer.echo(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    app()
