"""The navigation highlights exactly one entry: the one whose page this is (the longest matching path),
not also its parent section."""

from __future__ import annotations

import re

import pytest

from tenancy.factories import console_user, make_corp


@pytest.mark.parametrize(("page", "entry"), [
    ("/acquisition/gated", "/acquisition/gated"),
    ("/acquisition", "/acquisition"),
    ("/customers", "/customers"),
])
def test_one_entry_is_highlighted(session, page, entry):
    admin = console_user(session, make_corp(session))
    response = admin.get(page)
    assert response.status_code == 200, response.text
    active = re.findall(r'<a href="([^"]+)" class="active"', response.text)
    assert active == [entry]


def test_entries_of_domains_not_built_yet_are_not_shown(session):
    admin = console_user(session, make_corp(session), roles=["administrator"])
    page = admin.get("/").text
    assert "Coming soon" not in page and "即将推出" not in page and 'class="disabled"' not in page
    paths = set(re.findall(r'<nav class="sidebar".*?</nav>', page, re.S)[0].split('href="')[1:])
    assert paths  # the menu is there
    for href in (p.split('"')[0] for p in paths):
        assert admin.get(href).status_code == 200, href
