"""Settings from the environment (prefix SIYU_)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIYU_", env_file=None, extra="ignore")

    data_dir: Path = Path("var")
    database_url: str = ""
    secret_key: SecretStr = SecretStr("")
    pii_key: SecretStr = SecretStr("")
    # Audit anchors (siyu/tenancy/anchors.py): a separate Ed25519 key (32 bytes, URL-safe base64)
    # instead of one derived from secret_key, and where the daily anchor files are written.
    audit_anchor_key: SecretStr = SecretStr("")
    audit_anchor_dir: Path | None = None
    # Cookies are marked Secure unless explicitly turned off for plain-HTTP local use.
    cookie_secure: bool = True
    session_hours: int = 12
    login_max_failures: int = 5
    login_lockout_minutes: int = 15
    default_locale: str = "zh_CN"
    log_level: str = "INFO"
    # Job queue
    job_lease_seconds: int = 60
    job_poll_seconds: float = 0.05
    job_batch_size: int = 50
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    # Each worker says it is alive this often; one silent for worker_dead_after_seconds is dead and
    # its running jobs are handed on at once (not after their leases, which live workers extend).
    worker_heartbeat_seconds: float = Field(default=2.0, gt=0)
    worker_dead_after_seconds: float = Field(default=6.0, gt=0)
    # Queues served newest first while their oldest due job has waited this many seconds (adaptive
    # LIFO): JSON, e.g. SIYU_JOB_LIFO_QUEUES='{"welcome": 3}'; '{}' serves every queue oldest first.
    job_lifo_queues: dict[str, float] = Field(default_factory=lambda: {"welcome": 3.0})
    # Jobs of one name that have a batch handler run several at once, in one transaction (a worker
    # then buffers up to 4 x concurrency leased jobs); off: one job per transaction.
    job_batch_handlers: bool = True
    # After WeCom answers 45009 (call frequency), a corp's calls to that API wait this long, in every
    # process; jobs are deferred to the window's end, and calls resume when it passes.
    wecom_rate_limit_window_seconds: float = Field(default=1.0, gt=0)
    # Outbound calls (siyu.netguard): networks Siyu may call although they are not public, over plain
    # http too (comma-separated CIDRs, e.g. "127.0.0.1/32,::1/128" for the emulator in the demo and the
    # tests). Default none: every outbound address must be public and https.
    outbound_local_networks: CommaList = []
    # Hosts the WeCom API base URL may name (https), besides the local networks above.
    wecom_api_hosts: CommaList = ["qyapi.weixin.qq.com"]
    # Request bodies (bytes): every request, and the routes that take uploads (lead and archive imports).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(default=52 * 1024 * 1024, ge=1024)  # the lead upload takes 50 MB files
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated
    # addresses or CIDRs). Default none: the peer's own address is the client's.
    trusted_proxies: CommaList = []
    # Spreadsheets read (imports): each zip member inflates to at most this, at most this ratio.
    xlsx_max_member_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    xlsx_max_ratio: int = Field(default=200, ge=10)
    xlsx_max_members: int = Field(default=2000, ge=10)
    # SMS for one-time codes (verification gate): "console" writes to the log, phone masked. The
    # code itself is shown (log and the console's SMS outbox) only when sms_show_codes is on: demo only.
    sms_provider: str = "console"
    sms_show_codes: bool = False
    # `siyu bench callbacks` only: mount an empty POST route next to the WeCom callback, mounted the
    # same way, as the benchmark's baseline. Never set in production.
    bench_routes: bool = False
    # WeCom callbacks the database could not take go to a local spool, drained when it is back.
    # Default directory: <data_dir>/spool. Over max_bytes (all files in the directory together)
    # the endpoint answers 503 instead of acknowledging, so WeCom retries.
    callback_spool_dir: Path | None = None
    callback_spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=4096)
    # When a WeCom callback is acknowledged: "journal", once it is fsync'd in the spool (the
    # drainer then stores it in batches), or "database", once its transaction committed (the
    # spool only while the database cannot take it). "auto": journal on SQLite (the spool lies
    # on the database's own host, and SQLite's one writer is then off the answer's path),
    # database on PostgreSQL (the database outlives the serve host's disk).
    callback_ack: Literal["auto", "journal", "database"] = "auto"
    # Journal acknowledgement: fsync each group of journaled callbacks before answering. Off, a
    # journaled callback survives the serve process's crash (the kernel has it), as a commit of
    # SQLite in WAL mode with synchronous=NORMAL does, but not a power cut; on, it survives that
    # too, at the price of one fsync per group on the answer's path.
    callback_journal_fsync: bool = False
    # Prometheus /metrics: the values of every process of the installation are kept in
    # metrics_dir (default <data_dir>/metrics). A scrape is allowed from metrics_allow (addresses
    # or networks, comma-separated; default this machine only) or with `Authorization: Bearer
    # <metrics_token>` when a token is set.
    metrics_dir: Path | None = None
    metrics_token: SecretStr = SecretStr("")
    metrics_allow: str = "127.0.0.1/32,::1/128"
    # The chat archive through WeCom's Finance SDK: the path of its C library
    # (libWeWorkFinanceSdk_C.so, from WeCom's admin console), an optional HTTP proxy for it, and how
    # long one GetChatData may take. A corp reads its archive through the SDK once its archive secret
    # and private keys are set (`siyu compliance archive-sdk`); until then, from the feed URL.
    archive_sdk_library: Path | None = None
    archive_sdk_proxy: str = ""
    archive_sdk_proxy_password: SecretStr = SecretStr("")
    archive_sdk_timeout_seconds: int = Field(default=10, ge=1, le=120)

    @field_validator("outbound_local_networks", "wecom_api_hosts", "trusted_proxies", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'siyu.db').resolve()}"

    def resolved_spool_dir(self) -> Path:
        return (self.callback_spool_dir or self.data_dir / "spool").resolve()

    def resolved_metrics_dir(self) -> Path:
        return (self.metrics_dir or self.data_dir / "metrics").resolve()

    def resolved_secret_key(self) -> str:
        """The secret key; generated once into the data directory when not configured."""
        if self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value()
        return _key_file(self.data_dir / "secret.key")

    def resolved_pii_key(self) -> bytes:
        raw = self.pii_key.get_secret_value() or _key_file(self.data_dir / "pii.key")
        import base64
        import hashlib

        try:
            key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
            if len(key) == 32:
                return key
        except ValueError:
            pass
        return hashlib.sha256(raw.encode()).digest()


def _key_file(path: Path) -> str:
    import base64
    import os

    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
