"""入群欢迎语素材 over the emulator with the real client: add / get / edit / del with WeCom's rules
(a message part needed, text ≤ 3000 bytes, a link needs title and url, at most 100 templates)."""

from __future__ import annotations

import pytest

from siyu.wecom.emulator.group_welcome import TEMPLATES_MAX
from siyu.wecom.errors import WeComError


def test_add_get_edit_and_delete_with_wecoms_rules(corp, client):
    template_id = client.add_group_welcome_template(text="欢迎%NICKNAME%加入稳健理财福利群！")
    assert client.get_group_welcome_template(template_id) == {"text": {"content": "欢迎%NICKNAME%加入稳健理财福利群！"}}
    client.edit_group_welcome_template(template_id=template_id, text="欢迎加入！",
                                       link={"title": "群规", "url": "https://h5.example/rules"})
    assert client.get_group_welcome_template(template_id) == {
        "text": {"content": "欢迎加入！"}, "link": {"title": "群规", "url": "https://h5.example/rules"}}
    client.del_group_welcome_template(template_id)
    with pytest.raises(WeComError) as exc:
        client.get_group_welcome_template(template_id)
    assert exc.value.errcode == 40058

    with pytest.raises(ValueError, match="3000 bytes"):  # the client refuses before WeCom does
        client.add_group_welcome_template(text="福" * 1001)
    with pytest.raises(ValueError, match="needs"):
        client.add_group_welcome_template()
    with pytest.raises(WeComError) as exc:  # a link without its url: WeCom refuses
        client.add_group_welcome_template(link={"title": "群规"})
    assert exc.value.errcode == 40058 and "link.url" in str(exc.value)


def test_the_library_holds_at_most_a_hundred(corp, client):
    for i in range(TEMPLATES_MAX):
        client.add_group_welcome_template(text=f"欢迎 {i}")
    with pytest.raises(WeComError) as exc:
        client.add_group_welcome_template(text="第 101 条")
    assert exc.value.errcode == 40058 and "at most 100" in str(exc.value)
