"""Events the emulator pushes to a corp's callback URL, signed and encrypted as WeCom does.

WeCom waits 5 s for an answer; without one (or on an error status) it tries again, three more
times. Each attempt is encrypted afresh (new random prefix, nonce and timestamp), but the event
plaintext, CreateTime included, is the same: receivers must dedupe on the plaintext. The
fault switches add duplicates and "lost" acknowledgements on top of that."""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpx

from siyu.wecom.crypto import WXBizMsgCrypt
from siyu.wecom.emulator.state import CallbackAttempt, CallbackRecord, Corp, EmulatorState
from siyu.wecom.xmlsafe import cdata

log = logging.getLogger(__name__)

EventField = tuple[str, str | int | Sequence[str]]


def event_xml(corp_id: str, create_time: int, event: str, change_type: str | None,
              fields: Iterable[EventField]) -> str:
    """The plaintext of an event: text fields as CDATA, numbers bare, lists as <Item>s."""
    parts = [f"<ToUserName>{cdata(corp_id)}</ToUserName>", f"<FromUserName>{cdata('sys')}</FromUserName>",
             f"<CreateTime>{create_time}</CreateTime>", f"<MsgType>{cdata('event')}</MsgType>",
             f"<Event>{cdata(event)}</Event>"]
    if change_type is not None:
        parts.append(f"<ChangeType>{cdata(change_type)}</ChangeType>")
    for name, value in fields:
        if isinstance(value, int):
            parts.append(f"<{name}>{value}</{name}>")
        elif isinstance(value, str):
            parts.append(f"<{name}>{cdata(value)}</{name}>")
        else:
            items = "".join(f"<Item>{cdata(v)}</Item>" for v in value)
            parts.append(f"<{name}>{items}</{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


def emit(state: EmulatorState, corp: Corp, event: str, change_type: str | None, fields: Iterable[EventField]) -> None:
    """Record an event and queue its delivery (if the corp has a callback URL). Call under the lock."""
    plaintext = event_xml(corp.corp_id, int(state.now()), event, change_type, fields)
    record = CallbackRecord(id=state.next_callback_id(), corp_id=corp.corp_id, event=event,
                            change_type=change_type or "", plaintext=plaintext, created=state.now())
    corp.callbacks.append(record)
    if corp.callback is None:
        record.status = "no_callback_url"
        return
    state.dispatcher.submit(record)
    faults = corp.faults
    duplicate = False
    if faults.duplicate_callbacks_next > 0:
        faults.duplicate_callbacks_next -= 1
        duplicate = True
    elif faults.duplicate_callback_rate and state.rng.random() < faults.duplicate_callback_rate:
        duplicate = True
    if duplicate:
        copy = CallbackRecord(id=state.next_callback_id(), corp_id=corp.corp_id, event=event,
                              change_type=record.change_type, plaintext=plaintext, created=state.now(),
                              duplicate=True)
        corp.callbacks.append(copy)
        state.dispatcher.submit(copy)


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    record: CallbackRecord


class CallbackDispatcher:
    """Delivers callback records from a few worker threads; failed attempts are scheduled again
    after the corp's `callback_retry_delay` until `callback_retries` are used up."""

    def __init__(self, state: EmulatorState, *, workers: int = 4) -> None:
        self._state = state
        self._heap: list[_Due] = []
        self._seq = 0
        self._busy: Counter[str] = Counter()  # corp id -> deliveries being attempted now
        self._closed = False
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._run, name=f"emulator-callbacks-{i}", daemon=True)
                         for i in range(workers)]
        self._http = httpx.Client()
        for t in self._threads:
            t.start()

    def submit(self, record: CallbackRecord, delay: float = 0.0) -> None:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._heap, _Due(time.monotonic() + delay, self._seq, record))
            self._cond.notify()

    def pending(self, corp_id: str | None = None) -> int:
        with self._cond:
            return self._pending(corp_id)

    def _pending(self, corp_id: str | None) -> int:
        queued = sum(1 for d in self._heap if corp_id is None or d.record.corp_id == corp_id)
        return queued + (self._busy.total() if corp_id is None else self._busy[corp_id])

    def wait_idle(self, timeout: float = 10.0, corp_id: str | None = None) -> bool:
        """Wait until nothing (of one corp) is queued or being sent (tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending(corp_id):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=2)
        self._http.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if self._heap and self._heap[0].at <= time.monotonic():
                        break
                    wait = self._heap[0].at - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                if self._closed:
                    return
                due = heapq.heappop(self._heap)
                self._busy[due.record.corp_id] += 1
            try:
                self._attempt(due.record)
            except Exception:  # a bug here must not kill the worker thread
                log.exception("callback delivery %s failed unexpectedly", due.record.id)
            finally:
                with self._cond:
                    self._busy[due.record.corp_id] -= 1
                    self._cond.notify_all()

    def _attempt(self, record: CallbackRecord) -> None:
        state = self._state
        with state.lock:
            corp = state.corps.get(record.corp_id)
            if corp is None or corp.callback is None:
                record.status = "failed"
                return
            config, limits, agent_id = corp.callback, corp.limits, corp.agent_id
        crypto = WXBizMsgCrypt(config.token, config.encoding_aes_key, record.corp_id)
        envelope = crypto.encrypt_callback(record.plaintext, agent_id=agent_id, timestamp=int(state.now()))
        status_code: int | None = None
        error: str | None = None
        started = time.perf_counter()
        try:
            response = self._http.post(config.url, params=envelope.params, content=envelope.body.encode(),
                                       headers={"Content-Type": "text/xml; charset=utf-8"},
                                       timeout=limits.callback_timeout)
            status_code = response.status_code
            acknowledged = 200 <= status_code < 300
            if not acknowledged:
                error = f"HTTP {status_code}"
        except httpx.TimeoutException:
            acknowledged, error = False, f"no answer within {limits.callback_timeout:g} s"
        except httpx.HTTPError as exc:
            acknowledged, error = False, f"{type(exc).__name__}"
        duration_ms = (time.perf_counter() - started) * 1000
        with state.lock:
            faults = corp.faults
            if acknowledged and faults.drop_acks_next > 0:
                faults.drop_acks_next -= 1
                acknowledged, error = False, "acknowledgement dropped (fault)"
            elif acknowledged and faults.drop_ack_rate and state.rng.random() < faults.drop_ack_rate:
                acknowledged, error = False, "acknowledgement dropped (fault)"
            record.attempts.append(CallbackAttempt(at=state.now(), status_code=status_code, duration_ms=duration_ms,
                                                   acknowledged=acknowledged, error=error))
            if acknowledged:
                record.status = "acknowledged"
                return
            if len(record.attempts) > limits.callback_retries:
                record.status = "failed"
                return
        self.submit(record, delay=limits.callback_retry_delay)


def verify_callback_url(state: EmulatorState, corp: Corp, *, timeout: float = 5.0) -> dict[str, object]:
    """What WeCom does when an admin saves the callback URL: GET it with an encrypted echostr and
    expect the plaintext back."""
    if corp.callback is None:
        return {"ok": False, "error": "no callback URL configured"}
    config = corp.callback
    crypto = WXBizMsgCrypt(config.token, config.encoding_aes_key, corp.corp_id)
    echo = str(state.rng.randrange(10**18, 10**19))
    params = crypto.url_verification(echo, timestamp=int(state.now()))
    try:
        response = httpx.get(config.url, params=params, timeout=timeout)
    except httpx.HTTPError as exc:
        return {"ok": False, "error": type(exc).__name__}
    body = response.text.strip()
    return {"ok": response.status_code == 200 and body == echo, "status_code": response.status_code,
            "expected": echo, "received": body[:200]}
