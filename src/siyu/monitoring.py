"""`/metrics`: the installation's Prometheus metrics, for the operations team's scraper.

Counted values (callback acknowledgements, job outcomes, WeCom calls by errcode, welcome latency)
come from every process's files (`siyu.metrics`); states are read at scrape time: per queue its
depth, running jobs and lag (`siyu.jobs.service.queue_stats`), whether the database answered,
and the callback spool's size and the age of its oldest event.

Not open to the internet by default: a scrape is answered for the addresses and networks in
`SIYU_METRICS_ALLOW` (default this machine only; the connection's own peer address, never a
forwarded header, which anyone can write) or with `Authorization: Bearer $SIYU_METRICS_TOKEN`
when a token is set; others get 401 (a token is configured) or 403."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from functools import lru_cache

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from siyu import metrics
from siyu.config import get_settings

log = logging.getLogger(__name__)


@lru_cache(maxsize=16)
def _networks(spec: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for part in spec.split(","):
        part = part.strip()
        if part:
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                log.error("SIYU_METRICS_ALLOW: %r is not an address or network; ignored", part)
    return tuple(networks)


def allowed(request: Request) -> bool | None:
    """True: may scrape; None: refused, a token would do; False: refused."""
    settings = get_settings()
    peer = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        address = None
    if address is not None and any(address in net for net in _networks(settings.metrics_allow)):
        return True
    token = settings.metrics_token.get_secret_value()
    if token:
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode()):
            return True
        return None
    return False


class QueueCollector:
    """Per queue, read at scrape time: depth (due and waiting), scheduled, running, the oldest due
    job's wait, and the outcomes of the last minutes (`queue_stats`)."""

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        from siyu.db import session_scope
        from siyu.jobs import service as jobs

        up = GaugeMetricFamily("siyu_database_up", "Whether the database answered this scrape")
        try:
            with session_scope() as session:
                stats = jobs.queue_stats(session)
        except Exception as exc:
            log.warning("metrics: no queue figures (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily("siyu_queue_depth", "Jobs due now and waiting for a worker", labels=["queue"])
        age = GaugeMetricFamily("siyu_queue_oldest_ready_age_seconds", "How long the oldest due job has waited",
                                labels=["queue"])
        running = GaugeMetricFamily("siyu_queue_running", "Jobs being run now", labels=["queue"])
        scheduled = GaugeMetricFamily("siyu_queue_scheduled", "Jobs waiting for a later time (retries, schedules)",
                                      labels=["queue"])
        lifo = GaugeMetricFamily("siyu_queue_lifo", "1 while the queue serves newest first (backlog)",
                                 labels=["queue"])
        recent = GaugeMetricFamily("siyu_queue_recent_outcomes", "Jobs finished in the last minutes by outcome "
                                   "(retrying: failed now, awaiting a retry)", labels=["queue", "outcome"])
        for name, s in stats.items():
            depth.add_metric([name], s.ready)
            age.add_metric([name], s.oldest_ready_age_s)
            running.add_metric([name], s.running)
            scheduled.add_metric([name], s.scheduled)
            lifo.add_metric([name], 1 if getattr(s, "lifo", False) else 0)
            for outcome in ("done", "retrying", "dead", "expired"):
                recent.add_metric([name, outcome], getattr(s, outcome, 0))
        yield from (depth, age, running, scheduled, lifo, recent)


class SpoolCollector:
    """The callback spool of every serve process of this installation (one directory)."""

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        from siyu.wecom.spool import REJECTED_SUFFIX, spool_status

        settings = get_settings()
        directory = settings.resolved_spool_dir()
        status = spool_status(directory)
        size = GaugeMetricFamily("siyu_callback_spool_bytes", "Callback events in the spool, not yet in the inbox")
        size.add_metric([], status["bytes"])
        limit = GaugeMetricFamily("siyu_callback_spool_max_bytes", "The spool's limit; past it callbacks get 503")
        limit.add_metric([], settings.callback_spool_max_bytes)
        files = GaugeMetricFamily("siyu_callback_spool_files", "Spool files with events not yet in the inbox")
        files.add_metric([], status["files"])
        age = GaugeMetricFamily("siyu_callback_spool_oldest_age_seconds",
                                "Age of the oldest event waiting in the spool (0 when empty)")
        age.add_metric([], status["oldest_age_seconds"] or 0.0)
        rejected = GaugeMetricFamily("siyu_callback_spool_rejected_files",
                                     "Spool files of events the drainer could not store (an operator looks)")
        try:
            rejected.add_metric([], sum(1 for p in directory.iterdir() if p.name.endswith(REJECTED_SUFFIX)))
        except FileNotFoundError:
            rejected.add_metric([], 0)
        yield from (size, limit, files, age, rejected)


def metrics_endpoint(request: Request) -> Response:
    verdict = allowed(request)
    if verdict is not True:
        if verdict is None:
            return PlainTextResponse("a metrics token is required", status_code=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        return PlainTextResponse("metrics are not available from this address", status_code=403)
    body, content_type = metrics.render([QueueCollector(), SpoolCollector()])
    return Response(body, media_type=content_type)


metrics_route = Route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
