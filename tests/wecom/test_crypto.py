"""WXBizMsgCrypt against the published vectors, wechatpy, and property-based round trips."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.wecom.crypto import (
    CallbackCryptoError,
    DecryptionFailed,
    InvalidAesKey,
    InvalidSignature,
    MalformedCallback,
    ReceiveIdMismatch,
    WXBizMsgCrypt,
    generate_aes_key,
    pkcs7_pad,
    pkcs7_unpad,
    signature,
)

# Official WXBizMsgCrypt sample (WECOM.md, vector 1).
OFFICIAL = WXBizMsgCrypt("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")
OFFICIAL_ECHOSTR = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
OFFICIAL_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3"
    "TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gs"
    "ijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUa"
    "x5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIG"
    "HBZZIs2pDBS8R07+qN+E7Q=="
)
OFFICIAL_BODY = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"
    f"<Encrypt><![CDATA[{OFFICIAL_ENCRYPT}]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"
)

# wechatpy's enterprise crypto tests (WECOM.md, vector 2).
WECHATPY = WXBizMsgCrypt("123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a")
WECHATPY_ECHOSTR = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="


def test_official_url_verification():
    echo = OFFICIAL.verify_url("5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780", OFFICIAL_ECHOSTR)
    assert echo == "1616140317555161061"


def test_official_message_decrypts_to_the_284_byte_text_message():
    plain = OFFICIAL.decrypt_message(OFFICIAL_BODY, "477715d11cdb4164915debcba66cb864d751f3e6", "1409659813",
                                     "1372623149")
    assert len(plain.encode()) == 284
    assert "<Content><![CDATA[hello]]></Content>" in plain
    assert "<AgentID>218</AgentID>" in plain


def test_wechatpy_vector_signature_and_echostr():
    assert WECHATPY.signature("1411443780", "437374425", WECHATPY_ECHOSTR) == "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"
    assert WECHATPY.verify_url("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374425",
                               WECHATPY_ECHOSTR) == "5927782489442352469"
    with pytest.raises(InvalidSignature):
        WECHATPY.verify_url("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374424", WECHATPY_ECHOSTR)


def test_wechatpy_vector_encrypt_with_fixed_random_prefix():
    # wechatpy's test pins the random prefix to "1234567890123456" and publishes the ciphertext.
    reply = (
        "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
        "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n"
        "<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>"
    )
    encrypt = WECHATPY.encrypt(reply, random_prefix=b"1234567890123456")
    assert encrypt == (
        "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesE"
        "l5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsD"
        "f03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nT"
        "YjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
    )
    assert WECHATPY.signature("1411525903", "461056294", encrypt) == "407518b7649e86ef23978113f92d27afa9296533"


def test_signature_is_order_independent_sha1():
    assert signature("a", "b", "c", "d") == signature("d", "c", "b", "a")


def test_wrong_receive_id_is_refused():
    other = WXBizMsgCrypt("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wwsomeoneelse")
    with pytest.raises(ReceiveIdMismatch) as info:
        other.verify_url("5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780", OFFICIAL_ECHOSTR)
    assert info.value.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        "not xml at all",
        "<xml><ToUserName>x</ToUserName></xml>",
        '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e "boom">]><xml><Encrypt>&e;</Encrypt></xml>',
        "<xml><Encrypt>" + "A" * 300_000 + "</Encrypt></xml>",
        b"\xff\xfe<\x00x\x00m\x00l\x00>\x00",
    ],
)
def test_malformed_bodies_are_refused_before_any_crypto(body):
    with pytest.raises(MalformedCallback) as info:
        OFFICIAL.decrypt_message(body, "0" * 40, "1", "1")
    assert info.value.status_code == 400


def test_bad_base64_and_bad_block_length():
    for encrypt in ("***", base64.b64encode(b"short").decode(), ""):
        with pytest.raises(DecryptionFailed):
            OFFICIAL.decrypt(encrypt)


def test_pkcs7_pads_to_32_and_adds_a_full_block_when_aligned():
    assert len(pkcs7_pad(b"x" * 31)) == 32
    assert pkcs7_pad(b"x" * 32)[-32:] == bytes([32]) * 32
    assert pkcs7_unpad(pkcs7_pad(b"abc")) == b"abc"
    with pytest.raises(DecryptionFailed):
        pkcs7_unpad(b"x" * 31 + b"\x00")
    with pytest.raises(DecryptionFailed):
        pkcs7_unpad(b"x" * 30 + b"\x01\x02")


def test_aes_key_must_be_43_base64_characters():
    for bad in ("short", "!" * 43, "a" * 44):
        with pytest.raises(InvalidAesKey):
            WXBizMsgCrypt("t", bad, "ww1")
    assert len(generate_aes_key()) == 43


def test_encrypted_reply_round_trips():
    reply = OFFICIAL.encrypt_message("<xml><Content>你好</Content></xml>", "n1", 1700000000)
    # The reply has the same envelope shape as a callback, so our own decrypt reads it back.
    from siyu.wecom.xmlsafe import child_text, parse_xml_element

    root = parse_xml_element(reply)
    sig, ts, nonce = child_text(root, "MsgSignature"), child_text(root, "TimeStamp"), child_text(root, "Nonce")
    assert OFFICIAL.decrypt_message(reply, sig, ts, nonce) == "<xml><Content>你好</Content></xml>"


# --- properties -------------------------------------------------------------------------------

receive_ids = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=40)
messages = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=600)
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# What can stand in an XML 1.0 document (the envelope carries the receive id as ToUserName).
xml_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40)


@FAST
@given(message=messages, receive_id=receive_ids)
def test_round_trip_any_message_any_receive_id(message, receive_id):
    crypto = WXBizMsgCrypt("tok", generate_aes_key(), receive_id)
    assert crypto.decrypt(crypto.encrypt(message)) == message.encode()
    assert crypto.verify_url(**_echo_params(crypto, message)) == message


def _echo_params(crypto, echo):
    p = crypto.url_verification(echo)
    return {"msg_signature": p["msg_signature"], "timestamp": p["timestamp"], "nonce": p["nonce"],
            "echostr": p["echostr"]}


@FAST
@given(message=messages, receive_id=xml_text)
def test_callback_envelope_round_trip(message, receive_id):
    crypto = WXBizMsgCrypt("tok", generate_aes_key(), receive_id)
    cb = crypto.encrypt_callback(message, agent_id=1000002)
    assert crypto.decrypt_message(cb.body, cb.msg_signature, cb.timestamp, cb.nonce) == message


@FAST
@given(message=messages, sender=receive_ids, receiver=receive_ids)
def test_a_message_for_another_receive_id_is_refused(message, sender, receiver):
    key = generate_aes_key()
    encrypt = WXBizMsgCrypt("tok", key, sender).encrypt(message)
    if sender == receiver:
        return
    with pytest.raises(ReceiveIdMismatch):
        WXBizMsgCrypt("tok", key, receiver).decrypt(encrypt)


@FAST
@given(message=messages, data=st.data())
def test_tampering_with_any_byte_of_the_ciphertext_fails(message, data):
    crypto = WXBizMsgCrypt("tok", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")
    raw = bytearray(base64.b64decode(crypto.encrypt(message)))
    index = data.draw(st.integers(0, len(raw) - 1))
    flip = data.draw(st.integers(1, 255))
    raw[index] ^= flip
    tampered = base64.b64encode(bytes(raw)).decode()
    # The signature covers the ciphertext, so a callback endpoint refuses it before decrypting...
    ts, nonce = "1700000000", "42"
    sig = crypto.signature(ts, nonce, crypto.encrypt(message))
    body = f"<xml><Encrypt><![CDATA[{tampered}]]></Encrypt></xml>"
    with pytest.raises(InvalidSignature):
        crypto.decrypt_message(body, sig, ts, nonce)
    # ...and even decrypting without the signature never yields the original message unnoticed:
    # CBC without a MAC can decrypt to garbage, but then padding, length or receive id breaks.
    try:
        result = crypto.decrypt(tampered)
    except CallbackCryptoError:
        return
    assert result != message.encode()


@FAST
@given(message=messages, field=st.sampled_from(["timestamp", "nonce", "msg_signature"]), junk=st.text(min_size=1,
                                                                                                        max_size=8))
def test_tampering_with_signed_parameters_fails(message, field, junk):
    crypto = WXBizMsgCrypt("tok", generate_aes_key(), "ww1")
    cb = crypto.encrypt_callback(message)
    params = cb.params
    params[field] = params[field] + junk
    with pytest.raises(InvalidSignature):
        crypto.decrypt_message(cb.body, params["msg_signature"], params["timestamp"], params["nonce"])
