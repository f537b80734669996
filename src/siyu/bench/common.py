"""What the benchmark scenarios share: percentiles, a throw-away installation (data directory,
SQLite database, keys) and the real processes (`siyu serve`, `siyu worker`, `siyu emulator`)
started, waited for and stopped."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx


class BenchError(RuntimeError):
    pass


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


@contextlib.contextmanager
def workdir(keep: str | None) -> Iterator[Path]:
    """The run's directory: `keep` (new or empty, left in place to look at) or a temporary one."""
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        if any(path.iterdir()):
            raise BenchError(f"--keep {keep}: the directory is not empty")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="siyu-bench-") as tmp:
        yield Path(tmp)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Benchmarks run the WeCom emulator on this machine: the explicit setting that lets Siyu call it.
LOCAL_NETWORKS = "127.0.0.0/8,::1/128"


@dataclass
class Installation:
    """A fresh data directory with its own SQLite database and keys, and the processes started on it."""

    root: Path
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.root / 'siyu.db'}"

    def env(self) -> dict[str, str]:
        return dict(os.environ, SIYU_DATA_DIR=str(self.root), SIYU_DATABASE_URL=self.database_url,
                    SIYU_LOG_LEVEL=os.environ.get("SIYU_LOG_LEVEL", "WARNING"),
                    SIYU_OUTBOUND_LOCAL_NETWORKS=LOCAL_NETWORKS)

    def activate(self) -> None:
        """Point this process's settings at the installation (keys included) and migrate it."""
        from siyu.config import get_settings
        from siyu.migrate import upgrade

        os.environ.update(SIYU_DATA_DIR=str(self.root), SIYU_DATABASE_URL=self.database_url,
                          SIYU_PII_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
                          SIYU_SECRET_KEY=secrets.token_urlsafe(32), SIYU_OUTBOUND_LOCAL_NETWORKS=LOCAL_NETWORKS)
        get_settings.cache_clear()
        upgrade("head", self.database_url)

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "w")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen([sys.executable, "-m", "siyu.cli", *args], env={**self.env(), **(env or {})},
                                stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.procs.append((name, proc))
        return proc

    def wait_http(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise BenchError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code < 500:
                    return
            time.sleep(0.1)
        raise BenchError(f"{url} did not answer within {timeout:g} s")

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.root / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        stop_processes([p for _n, p in self.procs])
        self.procs.clear()


def stop_processes(procs: list[subprocess.Popen], timeout: float = 30) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def approve_submitted_content(session, *, corp_id: int) -> None:
    """A bench corp's welcome goes out only once a compliance officer approved it (compliance's
    content gate): a bench officer approves what was submitted (one per corp: logins are unique in
    the installation, and some benches make several corps)."""
    from sqlalchemy import select

    from siyu.compliance import approval
    from siyu.compliance.models import ContentItem
    from siyu.tenancy import service as tenancy
    from siyu.tenancy.principal import Principal

    officer = tenancy.create_staff(session, corp_id=corp_id, login=f"bench.compliance.{corp_id}", name="合规",
                                   roles=["compliance"], password=None)
    checker = Principal(corp_id=corp_id, kind="staff", label=officer.login, staff_id=officer.id,
                        roles=frozenset({"compliance"}))
    for item_id in session.scalars(select(ContentItem.id).where(ContentItem.corp_id == corp_id,
                                                                ContentItem.status == "submitted")).all():
        approval.approve(session, corp_id=corp_id, actor=checker, item_id=item_id)
