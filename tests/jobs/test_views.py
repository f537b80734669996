"""The job queue in the console (/jobs) and the REST API (/api/v1/jobs): a corp sees its own jobs
only, never another corp's nor installation-level ones; retry needs a role and the CSRF token."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from siyu.jobs import service
from siyu.tenancy.models import AuditEntry, Role
from tenancy.factories import api_client, console_user, fast_argon2, make_corp  # noqa: F401 (autouse)


@pytest.fixture
def corp(session):
    return make_corp(session, name="甲银行")


@pytest.fixture
def other_corp(session):
    return make_corp(session, name="乙证券")


def dead_job(session, queue, corp_id, name="test.boom"):
    job = service.enqueue(session, name=name, queue=queue, corp_id=corp_id, max_attempts=1, priority=-9)
    (leased,) = service.fetch_due(session, worker_id="w", limit=1, lease_seconds=30, queues=[queue])
    assert leased.id == job.id
    service.record_failure(session, job=leased, worker_id="w", error=RuntimeError("boom"))
    session.expire_all()
    return job


@pytest.fixture
def jobs(session, corp, other_corp, queue):
    mine = [service.enqueue(session, name="test.ok", queue=queue, corp_id=corp.id) for _ in range(2)]
    dead = dead_job(session, queue, corp.id)
    theirs = service.enqueue(session, name="test.theirs", queue=queue, corp_id=other_corp.id)
    installation = service.enqueue(session, name="test.installation", queue=queue)
    return {"mine": mine, "dead": dead, "theirs": theirs, "installation": installation}


def test_operations_staff_see_their_corps_jobs(session, corp, jobs):
    user = console_user(session, corp, roles=(Role.OPERATIONS,))
    page = user.get("/jobs")
    assert page.status_code == 200
    html = page.text
    assert 'data-testid="count-queued"' in html and 'data-testid="count-dead"' in html
    assert html.count('data-testid="job-row"') == 3
    assert "test.theirs" not in html and "test.installation" not in html
    assert f'hx-post="/jobs/{jobs["dead"].id}/retry"' in html
    assert f'hx-post="/jobs/{jobs["mine"][0].id}/retry"' not in html  # queued: nothing to retry

    dead_only = user.get("/jobs?state=dead").text
    assert dead_only.count('data-testid="job-row"') == 1 and "RuntimeError: boom" in dead_only
    assert user.get("/jobs?state=bogus").status_code == 200


def test_administrators_see_their_corps_queue_lag_and_expired_jobs(session, corp, other_corp, queue):
    import datetime as dt

    from siyu.db import utcnow

    now = utcnow()
    for seconds in (40, 5):  # due 40 s and 5 s ago: the queue's lag is the older one
        service.enqueue(session, name="test.ok", queue=queue, corp_id=corp.id,
                        run_at=now - dt.timedelta(seconds=seconds))
    service.enqueue(session, name="test.ok", queue=queue, corp_id=other_corp.id,
                    run_at=now - dt.timedelta(seconds=500))  # another corp's: not in this corp's lag
    service.enqueue(session, name="test.ok", queue=queue, corp_id=corp.id,
                    deadline_at=now - dt.timedelta(seconds=1))
    assert service.sweep_expired(session) >= 1
    admin = console_user(session, corp, roles=(Role.ADMINISTRATOR,))
    html = admin.get("/jobs?lang=en").text
    row = html.split(f'data-testid="queue-{queue}"')[1].split("</tr>")[0]
    assert '<td data-testid="ready">2</td>' in row
    lag = float(row.split('data-testid="lag">')[1].split(" s<")[0])
    assert 40 <= lag < 100
    assert '<td data-testid="expired">1</td>' in row
    assert 'data-testid="count-expired"' in html and "Expired (deadline passed)" in html
    operations = console_user(session, corp, roles=(Role.OPERATIONS,))
    assert 'data-testid="queue-lag"' not in operations.get("/jobs").text


def test_other_roles_may_not_open_the_page(session, corp):
    advisor = console_user(session, corp, roles=(Role.ADVISOR,))
    assert advisor.get("/jobs").status_code == 403


def test_retry_with_htmx_requeues_the_job_and_is_audited(session, corp, jobs):
    admin = console_user(session, corp, roles=(Role.ADMINISTRATOR,))
    dead = jobs["dead"]
    response = admin.post(f"/jobs/{dead.id}/retry", htmx=True)
    assert response.status_code == 200, response.text
    assert f'id="job-{dead.id}"' in response.text and 'data-state="queued"' in response.text
    session.expire_all()
    assert service.get_job(session, job_id=dead.id, corp_id=corp.id).state == "queued"
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "job.retried"))
    assert entry is not None and entry.target_id == str(dead.id) and entry.chain_id == corp.id
    # Queued now: a second retry is refused, naming the state as the page does (in Chinese by default).
    again = admin.post(f"/jobs/{dead.id}/retry", htmx=True)
    assert again.status_code == 409 and "“排队中”" in again.text and "queued" not in again.text


def test_retry_without_javascript_redirects_back(session, corp, jobs):
    admin = console_user(session, corp)
    response = admin.post(f"/jobs/{jobs['dead'].id}/retry")
    assert response.status_code == 303 and response.headers["location"].startswith("/jobs")


def test_retry_needs_the_csrf_token(session, corp, jobs):
    admin = console_user(session, corp)
    response = admin.client.post(f"/jobs/{jobs['dead'].id}/retry", headers={"HX-Request": "true"})
    assert response.status_code == 403
    session.expire_all()
    assert service.get_job(session, job_id=jobs["dead"].id, corp_id=corp.id).state == "dead"


def test_retry_of_another_corps_or_an_installation_job_is_not_found(session, corp, other_corp, queue):
    theirs = dead_job(session, queue, other_corp.id)
    installation = dead_job(session, queue, None)
    admin = console_user(session, corp)
    for job in (theirs, installation):
        assert admin.post(f"/jobs/{job.id}/retry", htmx=True).status_code == 404
    assert admin.post("/jobs/99999999999999999999/retry", htmx=True).status_code == 422


def test_api_counts_and_lists_the_keys_corp_only(session, corp, jobs):
    client, _ = api_client(session, corp, scopes=["jobs:read"])
    assert client.get("/api/v1/jobs/counts").json() == {"queued": 2, "running": 0, "failed": 0, "dead": 1,
                                                        "expired": 0}
    body = client.get("/api/v1/jobs", params={"limit": 2}).json()
    assert len(body["items"]) == 2 and body["next_before_id"] is not None
    rest = client.get("/api/v1/jobs", params={"limit": 2, "before_id": body["next_before_id"]}).json()
    names = {j["name"] for j in body["items"] + rest["items"]}
    assert names == {"test.ok", "test.boom"} and rest["next_before_id"] is None
    assert "payload" not in body["items"][0]
    dead = client.get("/api/v1/jobs", params={"state": "dead"}).json()["items"]
    assert [j["id"] for j in dead] == [jobs["dead"].id] and dead[0]["last_error"].startswith("RuntimeError")
    assert client.get(f"/api/v1/jobs/{jobs['dead'].id}").json()["state"] == "dead"
    assert client.get(f"/api/v1/jobs/{jobs['theirs'].id}").status_code == 404
    assert client.get(f"/api/v1/jobs/{jobs['installation'].id}").status_code == 404
    assert client.get("/api/v1/jobs", params={"state": "bogus"}).status_code == 422


def test_api_needs_the_jobs_read_scope(session, corp):
    client, _ = api_client(session, corp, scopes=["customers:read"])
    assert client.get("/api/v1/jobs/counts").status_code == 403
