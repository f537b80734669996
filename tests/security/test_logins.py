"""Logins: throttled by address and by account without telling an existing login from an unknown
one, slowed down rather than locked out, and passwords of 12+ characters not on the common list."""

from __future__ import annotations

import datetime as dt

import pytest

from siyu.db import utcnow
from siyu.errors import InvalidInput
from siyu.tenancy import service
from tenancy.factories import PASSWORD, fast_argon2, make_client, make_corp, make_staff, principal_of  # noqa: F401


def _answers(session, login: str, *, ip: str, tries: int, now: dt.datetime, corp: str = "any-corp"
             ) -> list[tuple[str, str]]:
    out = []
    for _ in range(tries):
        try:
            service.authenticate(session, corp=corp, login=login, password="wrong-password-x", ip=ip, now=now)
            out.append(("ok", ""))
        except service.LoginFailed as exc:  # TooManyAttempts is a LoginFailed too
            out.append((type(exc).__name__, exc.msgid))
    return out


def test_an_existing_login_and_an_unknown_one_get_the_same_answers(session):
    corp = make_corp(session)
    admin = make_staff(session, corp, roles=("administrator",))
    now = utcnow()
    known = _answers(session, admin.login, ip="198.51.100.1", tries=12, now=now, corp=corp.slug)
    unknown = _answers(session, "nobody.at.all", ip="198.51.100.2", tries=12, now=now, corp=corp.slug)
    unknown_corp = _answers(session, admin.login, ip="198.51.100.3", tries=12, now=now, corp="no-such-corp")
    assert known == unknown == unknown_corp
    assert known[-1][0] == "TooManyAttempts"


def test_a_name_of_another_corp_is_throttled_like_an_unknown_one(session):
    corp_a, corp_b = make_corp(session), make_corp(session)
    in_b = make_staff(session, corp_b, roles=("administrator",))
    now = utcnow()
    at_a = _answers(session, in_b.login, ip="198.51.100.4", tries=12, now=now, corp=corp_a.slug)
    nobody = _answers(session, "nobody.at.all", ip="198.51.100.5", tries=12, now=now, corp=corp_a.slug)
    assert at_a == nobody
    # Failures at corp A do not slow corp B's member down (another account).
    assert service.authenticate(session, corp=corp_b.slug, login=in_b.login, password=PASSWORD,
                                ip="198.51.100.4", now=now) is in_b


def test_an_attacker_cannot_lock_the_administrator_out(session):
    corp = make_corp(session)
    admin = make_staff(session, corp, roles=("administrator",))
    now = utcnow()
    _answers(session, admin.login, ip="198.51.100.66", tries=30, now=now, corp=corp.slug)
    # The administrator, from their own address, logs in at once.
    assert service.authenticate(session, corp=corp.slug, login=admin.login, password=PASSWORD, ip="10.1.1.1",
                                now=now) is admin


def test_failures_slow_down_progressively_and_then_let_the_user_in(session):
    corp = make_corp(session)
    staff = make_staff(session, corp)
    now = utcnow()
    _answers(session, staff.login, ip="198.51.100.7", tries=5, now=now, corp=corp.slug)
    with pytest.raises(service.TooManyAttempts) as slowed:
        service.authenticate(session, corp=corp.slug, login=staff.login, password=PASSWORD, ip="198.51.100.7",
                             now=now)
    first_wait = slowed.value.retry_after
    assert 0 < first_wait <= 60
    later = now + dt.timedelta(seconds=first_wait + 1)
    _answers(session, staff.login, ip="198.51.100.7", tries=1, now=later, corp=corp.slug)
    with pytest.raises(service.TooManyAttempts) as slower:
        service.authenticate(session, corp=corp.slug, login=staff.login, password=PASSWORD, ip="198.51.100.7",
                             now=later)
    assert slower.value.retry_after > first_wait
    # Waiting it out, the right password works: never locked for good.
    much_later = later + dt.timedelta(hours=2)
    assert service.authenticate(session, corp=corp.slug, login=staff.login, password=PASSWORD, ip="198.51.100.7",
                                now=much_later) is staff


def test_one_address_trying_many_logins_is_slowed_down(session):
    now = utcnow()
    answers = []
    for i in range(40):
        answers += _answers(session, f"spray.{i}", ip="198.51.100.99", tries=1, now=now)
    assert answers[-1][0] == "TooManyAttempts"


def test_the_login_page_answers_a_known_and_an_unknown_login_alike(session):
    corp = make_corp(session)
    admin = make_staff(session, corp, roles=("administrator",))
    client = make_client(session)

    def attempt(login):
        page = client.get("/login")
        token = client.cookies.get("siyu_login_csrf") or ""
        answer = client.post("/login", data={"corp": corp.slug, "login": login, "password": "wrong-password-x",
                                             "csrf_token": token,
                                             "next": "/"})
        return answer.status_code, answer.text.replace(login, "LOGIN"), page.status_code

    known = [attempt(admin.login) for _ in range(8)]
    unknown = [attempt("nobody.else") for _ in range(8)]
    assert [k[0] for k in known] == [u[0] for u in unknown]


@pytest.mark.parametrize("password", ["short-pw-11", "password1234", "qwertyuiop123", "1qaz2wsx3edc",
                                      "PASSWORD123456", "iloveyou!!!!!"])
def test_short_and_common_passwords_are_refused(session, password):
    corp = make_corp(session)
    admin = make_staff(session, corp, roles=("administrator",))
    staff = make_staff(session, corp)
    with pytest.raises(InvalidInput) as refused:
        service.set_password(session, corp_id=corp.id, staff_id=staff.id, password=password,
                             actor=principal_of(admin))
    assert refused.value.field == "password"


def test_a_long_uncommon_password_is_accepted(session):
    corp = make_corp(session)
    admin = make_staff(session, corp, roles=("administrator",))
    staff = make_staff(session, corp)
    service.set_password(session, corp_id=corp.id, staff_id=staff.id, password="杭州西湖-边的-晚风2026",
                         actor=principal_of(admin))
