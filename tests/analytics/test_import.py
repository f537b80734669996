"""`siyu analytics import`: the line parser (Hypothesis), bad lines reported by number and field,
nothing loaded from a file with a bad line unless asked, repeated imports loading nothing twice."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from siyu.analytics.events import DIMENSIONS, EVENT_TYPES
from siyu.analytics.importer import LineError, import_file, parse_line
from siyu.analytics.models import AnalyticsEvent

keys = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_categories=("Cs",)), min_size=1,
               max_size=64)
aware = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31),
                     timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=8)),
                                                dt.timezone(dt.timedelta(hours=-5, minutes=-30))]))
lines = st.fixed_dictionaries(
    {"customer_id": st.one_of(keys, st.integers(min_value=-(10**18), max_value=10**18)),
     "type": st.sampled_from(EVENT_TYPES), "ts": aware.map(lambda t: t.isoformat())},
    optional={"amount_fen": st.integers(min_value=0, max_value=10**15), **{d: keys for d in DIMENSIONS}})


@given(lines)
def test_a_good_line_is_read_as_written(obj):
    event = parse_line(json.dumps(obj, ensure_ascii=False))
    assert event.customer_key == str(obj["customer_id"])
    assert event.type == obj["type"]
    assert event.ts == dt.datetime.fromisoformat(obj["ts"]) and event.ts.tzinfo == dt.UTC
    assert event.amount_fen == obj.get("amount_fen")
    assert event.dims == tuple(obj.get(d) for d in DIMENSIONS)
    # the source key depends on the content only
    assert event.source_key == parse_line(json.dumps(obj, ensure_ascii=True, indent=1).replace("\n", " ")).source_key


@given(lines, st.sampled_from(["amount_fen", "ts", "type", "customer_id", "channel"]),
       st.one_of(st.floats(allow_nan=False), st.booleans(), st.integers(max_value=-1), st.text(max_size=3),
                 st.lists(st.integers(), max_size=2)))
def test_a_bad_value_is_named_by_its_field(obj, field, value):
    obj = {**obj, field: value}
    try:
        parse_line(json.dumps(obj))
    except LineError as exc:
        assert exc.field == field
    else:
        # the only values that pass are ones the field really takes
        assert (field == "channel" and (isinstance(value, str))) or \
               (field == "customer_id" and (isinstance(value, (str, int)) and not isinstance(value, bool)))


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_any_text_is_an_event_a_blank_or_a_line_error(text):
    try:
        parse_line(text)
    except LineError:
        pass


@pytest.mark.parametrize(("line", "message"), [
    ('{"customer_id": 1, "type": "order.invested", "ts": "2026-03-01T10:00:00"}', "ts: no UTC offset"),
    ('{"customer_id": 1, "type": "order.invested", "ts": "2026-03-01"}', "ts: a time of day is needed"),
    ('{"customer_id": 1, "type": "order.invested", "ts": "yesterday"}', "ts: not an ISO-8601 time"),
    ('{"customer_id": 1, "type": "order.invested", "ts": "2026-03-01T10:00:00Z", "amount_fen": 1.5}', "amount_fen:"),
    ('{"customer_id": 1, "type": "order.invested", "ts": "2026-03-01T10:00:00Z", "amount_fen": 100.0}', "amount_fen:"),
    ('{"customer_id": 1, "type": "order.invested", "ts": "2026-03-01T10:00Z", "amount_fen": -1}', "amount_fen: neg"),
    ('{"customer_id": 1, "type": "order.invested", "ts": "2026-03-01T10:00:00Z", "amount_fen": true}', "amount_fen:"),
    ('{"customer_id": 1, "type": "order.invested", "ts": "2026-03-01T10:00:00Z", "amount_fen": "100"}', "amount_fen:"),
    ('{"customer_id": 1, "type": "order.bought", "ts": "2026-03-01T10:00:00Z"}', "type: not an event type"),
    ('{"customer_id": true, "type": "order.invested", "ts": "2026-03-01T10:00:00Z"}', "customer_id:"),
    ('{"type": "order.invested", "ts": "2026-03-01T10:00:00Z"}', "customer_id: missing"),
    ('{"customer_id": 1, "type": "order.invested", "ts": "2026-03-01T10:00Z", "amount": 5}', "amount: unknown"),
    ('[1, 2]', "not a JSON object"),
    ('{"customer_id": 1,', "not valid JSON"),
])
def test_bad_lines_say_what_is_wrong(line, message):
    with pytest.raises(LineError) as caught:
        parse_line(line)
    assert str(caught.value).startswith(message)


def test_z_and_offsets_are_the_same_instant():
    a = parse_line('{"customer_id": "x", "type": "customer.added", "ts": "2026-03-01T02:00:00Z"}')
    b = parse_line('{"customer_id": "x", "type": "customer.added", "ts": "2026-03-01T10:00:00+08:00"}')
    assert a.ts == b.ts and a.source_key == b.source_key


GOOD = [
    {"customer_id": 1001, "type": "customer.added", "ts": "2026-03-02T10:00:00+08:00", "channel": "ad"},
    {"customer_id": "1001", "type": "order.invested", "ts": "2026-03-03T10:00:00Z", "amount_fen": 250_000,
     "product": "fund-a"},
    {"customer_id": "u-7", "type": "coupon.redeemed", "ts": "2026-03-03T10:00:00.250+08:00", "amount_fen": 400,
     "campaign": "spring"},
]


def _file(*objs_or_lines) -> io.StringIO:
    return io.StringIO("\n".join(o if isinstance(o, str) else json.dumps(o) for o in objs_or_lines) + "\n")


def _stored(session):
    return session.scalars(select(AnalyticsEvent).where(AnalyticsEvent.corp_id.is_(None))
                           .order_by(AnalyticsEvent.id)).all()


def test_a_good_file_is_loaded_once(session):
    result = import_file(session, _file(GOOD[0], "", "   ", GOOD[1], GOOD[2]))
    assert (result.lines, result.events, result.loaded, result.bad, result.committed) == (5, 3, 3, 0, True)
    rows = _stored(session)
    assert [(r.customer_key, r.type, r.amount_fen, r.channel, r.product, r.campaign) for r in rows] == [
        ("1001", "customer.added", None, "ad", None, None), ("1001", "order.invested", 250_000, None, "fund-a", None),
        ("u-7", "coupon.redeemed", 400, None, None, "spring")]
    assert rows[0].ts == dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC) and rows[0].customer_id is None
    again = import_file(session, _file(*GOOD, GOOD[0]))
    assert (again.loaded, again.duplicates) == (0, 4)
    assert len(_stored(session)) == 3


def test_a_file_with_a_bad_line_loads_nothing_and_names_every_bad_line(session):
    bad_ts = {**GOOD[0], "ts": "2026-03-02 10:00"}
    bad_amount = {**GOOD[1], "amount_fen": 12.5}
    result = import_file(session, _file(GOOD[0], bad_ts, GOOD[2], "not json", bad_amount))
    assert result.errors == ["line 2: ts: no UTC offset (write Z or +08:00): a time without one is ambiguous",
                             "line 4: not valid JSON",
                             "line 5: amount_fen: a whole number of fen is expected (no decimals, no quotes)"]
    assert not result.committed and result.loaded == 0
    assert _stored(session) == []
    skipped = import_file(session, _file(GOOD[0], bad_ts, GOOD[2], "not json", bad_amount), skip_bad=True)
    assert skipped.committed and skipped.loaded == 2 and skipped.bad == 3
    assert [r.customer_key for r in _stored(session)] == ["1001", "u-7"]


def test_a_corp_import_is_its_own(session):
    from tenancy.factories import make_corp

    corp = make_corp(session)
    import_file(session, _file(*GOOD))
    result = import_file(session, _file(*GOOD), corp_id=corp.id)
    assert result.loaded == 3  # the same lines in another data set are other events
    assert session.scalar(select(AnalyticsEvent.id).where(AnalyticsEvent.corp_id == corp.id).limit(1))


def test_large_files_are_loaded_in_batches(session):
    objs = [{"customer_id": i % 50, "type": "message.received", "ts": f"2026-03-01T10:{i // 60 % 60:02d}:{i % 60:02d}Z"}
            for i in range(2500)]
    result = import_file(session, _file(*objs), batch=300)
    assert result.loaded == 2500 and len(_stored(session)) == 2500
