"""Search by part of a name or remark without decrypting (客户搜索的盲索引).

Names and advisors' remarks are encrypted at rest, so `LIKE '%…%'` cannot run on them, and decrypting
a million names per search is out of the question. Instead each customer carries a blind index: the
keyed tokens (`siyu.pii.blind_index`, HMAC-SHA256 with a sub-key of the PII key, per corp) of every
character and every pair of adjacent characters of its name and remarks, after the same folding as
exact search (NFKC, case-folded, spaces removed). A query of one character looks for that
character's token; a longer query for the tokens of all its pairs, which a name or remark containing
the query always has. A phone the customer verified (the gate, in acquisition) is indexed the same
way, so its last digits find the customer. Three or more characters can, rarely, match a name that has all the pairs but
not in that order (张三丰 and 三丰张三 share 张三 and 三丰); the list shows such a customer too,
which a person sees at a glance, and no customer who contains the query is ever missed.

What the index gives away to someone who reads the database without the key: how many customers of a
corp share a token (frequency), as every deterministic searchable index does; not which character
it is. Another corp's tokens for the same character differ. Erasure (PIPL) removes a customer's tokens
with the name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from sqlalchemy import Select, delete, func, insert, select
from sqlalchemy.orm import Session

from siyu import pii
from siyu.customers.contacts import normalise
from siyu.customers.models import Customer, CustomerFollow, CustomerSearchGram

log = logging.getLogger(__name__)

VERSION = 2  # bump when the folding, the grams or the texts change: the backfill job rebuilds older entries
MAX_INDEXED = 64  # characters of a name or a remark that are indexed
MAX_QUERY_GRAMS = 16  # a longer query is searched by its first 16 pairs (it still contains them)
BACKFILL_BATCH = 2_000


def _folded(text: str | None) -> str:
    return "".join(normalise(text).split())


def grams(text: str | None) -> set[str]:
    """The characters and adjacent pairs of `text`, folded: what the index holds for it."""
    t = _folded(text)[:MAX_INDEXED]
    return set(t) | {t[i:i + 2] for i in range(len(t) - 1)}


def query_grams(q: str | None) -> list[str]:
    """What a query looks for: its one character, or the pairs of a longer query (all must be there)."""
    t = _folded(q)
    if len(t) <= 1:
        return [t] if t else []
    pairs = list(dict.fromkeys(t[i:i + 2] for i in range(len(t) - 1)))
    return pairs[:MAX_QUERY_GRAMS]


def _kind(corp_id: int) -> str:
    return f"customer-search:{corp_id}"


def tokens(corp_id: int, values: Iterable[str]) -> list[int]:
    return pii.blind_index(sorted(set(values)), kind=_kind(corp_id))


def index_rows(corp_id: int, customer_id: int, texts: Iterable[str | None]) -> list[dict[str, int]]:
    """The rows of one customer's index entry (for bulk loads that write rows themselves)."""
    found: set[str] = set()
    for text in texts:
        found |= grams(text)
    return [{"corp_id": corp_id, "gram": g, "customer_id": customer_id} for g in tokens(corp_id, found)]


# Other texts a customer is found by, from domains above this one (the phone a customer verified at
# the gate, kept by acquisition): each a function (session, customer) -> texts, registered at import.
_text_sources: list[Callable[[Session, Customer], Iterable[str | None]]] = []


def register_text_source(source: Callable[[Session, Customer], Iterable[str | None]]) -> None:
    if source not in _text_sources:
        _text_sources.append(source)


def reindex(session: Session, *, customer: Customer) -> None:
    """Rebuild one customer's entry from its name, every follow's remark and the registered texts
    (a verified phone: searched by its last digits); call after any of them changes."""
    remarks = list(session.scalars(select(CustomerFollow.remark).where(CustomerFollow.customer_id == customer.id)))
    extra = [text for source in _text_sources for text in source(session, customer)]
    session.flush()
    session.execute(delete(CustomerSearchGram).where(CustomerSearchGram.customer_id == customer.id))
    rows = index_rows(customer.corp_id, customer.id, [customer.name, *remarks, *extra])
    if rows:
        session.execute(insert(CustomerSearchGram), rows)
    customer.search_version = VERSION


def matching_ids(corp_id: int, q: str) -> Select | None:
    """Customers of the corp whose name or a remark contains `q` (None: nothing to look for)."""
    wanted = query_grams(q)
    if not wanted:
        return None
    keys = tokens(corp_id, wanted)
    query = select(CustomerSearchGram.customer_id).where(CustomerSearchGram.corp_id == corp_id,
                                                         CustomerSearchGram.gram.in_(keys))
    if len(keys) == 1:
        return query
    return query.group_by(CustomerSearchGram.customer_id).having(func.count() == len(keys))


def backfill(session: Session, *, limit: int = BACKFILL_BATCH) -> int:
    """Index up to `limit` customers whose entry is missing or older than VERSION; returns how many.
    Customers stored before the index existed (an upgrade) are indexed by the periodic job."""
    stale = list(session.scalars(select(Customer).where(Customer.search_version < VERSION)
                                 .order_by(Customer.id).limit(limit)))
    for customer in stale:
        reindex(session, customer=customer)
    return len(stale)
