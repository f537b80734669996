"""The console's segment pages: the builder adds and removes conditions, the live count follows the
rule, errors land next to the row's field, saving stores the rule; roles and tenancy."""

from __future__ import annotations

from sqlalchemy import select

from audiences.factories import customer, link, tag
from siyu.audiences.models import Segment
from tenancy.factories import console_user, make_corp


def test_build_count_and_save_a_segment(session):
    corp = make_corp(session)
    vip = tag(session, corp.id, "贵宾")
    for _ in range(3):
        link(session, customer(session, corp.id, name="李小红", stage="invested"), vip)
    customer(session, corp.id, stage="invested")
    user = console_user(session, corp, roles=["operations"])

    page = user.get("/audiences/new")
    assert page.status_code == 200 and 'name="c0_kind" value="stage"' in page.text

    added = user.post("/audiences/builder", {"rows": "1", "match": "all", "c0_kind": "stage", "c0_stages": "invested",
                                            "action": "add", "add_kind": "tags"}, htmx=True)
    assert added.status_code == 200 and 'name="c1_kind" value="tags"' in added.text
    assert "贵宾" in added.text  # the tag picker shows names
    assert added.headers["HX-Trigger"] == "rule-changed"

    form = {"rows": "2", "match": "all", "c0_kind": "stage", "c0_stages": "invested",
            "c1_kind": "tags", "c1_match": "any", "c1_tag_ids": str(vip.id)}
    preview = user.post("/audiences/preview", form, htmx=True)
    assert 'data-testid="live-count">3<' in preview.text and "李**" in preview.text
    negated = user.post("/audiences/preview", {**form, "c1_negate": "1"}, htmx=True)
    assert 'data-testid="live-count">1<' in negated.text

    bad = user.post("/audiences/preview", {**form, "c1_tag_ids": ""}, htmx=True)
    assert 'data-field="c1_tag_ids"' in bad.text

    saved = user.post("/audiences", {**form, "name": "贵宾已投", "description": "有贵宾标签的已投客户"},
                      follow_redirects=False)
    assert saved.status_code == 303
    segment = session.scalars(select(Segment).where(Segment.corp_id == corp.id)).one()
    assert segment.rule == {"all": [{"kind": "stage", "stages": ["invested"]},
                                    {"kind": "tags", "match": "any", "tag_ids": [vip.id]}]}
    assert segment.last_count == 3
    shown = user.get(saved.headers["location"])
    assert "贵宾已投" in shown.text and 'name="c1_tag_ids"' in shown.text
    listing = user.get("/audiences").text
    assert "贵宾已投" in listing and "新建客群" in listing  # Simplified Chinese by default

    removed = user.post("/audiences/builder", {**form, "segment_id": str(segment.id), "action": "remove:1"}, htmx=True)
    assert 'name="c1_kind"' not in removed.text

    nameless = user.post(f"/audiences/{segment.id}", {**form, "name": ""})
    assert nameless.status_code == 422 and 'data-field="name"' in nameless.text


def test_advisors_and_other_corps_do_not_reach_segments(session):
    corp, other = make_corp(session), make_corp(session)
    ops = console_user(session, corp, roles=["operations"])
    ops.post("/audiences", {"rows": "1", "match": "all", "c0_kind": "lost", "c0_lost": "1", "name": "流失"})
    segment = session.scalars(select(Segment).where(Segment.corp_id == corp.id)).one()
    advisor = console_user(session, corp, roles=["advisor"])
    assert advisor.get("/audiences").status_code == 403
    assert advisor.post("/audiences/preview", {"rows": "1", "c0_kind": "lost"}, htmx=True).status_code == 403
    stranger = console_user(session, other, roles=["operations"])
    assert stranger.get(f"/audiences/{segment.id}").status_code == 404
    assert stranger.post(f"/audiences/{segment.id}/delete").status_code == 404
    auditor = console_user(session, corp, roles=["auditor"])
    page = auditor.get(f"/audiences/{segment.id}")
    assert page.status_code == 200 and "save-segment" not in page.text
    assert auditor.post(f"/audiences/{segment.id}", {"name": "x"}).status_code == 403


def test_every_kind_renders_and_counts_with_its_defaults(session):
    from siyu.audiences.views import DEFAULTS, KIND_LABELS

    corp = make_corp(session)
    customer(session, corp.id)
    user = console_user(session, corp, roles=["operations"])
    for kind in KIND_LABELS:
        page = user.post("/audiences/builder", {"rows": "0", "action": "add", "add_kind": kind})
        assert page.status_code == 200 and f'name="c0_kind" value="{kind}"' in page.text, kind
        values = {f"c0_{k}": ("1" if v is True else str(v)) for k, v in DEFAULTS.get(kind, {}).items()}
        preview = user.post("/audiences/preview", {"rows": "1", "match": "all", "c0_kind": kind, **values}, htmx=True)
        assert preview.status_code == 200, kind
        # a kind that needs a choice (tags, channel codes ...) says which field, never fails
        assert 'data-testid="live-count"' in preview.text or 'data-field="c0' in preview.text, (kind, preview.text)
