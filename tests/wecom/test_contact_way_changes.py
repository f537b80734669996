"""update_contact_way and del_contact_way, in the emulator and through our client: a multi-advisor
channel code changes its advisors in place (same QR), and a deleted one adds nobody."""

from __future__ import annotations

import pytest

from siyu.wecom.errors import WeComError


def test_update_replaces_the_user_list_and_keeps_the_qr(corp, client):
    way = client.add_contact_way(type=2, scene=2, user=["zhangsan", "lisi"], state="chabc")
    client.update_contact_way(config_id=way.config_id, user=["lisi"])
    (stored,) = [w for w in corp.get("/contact_ways") if w["config_id"] == way.config_id]
    assert (stored["users"], stored["state"], stored["qr_code"]) == (["lisi"], "chabc", way.qr_code)
    for _ in range(3):  # only lisi can be added through it now
        assert corp.post("/add_contact", {"config_id": way.config_id})["userid"] == "lisi"
    assert corp.post("/add_contact", {"config_id": way.config_id, "userid": "zhangsan"}, expect=422)


def test_update_is_checked_like_add(corp, client):
    way = client.add_contact_way(type=1, scene=2, user=["zhangsan"], state="chone")
    with pytest.raises(WeComError) as exc:
        client.update_contact_way(config_id=way.config_id, user=["zhangsan", "lisi"])  # single-person way
    assert exc.value.errcode == 40058
    with pytest.raises(WeComError) as exc:
        client.update_contact_way(config_id=way.config_id, user=["nobody"])
    assert exc.value.errcode == 60111
    with pytest.raises(WeComError) as exc:
        client.update_contact_way(config_id="0" * 32, user=["zhangsan"])
    assert exc.value.errcode == 40058
    with pytest.raises(ValueError, match="state"):
        client.update_contact_way(config_id=way.config_id, state="x" * 31)
    (stored,) = [w for w in corp.get("/contact_ways") if w["config_id"] == way.config_id]
    assert stored["users"] == ["zhangsan"], "a refused update changes nothing"


def test_delete_stops_the_code(corp, client):
    way = client.add_contact_way(type=1, scene=2, user=["zhangsan"], state="chdel")
    client.del_contact_way(config_id=way.config_id)
    assert all(w["config_id"] != way.config_id for w in corp.get("/contact_ways"))
    corp.post("/add_contact", {"config_id": way.config_id}, expect=404)
    with pytest.raises(WeComError):
        client.del_contact_way(config_id=way.config_id)


def test_another_corps_code_is_invalid(corp, make_corp, make_client, client):
    way = client.add_contact_way(type=1, scene=2, user=["zhangsan"], state="chmine")
    other = make_client(make_corp())
    with pytest.raises(WeComError):
        other.update_contact_way(config_id=way.config_id, user=["lisi"])
    with pytest.raises(WeComError):
        other.del_contact_way(config_id=way.config_id)
