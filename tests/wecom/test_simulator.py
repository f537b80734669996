"""The customer simulator: seeded (repeatable), works in process and over the control API."""

from __future__ import annotations

import threading

from siyu.wecom.emulator import EmulatorState
from siyu.wecom.emulator.admin import CorpIn, seed_corp
from siyu.wecom.emulator.contacts import add_contact_way
from siyu.wecom.emulator.groups import create_group_chat
from siyu.wecom.emulator.simulator import CustomerSimulator, HttpControl

SPEC = {"corp_id": "wwsim", "secret": "s", "staff": [{"userid": "a", "department": [2]},
                                                     {"userid": "b", "department": [2]}]}


def _world(seed: int) -> EmulatorState:
    state = EmulatorState(seed=seed)
    corp = seed_corp(state, CorpIn.model_validate(SPEC))
    for channel in ("ad:wx", "sms:2026q1"):
        add_contact_way(state, corp, {"type": 2, "scene": 2, "user": ["a", "b"], "state": channel})
    create_group_chat(state, corp, owner="a", name="学习群", members=[])
    return state


def _run(seed: int, steps: int) -> tuple[list[dict], EmulatorState]:
    state = _world(seed)
    sim = CustomerSimulator(state, "wwsim", seed=seed)
    return [sim.step() for _ in range(steps)], state


def test_same_seed_same_story():
    first, s1 = _run(7, 60)
    second, s2 = _run(7, 60)
    assert first == second
    other, s3 = _run(8, 60)
    assert other != first
    for s in (s1, s2, s3):
        s.close()


def test_simulated_customers_scan_channel_codes_and_move_around():
    actions, state = _run(11, 80)
    kinds = {a["action"] for a in actions if a}
    assert {"scan", "join_group", "delete_staff"} <= kinds
    scans = [a for a in actions if a and a["action"] == "scan"]
    assert {a["state"] for a in scans} == {"ad:wx", "sms:2026q1"}
    corp = state.corp("wwsim")
    change_types = {r.change_type for r in corp.callbacks}
    assert {"add_external_contact", "del_follow_user", "update"} <= change_types
    state.close()


def test_simulator_over_the_control_api_at_a_rate(corp):
    corp.post("/group_chats", {"owner": "zhangsan", "name": "群"})
    from siyu.wecom.client import WeComClient

    with WeComClient(corp.corp_id, corp.secret, base_url=corp.emulator.api_url) as client:
        client.add_contact_way(type=2, scene=2, user=["zhangsan", "lisi"], state="sim")
    sim = CustomerSimulator(HttpControl(corp.emulator.base_url), corp.corp_id, seed=3)
    stop = threading.Event()
    done = sim.run(rate=100, stop=stop, duration=0.5)
    assert 3 <= done <= 51  # paced: never more than rate x duration (+ the first)
    assert sum(sim.counts.values()) == done
    assert len(corp.get("/callbacks")) >= sim.counts["scan"]
