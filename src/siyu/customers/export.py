"""Export of the customer list (客户导出): the caller's customers under the list's filter as CSV or
XLSX, read in keyset pages and written row by row. Names are masked, remarks and phones are never
written, and every export is in the audit log with its filter and row count.

Administrators and operations staff export; other roles see the list but take no copy of it."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import IO

from siyu import pii, tabular
from siyu.customers.listing import MAX_PAGE_SIZE, CustomerFilters, list_customers
from siyu.errors import Forbidden, InvalidInput
from siyu.tenancy import audit
from siyu.tenancy.principal import Principal

EXPORTERS = ("administrator", "operations")
MAX_ROWS = 200_000
HEADER = ("客户 ID customer id", "姓名 name", "阶段 stage", "顾问 advisors", "渠道 channels", "标签 tags",
          "首次添加 first added")


def _filter_detail(filters: CustomerFilters) -> dict:
    """The filter as the audit log keeps it: a searched name only masked."""
    out = {}
    for f in dataclasses.fields(filters):
        value = getattr(filters, f.name)
        if value in (None, ""):
            continue
        out[f.name] = pii.mask_name(value) if f.name == "q" else value.isoformat() if isinstance(value, dt.date) \
            else value
    return out


def export_customers(session, *, principal: Principal, filters: CustomerFilters, fmt: str, out: IO[bytes],
                     ip: str | None = None) -> int:
    if not principal.has_role(*EXPORTERS):
        raise Forbidden("only administrators and operations staff export customers")
    if fmt not in tabular.FORMATS:
        raise InvalidInput("choose csv or xlsx", field="format")

    def rows() -> Iterator[list]:
        after, n = None, 0
        while n < MAX_ROWS:
            page = list_customers(session, principal=principal, filters=filters, after=after, limit=MAX_PAGE_SIZE)
            for r in page.rows:
                n += 1
                yield [r.external_userid, r.name_masked, r.stage,
                       " / ".join(dict.fromkeys(f.staff_name or f.wecom_userid for f in r.follows)),
                       " / ".join(dict.fromkeys(f.state for f in r.follows if f.state)), " / ".join(r.tags),
                       r.first_added_at.astimezone(audit.CALENDAR_ZONE).strftime("%Y-%m-%d %H:%M")]
            if page.next_after is None:
                return
            after = page.next_after

    count = tabular.write_table(out, fmt, HEADER, rows())
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="customers.exported",
                 target_type="customer", detail={"format": fmt, "filter": _filter_detail(filters), "rows": count},
                 ip=ip)
    return count
