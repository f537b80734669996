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
