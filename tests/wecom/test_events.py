import pytest
from hypothesis import given
from hypothesis import strategies as st

from siyu.wecom.events import EventParseError, parse_event, parse_xml

ADD = (
    "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
    "<CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType>"
    "<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType>"
    "<UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mACH71w]]></ExternalUserID>"
    "<State><![CDATA[ch:42]]></State><WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode></xml>"
)


def test_add_event_maps_to_customer_added_with_state_and_welcome_code():
    ev = parse_event(ADD)
    assert ev.corp_id == "ww1"
    assert ev.domain_event == "customer.added"
    p = ev.payload()
    assert p["userid"] == "zhangsan"
    assert p["state"] == "ch:42"
    assert p["welcome_code"] == "WELCOMECODE"


def test_same_event_has_same_key_and_different_events_differ():
    assert parse_event(ADD).natural_key == parse_event(ADD).natural_key
    other = ADD.replace("1403610513", "1403610514")
    assert parse_event(ADD).natural_key != parse_event(other).natural_key


@pytest.mark.parametrize(
    ("change", "name"),
    [("del_follow_user", "customer.lost"), ("del_external_contact", "customer.deleted"),
     ("edit_external_contact", "customer.edited"), ("transfer_fail", "customer.transfer_failed")],
)
def test_contact_change_types(change, name):
    assert parse_event(ADD.replace("add_external_contact", change)).domain_event == name


def test_a_completed_handover_is_not_a_deletion():
    xml = ADD.replace("add_external_contact", "del_external_contact").replace(
        "</xml>", "<Source><![CDATA[DELETE_BY_TRANSFER]]></Source></xml>")
    assert parse_event(xml).domain_event == "customer.transferred_out"


@pytest.mark.parametrize("event", ["change_external_contact", "change_external_chat"])
def test_an_unknown_change_type_is_accepted_without_a_domain_event(event):
    """WeCom adds ChangeTypes; refusing one would make WeCom retry it for ever."""
    xml = ADD.replace("add_external_contact", "a_change_type_from_the_future").replace(
        "change_external_contact", event)
    parsed = parse_event(xml)
    assert parsed.change_type == "a_change_type_from_the_future" and parsed.domain_event is None
    other = xml.replace("zhangsan", "lisi")
    assert parse_event(other).natural_key != parsed.natural_key  # every field counts for its key


def test_chat_member_join_and_list():
    xml = (
        "<xml><ToUserName>ww1</ToUserName><CreateTime>1</CreateTime><MsgType>event</MsgType>"
        "<Event>change_external_chat</Event><ChatId>wrOgQh</ChatId><ChangeType>update</ChangeType>"
        "<UpdateDetail>add_member</UpdateDetail><JoinScene>1</JoinScene><MemChangeCnt>2</MemChangeCnt>"
        "<MemChangeList><Item>wmA</Item><Item>wmB</Item></MemChangeList><CurMemVer>v2</CurMemVer></xml>"
    )
    ev = parse_event(xml)
    assert ev.domain_event == "group.member_joined"
    assert ev.payload()["member_change_list"] == ["wmA", "wmB"]


@pytest.mark.parametrize(
    "bad",
    [
        "not xml",
        "<root/>",
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><xml><ToUserName>&a;</ToUserName></xml>',
        ADD.replace("<CreateTime>1403610513</CreateTime>", "<CreateTime>soon</CreateTime>"),
        ADD.replace("<ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mACH71w]]></ExternalUserID>", ""),
        "<xml>" + "<a>x</a>" * 20000 + "</xml>",
    ],
)
def test_bad_events_are_refused_with_a_reason(bad):
    with pytest.raises(EventParseError):
        parse_event(bad)


@given(st.binary(max_size=400))
def test_parser_never_raises_anything_but_parse_errors(data):
    try:
        parse_xml(data)
    except EventParseError:
        pass
