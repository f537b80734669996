"""Calling the ASGI app directly from a test."""

from __future__ import annotations


def run_asgi(coro) -> None:
    """Runs an ASGI call to completion on a loop of its own, in a thread: the browser tests' sync
    Playwright keeps an event loop running in the main thread for the rest of the session, where
    asyncio.run() is refused."""
    import asyncio
    import threading

    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
