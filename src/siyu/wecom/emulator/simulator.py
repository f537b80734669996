"""Simulated customers: at a configurable rate they scan channel codes (contact ways with a
`state`) and add staff, join and leave customer groups, and delete staff, which makes the emulator
send the matching callbacks. Seeded, so a run can be repeated.

The simulator acts through `EmulatorControl`: `LocalControl` on an in-process `EmulatorState`, or
`HttpControl` on a running emulator's /_emulator/ API (e.g. from a benchmark process)."""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Protocol

import httpx

from siyu.wecom.emulator import contacts, groups
from siyu.wecom.emulator.state import AdminError, EmulatorState


class EmulatorControl(Protocol):
    def contact_ways(self, corp_id: str) -> list[dict[str, Any]]: ...

    def follows(self, corp_id: str) -> list[dict[str, Any]]: ...

    def group_chats(self, corp_id: str) -> list[dict[str, Any]]: ...

    def add_contact(self, corp_id: str, *, config_id: str) -> dict[str, Any]: ...

    def delete_follow(self, corp_id: str, *, userid: str, external_userid: str, by: str) -> None: ...

    def join_group(self, corp_id: str, chat_id: str, *, member_id: str) -> None: ...

    def leave_group(self, corp_id: str, chat_id: str, *, member_id: str) -> None: ...


class LocalControl:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def contact_ways(self, corp_id: str) -> list[dict[str, Any]]:
        corp = self.state.corp(corp_id)
        with self.state.lock:
            return [{"config_id": w.config_id, "state": w.state} for w in corp.contact_ways.values()]

    def follows(self, corp_id: str) -> list[dict[str, Any]]:
        corp = self.state.corp(corp_id)
        with self.state.lock:
            return [{"userid": f.userid, "external_userid": f.external_userid} for f in corp.follows.values()]

    def group_chats(self, corp_id: str) -> list[dict[str, Any]]:
        corp = self.state.corp(corp_id)
        with self.state.lock:
            return [{"chat_id": c.chat_id, "owner": c.owner, "members": list(c.members)}
                    for c in corp.group_chats.values() if not c.dismissed]

    def add_contact(self, corp_id: str, *, config_id: str) -> dict[str, Any]:
        return contacts.customer_adds_staff(self.state, self.state.corp(corp_id), config_id=config_id)

    def delete_follow(self, corp_id: str, *, userid: str, external_userid: str, by: str) -> None:
        contacts.remove_follow(self.state, self.state.corp(corp_id), userid=userid, external_userid=external_userid,
                               by=by)

    def join_group(self, corp_id: str, chat_id: str, *, member_id: str) -> None:
        groups.join_group(self.state, self.state.corp(corp_id), chat_id, member_id=member_id)

    def leave_group(self, corp_id: str, chat_id: str, *, member_id: str) -> None:
        groups.leave_group(self.state, self.state.corp(corp_id), chat_id, member_id=member_id)


class HttpControl:
    def __init__(self, base_url: str, *, http: httpx.Client | None = None) -> None:
        self._http = http or httpx.Client(base_url=base_url.rstrip("/") + "/_emulator", timeout=10)

    def _json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            raise AdminError(response.status_code, response.json().get("detail", response.text))
        return response.json()

    def contact_ways(self, corp_id: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/corps/{corp_id}/contact_ways")

    def follows(self, corp_id: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/corps/{corp_id}/follows")

    def group_chats(self, corp_id: str) -> list[dict[str, Any]]:
        return [{"chat_id": c["chat_id"], "owner": c["owner"], "members": list(c["members"])}
                for c in self._json("GET", f"/corps/{corp_id}/group_chats")]

    def add_contact(self, corp_id: str, *, config_id: str) -> dict[str, Any]:
        return self._json("POST", f"/corps/{corp_id}/add_contact", {"config_id": config_id})

    def delete_follow(self, corp_id: str, *, userid: str, external_userid: str, by: str) -> None:
        self._json("POST", f"/corps/{corp_id}/delete_follow",
                   {"userid": userid, "external_userid": external_userid, "by": by})

    def join_group(self, corp_id: str, chat_id: str, *, member_id: str) -> None:
        self._json("POST", f"/corps/{corp_id}/group_chats/{chat_id}/join", {"member_id": member_id})

    def leave_group(self, corp_id: str, chat_id: str, *, member_id: str) -> None:
        self._json("POST", f"/corps/{corp_id}/group_chats/{chat_id}/leave", {"member_id": member_id})


# Relative frequency of what a customer does; new adds dominate, as in an acquisition campaign.
DEFAULT_WEIGHTS: dict[str, float] = {"scan": 0.6, "join_group": 0.2, "leave_group": 0.08, "delete_staff": 0.12}


class CustomerSimulator:
    def __init__(self, control: EmulatorControl | EmulatorState, corp_id: str, *, seed: int | None = None,
                 weights: dict[str, float] | None = None) -> None:
        self.control: EmulatorControl = LocalControl(control) if isinstance(control, EmulatorState) else control
        self.corp_id = corp_id
        self.rng = random.Random(seed)
        self.weights = dict(weights or DEFAULT_WEIGHTS)
        self.counts: dict[str, int] = dict.fromkeys(self.weights, 0)

    def step(self) -> dict[str, Any] | None:
        """One customer action; returns what happened (None when nothing was possible, e.g. no
        contact ways yet). An impossible choice falls through to the other actions."""
        actions = list(self.weights)
        first = self.rng.choices(actions, weights=[self.weights[a] for a in actions])[0]
        for name in [first, *[a for a in actions if a != first]]:
            result = getattr(self, f"_{name}")()
            if result is not None:
                self.counts[name] += 1
                return {"action": name, **result}
        return None

    def run(self, *, rate: float, stop: threading.Event | None = None, duration: float | None = None) -> int:
        """Act `rate` times a second until `stop` is set or `duration` passed; returns the number of
        actions. Errors from a race with other actors are skipped, as a phone would retry."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        stop = stop or threading.Event()
        interval = 1.0 / rate
        deadline = None if duration is None else time.monotonic() + duration
        done = 0
        next_at = time.monotonic()
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            try:
                if self.step() is not None:
                    done += 1
            except (AdminError, httpx.HTTPError):
                pass
            next_at += interval
            stop.wait(max(0.0, next_at - time.monotonic()))
        return done

    # --- actions -----------------------------------------------------------------------------

    def _scan(self) -> dict[str, Any] | None:
        ways = self.control.contact_ways(self.corp_id)
        if not ways:
            return None
        way = self.rng.choice(ways)
        added = self.control.add_contact(self.corp_id, config_id=way["config_id"])
        return {"config_id": way["config_id"], "state": added.get("state"),
                "external_userid": added["external_userid"], "userid": added["userid"]}

    def _join_group(self) -> dict[str, Any] | None:
        chats = self.control.group_chats(self.corp_id)
        follows = self.control.follows(self.corp_id)
        if not chats or not follows:
            return None
        chat = self.rng.choice(chats)
        outside = sorted({f["external_userid"] for f in follows} - set(chat["members"]))
        if not outside:
            return None
        member = self.rng.choice(outside)
        self.control.join_group(self.corp_id, chat["chat_id"], member_id=member)
        return {"chat_id": chat["chat_id"], "external_userid": member}

    def _leave_group(self) -> dict[str, Any] | None:
        def customers(chat: dict[str, Any]) -> list[str]:
            return sorted(m for m in chat["members"] if contacts.EXTERNAL_USERID_RE.match(m))

        chats = [c for c in self.control.group_chats(self.corp_id) if customers(c)]
        if not chats:
            return None
        chat = self.rng.choice(chats)
        member = self.rng.choice(customers(chat))
        self.control.leave_group(self.corp_id, chat["chat_id"], member_id=member)
        return {"chat_id": chat["chat_id"], "external_userid": member}

    def _delete_staff(self) -> dict[str, Any] | None:
        follows = self.control.follows(self.corp_id)
        if not follows:
            return None
        f = self.rng.choice(sorted(follows, key=lambda f: (f["userid"], f["external_userid"])))
        self.control.delete_follow(self.corp_id, userid=f["userid"], external_userid=f["external_userid"],
                                   by="customer")
        return {"userid": f["userid"], "external_userid": f["external_userid"]}
