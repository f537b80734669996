"""A throw-away PostgreSQL server that a benchmark starts, stops and starts again itself, from the
Debian binaries, as `scripts/pg-temp` does: trust authentication on 127.0.0.1 and a free port,
its socket and data in the run's directory, and as root the server runs as the system user
`siyu-pg` (created when missing). Binaries: $SIYU_PG_BIN, else the newest
/usr/lib/postgresql/*/bin."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from siyu.bench.common import BenchError, free_port

PG_USER = "siyu-pg"


def pg_bin() -> Path:
    configured = os.environ.get("SIYU_PG_BIN")
    candidates = [configured] if configured else sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in Path(p).parent.name.split(".")
                                                               if x.isdigit()])
    for candidate in reversed(candidates):
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise BenchError("PostgreSQL server binaries not found (install the Debian package postgresql, or set "
                     "SIYU_PG_BIN)")


class TempPostgres:
    """`start()` (initdb on first call), `stop()`, `start()` again on the same data and port, and
    `destroy()` at the end. Every step is bounded in time."""

    def __init__(self) -> None:
        # A directory of its own, not inside the run's (as root that one is closed to the server's user).
        self.root = Path(tempfile.mkdtemp(prefix="siyu-pg-"))
        self.bin = pg_bin()
        self.data = self.root / "pgdata"
        self.port = free_port()
        self.running = False
        self._initialised = False
        self._as_pg: list[str] = []
        if os.geteuid() == 0:
            if subprocess.run(["id", "-u", PG_USER], capture_output=True).returncode != 0:
                subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                                "--shell", "/usr/sbin/nologin", PG_USER], check=True, timeout=30)
            self._as_pg = ["runuser", "-u", PG_USER, "--"]

    @property
    def url(self) -> str:
        return f"postgresql://siyu@127.0.0.1:{self.port}/siyu"

    def _run(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        return subprocess.run([*self._as_pg, *args], cwd=self.root, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def _init(self) -> None:
        if self._as_pg:
            shutil.chown(self.root, user=PG_USER)
        done = self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "siyu", "--auth=trust", "-E", "UTF8",
                         "--locale=C.UTF-8")
        if done.returncode != 0:
            raise BenchError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        self._initialised = True

    def start(self) -> None:
        if not self._initialised:
            self._init()
        for _attempt in range(5):  # a port found free can be taken before the server binds it
            done = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "postgres.log"),
                             "-w", "-t", "60", "-o",
                             f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c max_connections=300 "
                             "-c fsync=on -c synchronous_commit=on", "start")
            if done.returncode == 0:
                self.running = True
                break
            if self.running is False and "could not bind" not in self.log_tail():
                break
            self.port = free_port()
        if not self.running:
            raise BenchError(f"PostgreSQL did not start:\n{self.log_tail()}")
        if not getattr(self, "_created", False):
            done = self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "siyu", "siyu")
            if done.returncode != 0:
                raise BenchError(f"createdb failed: {done.stderr}")
            self._created = True

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
            self.running = False

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0]) if self.running else None
        except (OSError, ValueError, IndexError):
            return None

    def log_tail(self, lines: int = 20) -> str:
        path = self.root / "postgres.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
