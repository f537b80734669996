"""Prometheus metrics shared by every process of an installation.

`siyu serve --workers N` runs N processes and each `siyu worker` is another; a scrape reaches one
of them. So counters and histograms live in the prometheus-client's multiprocess mode: each
process writes its values to memory-mapped files in one directory per installation
(`Settings.metrics_dir`, default `<data_dir>/metrics`), and the `/metrics` endpoint sums the
files of all processes, dead ones included (a counter counts what happened, whoever counted it).
What is a state rather than a count (queue depth and lag, the callback spool) is read at scrape
time from the database and the spool directory, never kept in a process.

The library reads its mode from PROMETHEUS_MULTIPROC_DIR when it is first imported, and values
are created on first use; so this module imports it lazily, after the settings are known.
Recording never raises: a metric that cannot be written must not fail a callback or a job."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from siyu.config import get_settings

log = logging.getLogger(__name__)

# Welcome latency (add event → WeCom accepted the welcome): WeCom's window is 20 s.
WELCOME_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)

CALLBACK_OUTCOMES = ("stored", "duplicate", "journaled", "spooled", "refused")
JOB_OUTCOMES = ("done", "failed", "dead", "lost", "expired")

_lock = threading.Lock()
_metrics: dict[str, Any] | None = None
_directory: str | None = None


def metrics_directory() -> str:
    """The installation's metrics directory (created), exported to the library's environment
    variable before it is imported (child processes inherit it)."""
    global _directory
    if _directory is None:
        directory = str(get_settings().resolved_metrics_dir())
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        _directory = directory
    return _directory


def _get() -> dict[str, Any]:
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                metrics_directory()
                from prometheus_client import Counter, Histogram, values

                if values.ValueClass is values.MutexValue:
                    log.warning("prometheus_client was imported before siyu.metrics: this process's metrics "
                                "stay in the process and /metrics will not see them")

                # registry=None: in multiprocess mode the values go to the files; the scrape
                # reads them from there, never from a process's own registry.
                _metrics = {
                    "callbacks": Counter("siyu_callback_acks", "WeCom callbacks answered, by outcome: stored, "
                                         "duplicate (stored before), journaled (fsync'd in the spool, stored by its "
                                         "drainer), spooled (database unavailable, kept on disk), "
                                         "refused (non-2xx: bad request, or the spool full)", ["outcome"],
                                         registry=None),
                    "jobs": Counter("siyu_job_outcomes", "Job attempts finished by the workers, by outcome",
                                    ["outcome"], registry=None),
                    "wecom": Counter("siyu_wecom_calls", "WeCom API calls, by endpoint and errcode (0 success; "
                                     "http_5xx, connect_error, transport_error for answers without one)",
                                     ["endpoint", "errcode"], registry=None),
                    "welcome": Histogram("siyu_welcome_latency_seconds", "From the add event to WeCom accepting "
                                         "its welcome", buckets=WELCOME_BUCKETS, registry=None),
                    "spool_drained": Counter("siyu_callback_spool_drained", "Spooled callbacks moved into the "
                                             "inbox, by outcome: stored, duplicate, rejected", ["outcome"],
                                             registry=None),
                }
                # Known outcomes start at 0, so that a rate or an alert on them exists before the first.
                for outcome in CALLBACK_OUTCOMES:
                    _metrics["callbacks"].labels(outcome)
                for outcome in JOB_OUTCOMES:
                    _metrics["jobs"].labels(outcome)
                for outcome in ("stored", "duplicate", "rejected"):
                    _metrics["spool_drained"].labels(outcome)
    return _metrics


def _safely(fn) -> None:
    try:
        fn(_get())
    except Exception:  # never fail the caller over a metric
        log.debug("metric not recorded", exc_info=True)


def count_callback(outcome: str) -> None:
    _safely(lambda m: m["callbacks"].labels(outcome).inc())


def count_jobs(outcome: str, n: int = 1) -> None:
    if n:
        _safely(lambda m: m["jobs"].labels(outcome).inc(n))


def count_wecom_call(endpoint: str, errcode: int | str) -> None:
    _safely(lambda m: m["wecom"].labels(endpoint, str(errcode)).inc())


def observe_welcome(seconds: float) -> None:
    _safely(lambda m: m["welcome"].observe(max(0.0, seconds)))


def count_spool_drained(outcome: str, n: int) -> None:
    if n:
        _safely(lambda m: m["spool_drained"].labels(outcome).inc(n))


def render(extra_collectors=()) -> tuple[bytes, str]:
    """The exposition of every process's values plus `extra_collectors` (read at scrape time)."""
    _get()
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=metrics_directory())
    for collector in extra_collectors:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST
