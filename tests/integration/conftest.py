from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def corp(session):
    from siyu.tenancy import service

    return service.create_corp(session, slug=f"i-{uuid.uuid4().hex[:8]}", name="对接测试银行")
