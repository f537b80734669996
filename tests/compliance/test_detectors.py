"""Detectors: phones, ID numbers (GB 11643), bank cards (Luhn), WeChat/QQ ids, QR, red packets, links."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from siyu.compliance.detectors import (
    bank_card_valid,
    detect,
    host_allowed,
    id_check_char,
    id_number_valid,
    luhn_check_digit,
    luhn_valid,
)
from siyu.compliance.review import review_text


def cats(text, **kw):
    return [(h.category, text[h.start : h.end]) for h in detect(text, **kw)]


@st.composite
def id_numbers(draw):
    region = draw(st.sampled_from(["110105", "310104", "440305", "510107", "620102", "820000"]))
    born = draw(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2020, 12, 31)))
    seq = draw(st.integers(min_value=0, max_value=999))
    body = f"{region}{born:%Y%m%d}{seq:03d}"
    return body + id_check_char(body)


@st.composite
def bank_cards(draw):
    prefix = draw(st.sampled_from(["62", "4", "51", "52", "53", "54", "55"]))
    length = draw(st.integers(min_value=16, max_value=19))
    middle = draw(st.text("0123456789", min_size=length - len(prefix) - 1, max_size=length - len(prefix) - 1))
    payload = prefix + middle
    return payload + luhn_check_digit(payload)


def _mutate(s: str, pos: int, digit: str) -> str:
    return s[:pos] + digit + s[pos + 1 :]


@given(id_numbers())
def test_valid_id_numbers_are_detected(idn):
    assert id_number_valid(idn)
    assert ("id_number", idn) in cats(f"身份证号：{idn}。")
    assert ("id_number", idn.lower()) in cats(f"身份证号{idn.lower()}")


@given(id_numbers(), st.integers(min_value=0, max_value=16), st.sampled_from("0123456789"))
def test_one_changed_digit_breaks_the_id_checksum(idn, pos, digit):
    assume(idn[pos] != digit)
    bad = _mutate(idn, pos, digit)
    assert not id_number_valid(bad)
    assert "id_number" not in [c for c, _ in cats(f"身份证号：{bad}。")]


@given(bank_cards())
def test_valid_cards_are_detected(card):
    assert bank_card_valid(card)
    assert ("bank_card", card) in cats(f"卡号 {card} 请核对")
    spaced = " ".join(card[i : i + 4] for i in range(0, len(card), 4))
    assert ("bank_card", spaced) in cats(f"卡号：{spaced}")


@given(bank_cards(), st.data())
def test_one_changed_digit_breaks_luhn(card, data):
    pos = data.draw(st.integers(min_value=0, max_value=len(card) - 1))
    digit = data.draw(st.sampled_from("0123456789"))
    assume(card[pos] != digit)
    bad = _mutate(card, pos, digit)
    assert not luhn_valid(bad)
    assert "bank_card" not in [c for c, _ in cats(f"卡号 {bad} 请核对")]


def test_id_number_rules():
    assert id_number_valid("11010519491231002X")
    assert id_number_valid("11010519491231002x")
    assert not id_number_valid("11010519491231002Y")
    assert not id_number_valid("11010519491331002X")  # month 13
    assert not id_number_valid("91010519491231002X")  # no region starts with 9
    assert not id_number_valid("110105194912310")  # 15 digits: not detected
    assert not id_number_valid(f"110105{dt.date.today().year + 1}0101002X")


@pytest.mark.parametrize(
    "text, match",
    [
        ("电话13800138000", "13800138000"),
        ("电话 138 0013 8000", "138 0013 8000"),
        ("电话 138-0013-8000。", "138-0013-8000"),
        ("+86 13800138000", "+86 13800138000"),
        ("+86-138-0013-8000", "+86-138-0013-8000"),
        ("８６１３８００１３８０００", "８６１３８００１３８０００"),
        ("日期 2024-01-01 13800138000", "13800138000"),
    ],
)
def test_mobile_numbers(text, match):
    assert ("phone", match) in cats(text)


@pytest.mark.parametrize("text", ["12800138000", "1380013800", "138001380001", "订单A13800138000", "3.1415926535"])
def test_not_mobile_numbers(text):
    assert "phone" not in [c for c, _ in cats(text)]


@pytest.mark.parametrize(
    "text, match",
    [
        ("我的微信号：wxid_abc123", "微信号：wxid_abc123"),
        ("加vx: abc_12345", "vx: abc_12345"),
        ("WX 13800138000", "WX 13800138000"),
        ("v信是abc12345", "v信是abc12345"),
        ("ＶＸ：ａｂｃ１２３４５", "ＶＸ：ａｂｃ１２３４５"),
        ("QQ：12345678", "QQ：12345678"),
    ],
)
def test_other_wechat_and_qq_ids(text, match):
    assert ("wechat_id", match) in cats(text)


@pytest.mark.parametrize("text", ["微信支付很方便", "关注微信公众号", "wxyz", "用微信扫一扫"])
def test_wechat_mentions_without_an_id(text):
    assert "wechat_id" not in [c for c, _ in cats(text)]


def test_qr_images_and_payments():
    assert ("qr_code", "二维码") in cats("扫这个二维码")
    assert ("qr_code", "[图片]") in cats("[图片]")
    assert ("red_packet", "[红包]") in cats("[红包]恭喜发财")
    assert ("red_packet", "转账") in cats("我给你转账")
    kinds = [h.kind for h in detect("[转账] 和 红包")]
    assert kinds == ["transfer", "red_packet"]


def test_links_outside_the_allow_list():
    text = "详情 https://m.mybank.com/a?x=1，或 http://evil.cn/p 和 www.other.com 以及 short.ly/abc 和 mybank.com/ok"
    found = cats(text, allowed_domains=["mybank.com"])
    assert found == [("external_link", "http://evil.cn/p"), ("external_link", "www.other.com"),
                     ("external_link", "short.ly/abc")]
    assert host_allowed("m.mybank.com", ["*.mybank.com"])
    assert not host_allowed("mybank.com.evil.cn", ["mybank.com"])
    assert cats("收益率3.5%，版本v1.2") == []


def test_detector_findings_in_a_review():
    v = review_text("请转到卡号6222020200001234562，电话13800138000", context="archive")
    assert [f.category for f in v.findings] == ["bank_card", "phone"]
    assert all(f.source == "detector" and f.severity == "review" for f in v.findings)
