"""From WeCom to the customer list, over real HTTP: the emulator pushes signed callbacks to Siyu's
endpoint (a real server), a real worker runs the customers domain's subscribers, which read the
profile back from the emulator's `externalcontact/get`. Duplicate deliveries change nothing twice."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from siyu.customers import contacts
from siyu.customers.models import CustomerEvent, CustomerFollow
from siyu.db import session_scope
from siyu.jobs.models import Job
from siyu.wecom.client import WeComClient
from waiting import wait_for
from wecom.conftest import emulator, wire_siyu_corp  # noqa: F401 - the emulator fixture
from wecom.test_pipeline import siyu_server, worker  # noqa: F401 - a real server and worker

pytestmark = pytest.mark.slow


@pytest.fixture
def wired(emulator, siyu_server, worker):  # noqa: F811
    corp = wire_siyu_corp(emulator, callback_base_url=siyu_server.base_url, name="客户管道银行", slug_prefix="cust",
                          siyu_staff=("zhangsan",))
    client = WeComClient(corp.wecom_id, corp.secret, base_url=emulator.api_url)
    yield corp.corp_id, corp.wecom_id, client
    client.close()


def _customer(corp_id: int, external_userid: str):
    with session_scope() as s:
        customer = contacts.get_by_external_id(s, corp_id=corp_id, external_userid=external_userid)
        if customer is None or customer.profile_synced_at is None:
            return None
        follows = s.scalars(select(CustomerFollow).where(CustomerFollow.customer_id == customer.id)).all()
        return customer, [(f.wecom_userid, f.state, f.status, f.staff_id is not None) for f in follows]


def test_an_add_in_wecom_becomes_a_customer_and_a_loss_makes_it_lost(emulator, wired):  # noqa: F811
    corp_id, wecom_id, client = wired
    way = client.add_contact_way(type=1, scene=2, user=["zhangsan"], state="qr-pipeline-1")
    emulator.post(f"/corps/{wecom_id}/faults", {"duplicate_callback_rate": 1.0})  # WeCom delivers twice
    added = emulator.post(f"/corps/{wecom_id}/add_contact", {"config_id": way.config_id, "name": "何女士"})
    customer, follows = wait_for(lambda: _customer(corp_id, added["external_userid"]))
    assert customer.name == "何女士" and customer.stage == "new"
    assert follows == [("zhangsan", "qr-pipeline-1", "active", True)]

    emulator.post(f"/corps/{wecom_id}/faults", {"duplicate_callback_rate": 0.0})
    emulator.post(f"/corps/{wecom_id}/delete_follow", {"userid": "zhangsan",
                                                       "external_userid": added["external_userid"]})

    def lost():
        with session_scope() as s:
            c = contacts.get_by_external_id(s, corp_id=corp_id, external_userid=added["external_userid"])
            return c if c.stage == "lost" else None

    assert wait_for(lost).lost_at is not None
    with session_scope() as s:
        kinds = s.scalars(select(CustomerEvent.kind).where(CustomerEvent.customer_id == customer.id)
                          .order_by(CustomerEvent.id)).all()
        assert kinds == ["added", "lost", "stage_changed"], "each delivery recorded once"
        fetches = s.scalar(select(func.count()).select_from(Job).where(Job.corp_id == corp_id,
                                                                       Job.name == "customers.fetch_profile"))
        assert fetches == 1
