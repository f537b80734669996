"""Search that finds: part of a name, part of a remark, an id prefix — through the blind index, with
no name or remark decrypted and none stored in clear."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update

from customers.factories import make_customer
from siyu.customers import contacts, search, service
from siyu.customers.models import Customer, CustomerSearchGram
from siyu.customers.privacy import erase
from tenancy.factories import make_corp, make_staff, principal_of


def _found(session, principal, q: str) -> set[str]:
    page = service.list_customers(session, principal=principal, filters=service.make_filters(q=q))
    return {row.external_userid for row in page.rows}


def test_part_of_a_name_or_remark_finds_the_customer(session):
    corp = make_corp(session)
    advisor = make_staff(session, corp, wecom_userid="adv1")
    ops = principal_of(make_staff(session, corp, roles=["operations"]))
    xiaoming = make_customer(session, corp.id, userid="adv1", name="王小明", remark="老客户 理财经理推荐",
                             external_userid="wmXiaoMing0001")
    xiaohong = make_customer(session, corp.id, userid="adv1", name="李小红", external_userid="wmXiaoHong0002")
    david = make_customer(session, corp.id, userid="adv1", name="David Ｗang", external_userid="wmDavid000003")
    assert advisor

    assert _found(session, ops, "小明") == {xiaoming.external_userid}
    assert _found(session, ops, "明") == {xiaoming.external_userid}
    assert _found(session, ops, "小") == {xiaoming.external_userid, xiaohong.external_userid}
    assert _found(session, ops, "理财经理") == {xiaoming.external_userid}  # a part of the advisor's remark
    assert _found(session, ops, "wang") == {david.external_userid}  # full-width folded, case-folded
    assert _found(session, ops, "小刚") == set()
    assert _found(session, ops, "wmXiao") == {xiaoming.external_userid, xiaohong.external_userid}  # id prefix


def test_another_corps_customer_is_not_found_and_tokens_differ(session):
    corp_a, corp_b = make_corp(session), make_corp(session)
    make_staff(session, corp_a, wecom_userid="a1")
    make_staff(session, corp_b, wecom_userid="b1")
    ops_a = principal_of(make_staff(session, corp_a, roles=["operations"]))
    mine = make_customer(session, corp_a.id, userid="a1", name="赵明远")
    make_customer(session, corp_b.id, userid="b1", name="赵明远")
    assert _found(session, ops_a, "明远") == {mine.external_userid}
    assert search.tokens(corp_a.id, ["明"]) != search.tokens(corp_b.id, ["明"])


def test_the_index_holds_no_clear_text_and_goes_with_erasure(session):
    corp = make_corp(session)
    make_staff(session, corp, wecom_userid="adv1")
    ops = principal_of(make_staff(session, corp, roles=["operations"]))
    customer = make_customer(session, corp.id, userid="adv1", name="孙悟空", remark="VIP")
    rows = session.scalars(select(CustomerSearchGram.gram).where(CustomerSearchGram.customer_id == customer.id)).all()
    # 3 characters + 2 pairs of the name, 3 + 2 of the remark: integers, nothing readable
    assert len(rows) == 10 and all(isinstance(g, int) and g >= 0 for g in rows)
    assert _found(session, ops, "悟空") == {customer.external_userid}

    erase(session, corp_id=corp.id, external_userid=customer.external_userid)
    session.flush()
    assert session.scalar(select(CustomerSearchGram.gram).where(CustomerSearchGram.customer_id == customer.id)) is None
    assert _found(session, ops, "悟空") == set()


def test_a_renamed_customer_is_found_by_the_new_name_only(session):
    corp = make_corp(session)
    make_staff(session, corp, wecom_userid="adv1")
    ops = principal_of(make_staff(session, corp, roles=["operations"]))
    customer = make_customer(session, corp.id, userid="adv1", name="周杰")
    make_customer(session, corp.id, userid="adv1", name="周一鸣", external_userid=customer.external_userid)
    assert _found(session, ops, "一鸣") == {customer.external_userid}
    assert _found(session, ops, "周杰") == set()


def test_customers_stored_before_the_index_are_indexed_by_the_backfill(session):
    corp = make_corp(session)
    make_staff(session, corp, wecom_userid="adv1")
    ops = principal_of(make_staff(session, corp, roles=["operations"]))
    customer = make_customer(session, corp.id, userid="adv1", name="钱多多")
    # as an installation upgraded from before the index: no tokens, version 0
    session.execute(CustomerSearchGram.__table__.delete())
    session.execute(update(Customer).values(search_version=0))
    assert _found(session, ops, "多多") == set()
    assert _found(session, ops, "钱多多") == {customer.external_userid}  # exact search works all along

    assert search.backfill(session) >= 1
    assert _found(session, ops, "多多") == {customer.external_userid}
    assert search.backfill(session) == 0  # nothing left to do


names = st.text(alphabet=st.sampled_from("王李张小明红伟芳ＡBbc 　·"), min_size=1, max_size=12)


@given(name=names, data=st.data())
def test_every_part_of_a_name_is_looked_for_by_tokens_the_name_has(name, data):
    folded = "".join(contacts.normalise(name).split())
    if not folded:
        return
    start = data.draw(st.integers(0, len(folded) - 1))
    end = data.draw(st.integers(start + 1, len(folded)))
    assert set(search.query_grams(folded[start:end])) <= search.grams(name)
