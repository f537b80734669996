"""The PII key is decoded once per configured value, and a changed setting takes effect."""

from __future__ import annotations

import pytest

from siyu import pii
from siyu.config import Settings, get_settings


@pytest.fixture(autouse=True)
def _settings(database_url):  # the database_url fixture sets SIYU_PII_KEY for the run
    yield
    get_settings.cache_clear()


def test_key_is_decoded_once_per_value(monkeypatch):
    calls = []
    real = Settings.resolved_pii_key
    monkeypatch.setattr(Settings, "resolved_pii_key", lambda self: calls.append(1) or real(self))
    pii._decoded.cache_clear()
    for _ in range(50):
        pii.decrypt(pii.encrypt("13812345678"))
    assert len(calls) == 1


def test_changing_the_key_setting_changes_the_key(monkeypatch):
    token = pii.encrypt("张三", context="customer.name")
    monkeypatch.setenv("SIYU_PII_KEY", "b3RoZXIta2V5LW90aGVyLWtleS0zMi1ieXRlcy1vayE")
    get_settings.cache_clear()
    with pytest.raises(pii.PiiError):
        pii.decrypt(token, context="customer.name")
    other = pii.encrypt("张三", context="customer.name")
    assert pii.decrypt(other, context="customer.name") == "张三"
    monkeypatch.undo()
    get_settings.cache_clear()
    assert pii.decrypt(token, context="customer.name") == "张三"
