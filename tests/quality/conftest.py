from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def db(session):
    return session


@pytest.fixture
def corp(db):
    from siyu.tenancy import service

    return service.create_corp(db, slug=f"c-{uuid.uuid4().hex[:8]}", name="测试银行")
