"""Domain events: one job per subscriber, in the publisher's transaction, deduped by event key."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from siyu.jobs import events, registry
from siyu.jobs.models import Job


@pytest.fixture
def event_name():
    name = f"test.happened-{uuid.uuid4().hex[:8]}"
    calls: list[tuple[str, dict]] = []

    @events.subscribe(name, name="audit_trail", queue="events-a")
    def first(session, payload, job):
        calls.append(("audit_trail", payload))

    @events.subscribe(name, name="welcome")
    def second(session, payload, job):
        calls.append(("welcome", payload))

    yield name
    events.unsubscribe(name, "audit_trail")
    events.unsubscribe(name, "welcome")


def test_publish_enqueues_one_job_per_subscriber(session, event_name):
    jobs = events.publish(session, event_name, {"userid": "zhangsan"}, corp_id=5, key="evt-1")
    assert sorted(j.name for j in jobs) == [f"event:{event_name}:audit_trail", f"event:{event_name}:welcome"]
    assert {j.queue for j in jobs} == {"events-a", "default"}
    assert all(j.payload == {"userid": "zhangsan"} and j.corp_id == 5 for j in jobs)
    assert all(registry.get_handler(j.name) is not None for j in jobs)


def test_publishing_the_same_event_again_enqueues_nothing(session, event_name):
    first = events.publish(session, event_name, {"n": 1}, key="evt-1")
    again = events.publish(session, event_name, {"n": 1}, key="evt-1")
    assert sorted(j.id for j in first) == sorted(j.id for j in again)
    other = events.publish(session, event_name, {"n": 2}, key="evt-2")
    assert not {j.id for j in other} & {j.id for j in first}
    unkeyed = events.publish(session, event_name, {"n": 3}) + events.publish(session, event_name, {"n": 3})
    assert len({j.id for j in unkeyed}) == 4


def test_published_jobs_roll_back_with_the_publisher(session, event_name):
    savepoint = session.begin_nested()
    events.publish(session, event_name, {"n": 1}, key="evt-rb")
    savepoint.rollback()
    names = [f"event:{event_name}:audit_trail", f"event:{event_name}:welcome"]
    assert session.scalars(select(Job).where(Job.name.in_(names))).all() == []


def test_an_event_without_subscribers_enqueues_nothing(session):
    assert events.publish(session, f"test.nobody-{uuid.uuid4().hex[:6]}", {"x": 1}, key="k") == []


def test_long_keys_are_hashed_to_fit(session, event_name):
    (a, b) = events.publish(session, event_name, {}, key="k" * 400)
    assert len(a.idempotency_key) <= 255 and a.idempotency_key != b.idempotency_key
    assert {j.id for j in events.publish(session, event_name, {}, key="k" * 400)} == {a.id, b.id}
