import pytest
from hypothesis import given
from hypothesis import strategies as st

from siyu import pii


@pytest.fixture(autouse=True)
def _settings(database_url):  # the database_url fixture sets SIYU_PII_KEY for the run
    yield


@given(st.text(max_size=300), st.text(max_size=20))
def test_round_trip_any_text(text, context):
    token = pii.encrypt(text, context=context)
    assert token != text
    assert pii.decrypt(token, context=context) == text


def test_same_value_encrypts_differently_but_hashes_the_same():
    a, b = pii.encrypt("13812345678"), pii.encrypt("13812345678")
    assert a != b
    assert pii.lookup_hash("13812345678", kind="phone") == pii.lookup_hash("13812345678", kind="phone")
    assert pii.lookup_hash("13812345678", kind="phone") != pii.lookup_hash("13812345678", kind="id")


@given(st.integers(min_value=0, max_value=60))
def test_tampering_is_detected(pos):
    token = pii.encrypt("110101199003077777", context="customer.id_number")
    raw = bytearray(__import__("base64").urlsafe_b64decode(token))
    raw[pos % len(raw)] ^= 0x01
    with pytest.raises(pii.PiiError):
        pii.decrypt(__import__("base64").urlsafe_b64encode(bytes(raw)).decode(), context="customer.id_number")


def test_wrong_context_fails():
    token = pii.encrypt("x", context="a")
    with pytest.raises(pii.PiiError):
        pii.decrypt(token, context="b")


@pytest.mark.parametrize(
    ("fn", "value", "shown"),
    [
        (pii.mask_phone, "13812345678", "138****5678"),
        (pii.mask_id_number, "110101199003077777", "1101**********7777"),
        (pii.mask_bank_card, "6222 0200 1234 5678", "**** 5678"),
        (pii.mask_name, "张三丰", "张**"),
        (pii.mask_phone, None, ""),
    ],
)
def test_masks(fn, value, shown):
    assert fn(value) == shown
