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


# --- together-subscribers: an event's database subscribers share one job ----------------------------------


@pytest.fixture
def together_event():
    """An event with two together-subscribers on the default queue (one of which fails when the
    payload says so), and one with a job of its own."""
    name = f"test.together-{uuid.uuid4().hex[:8]}"
    calls: list[tuple[str, int, str]] = []

    @events.subscribe(name, name="records", together=True)
    def records(session, payload, job):
        calls.append(("records", job.id, job.name))
        session.add(Job(name="test.records-effect", queue=f"effect-{name}", payload=dict(payload)))
        session.flush()

    @events.subscribe(name, name="attributes", together=True)
    def attributes(session, payload, job):
        calls.append(("attributes", job.id, job.name))
        session.add(Job(name="test.attributes-effect", queue=f"effect-{name}", payload=dict(payload)))
        session.flush()
        if payload.get("fail"):
            raise RuntimeError("attribution is broken today")

    @events.subscribe(name, name="sends", queue="events-a")
    def sends(session, payload, job):
        calls.append(("sends", job.id, job.name))

    yield name, calls
    for sub in ("records", "attributes", "sends"):
        events.unsubscribe(name, sub)


def _context(job: Job) -> registry.JobContext:
    return registry.JobContext(id=job.id, name=job.name, attempt=1, max_attempts=job.max_attempts, queue=job.queue,
                               corp_id=job.corp_id, run_at=job.run_at, enqueued_at=job.enqueued_at, worker_id="t")


def _effects(session, event: str) -> list[str]:
    return sorted(session.scalars(select(Job.name).where(Job.queue == f"effect-{event}")))


def test_together_subscribers_share_one_job_per_queue(session, together_event):
    event, _calls = together_event
    jobs = events.publish(session, event, {"userid": "zhangsan"}, corp_id=5, key="evt-1")
    assert sorted(j.name for j in jobs) == [f"event:{event}:sends", f"event:{event}:together:default"]
    (shared,) = [j for j in jobs if j.queue == "default"]
    assert shared.payload == {"event": {"userid": "zhangsan"}, "subscribers": ["attributes", "records"],
                              "key": "evt-1"}
    assert registry.get_handler(shared.name) is not None
    # Deduped by the event's key like the jobs of their own.
    again = events.publish(session, event, {"userid": "zhangsan"}, corp_id=5, key="evt-1")
    assert sorted(j.id for j in again) == sorted(j.id for j in jobs)
    assert events.publish_ids(session, event, {"userid": "zhangsan"}, corp_id=5, key="evt-1") == []


def test_a_lone_together_subscriber_keeps_its_own_job(session, together_event):
    event, _calls = together_event
    events.unsubscribe(event, "attributes")
    jobs = events.publish(session, event, {"n": 1}, key="evt-2")
    assert sorted(j.name for j in jobs) == [f"event:{event}:records", f"event:{event}:sends"]


def test_the_together_job_runs_every_subscriber_in_its_transaction(session, together_event):
    event, calls = together_event
    (shared,) = [j for j in events.publish(session, event, {"n": 1}, key="evt-3") if j.queue == "default"]
    registry.get_handler(shared.name).fn(session, shared.payload, _context(shared))
    # Each subscriber sees its own job name (as in a job of its own) and this job's id.
    assert sorted(calls) == [("attributes", shared.id, f"event:{event}:attributes"),
                             ("records", shared.id, f"event:{event}:records")]
    assert _effects(session, event) == ["test.attributes-effect", "test.records-effect"]


def test_a_failing_together_subscriber_is_rolled_back_alone_and_retried_in_a_job_of_its_own(session,
                                                                                           together_event):
    event, calls = together_event
    (shared,) = [j for j in events.publish(session, event, {"fail": True}, corp_id=7, key="evt-4")
                 if j.queue == "default"]
    registry.get_handler(shared.name).fn(session, shared.payload, _context(shared))
    # The other subscriber's work stands; the failing one's was rolled back.
    assert _effects(session, event) == ["test.records-effect"]
    own = session.scalars(select(Job).where(Job.name == f"event:{event}:attributes")).all()
    assert [(j.payload, j.corp_id, j.idempotency_key, j.state) for j in own] == [
        ({"fail": True}, 7, f"event:{event}:evt-4:attributes", "queued")]
    # That job runs the subscriber alone, through its own handler, with the queue's retries.
    with pytest.raises(RuntimeError):
        registry.get_handler(own[0].name).fn(session, own[0].payload, _context(own[0]))


def test_together_jobs_run_in_a_batch_as_one_by_one(session, together_event):
    event, calls = together_event
    shared = [j for n in range(3) for j in events.publish(session, event, {"n": n}, key=f"evt-b{n}")
              if j.queue == "default"]
    spec = registry.get_handler(shared[0].name)
    assert spec.many is not None
    spec.many(session, [j.payload for j in shared], [_context(j) for j in shared])
    assert sorted((name, job_id) for name, job_id, _ in calls) == sorted(
        (name, j.id) for j in shared for name in ("attributes", "records"))
    assert len(_effects(session, event)) == 6
    # A failure in a batch raises: the worker rolls the batch back and runs the jobs one by one.
    failing = [j for j in events.publish(session, event, {"fail": True}, key="evt-bf") if j.queue == "default"]
    with pytest.raises(RuntimeError):
        spec.many(session, [j.payload for j in shared[:1] + failing], [_context(j) for j in shared[:1] + failing])


def test_a_together_subscriber_refuses_a_deadline():
    with pytest.raises(ValueError):
        events.subscribe("test.never", name="x", together=True, deadline=lambda payload: None)
