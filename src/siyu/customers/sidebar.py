"""The advisor's chat sidebar (聊天工具栏): what an advisor sees next to a 1-on-1 chat — the customer's
masked profile, stage, tags, channels, risk level and last notes, and the products they may offer
with the suitability decision for THIS customer — and the 1-on-1 product recommendation.

Suitability is decided by `siyu.compliance.suitability` (`decide`, `check_eligibility`): the list is
only a hint; `recommend` decides again at the moment of the recommendation, whatever the page
showed, and refuses an ineligible product naming `product_code` with the explanation. The message
then goes through the outbound guard `siyu.compliance.service.prepare_outbound` (kind
"recommendation", the product's type attached: its risk disclosure is appended; a "block" verdict
is refused with the phrases; a customer who withdrew marketing consent is refused). The
recommendation is recorded (`ProductRecommendation`: the sales-process evidence), written to the
customer's timeline and the audit log, and the final text is handed to the page, which sends it in
the chat (in WeCom through the JS-SDK `sendChatMessage`; Siyu itself sends nothing here).

Visibility is the customers domain's: an advisor opens only customers they follow
(`service.get_customer_by_external_id`)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu import pii, tabular
from siyu.compliance import suitability
from siyu.compliance.models import Product
from siyu.compliance.suitability import Decision
from siyu.customers import contacts, service
from siyu.customers.models import ProductRecommendation
from siyu.db import utcnow
from siyu.errors import Forbidden, InvalidInput
from siyu.tenancy import audit
from siyu.tenancy.models import Role
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import valid_id

KIND = "recommendation"  # the outbound kind: marketing (the opt-out applies)
MAX_MESSAGE = 300
LAST_NOTES = 3
RECENT = 5
LIST_LIMIT = 200
EXPORT_MAX_ROWS = 100_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # newlines are fine in a message
# Who recommends: advisors (administrators carry the role too when they also serve customers).
RECOMMENDERS = (Role.ADVISOR,)
# Who reads every recommendation of the corp; an advisor reads their own.
READERS = (Role.ADMINISTRATOR, Role.OPERATIONS, Role.COMPLIANCE, Role.AUDITOR)
EXPORTERS = (Role.ADMINISTRATOR, Role.OPERATIONS, Role.COMPLIANCE)


class NotSuitable(InvalidInput):
    """The product may not be offered to this customer: `decision` says why (Chinese and English)."""

    def __init__(self, decision: Decision):
        super().__init__("this product may not be offered to this customer: %(reason)s", field="product_code",
                         params={"reason": decision.reason_en})
        self.decision = decision


class Blocked(InvalidInput):
    """The compliance review blocked the message: `phrases` are what it found."""

    def __init__(self, phrases: list[str]):
        super().__init__("the message was blocked by the compliance review: %(phrases)s", field="message",
                         params={"phrases": "、".join(phrases)})
        self.phrases = phrases


# --- who is asking, about whom --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SidebarIdentity:
    principal: Principal
    external_userid: str


def resolve_wecom_identity(session: Session, *, principal: Principal, external_userid: object) -> SidebarIdentity:
    """WHERE THE WECOM IDENTITY WOULD BE RESOLVED. Here: the console login session is the advisor and
    the page's `?external_userid=` is the customer of the chat.

    In a real deployment (docs/architecture.md, "Advisor sidebar") the page opened from the chat
    toolbar gets the advisor from WeCom's OAuth (the `code` of the page's redirect exchanged through
    `auth/getuserinfo` for the member's userid, mapped to a Staff row and a sidebar session), and the
    customer from the JS-SDK: after `wx.agentConfig` (signed with the agent's jsapi_ticket) the page
    calls `getCurExternalContact` and passes the external_userid it returns. Either way the id is
    only a claim: the visibility rule below still decides whether this advisor may open this customer."""
    if principal.kind != "staff":
        raise Forbidden("the sidebar is for members of staff")
    return SidebarIdentity(principal=principal,
                           external_userid=service.valid_external_userid(external_userid))


# --- the page -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductOption:
    code: str
    name: str
    product_type: str
    risk_level: str
    decision: Decision


@dataclass(frozen=True)
class SidebarView:
    detail: service.CustomerDetail
    products: list[ProductOption]  # eligible first, then by risk level and code
    recent: list[ProductRecommendation]
    can_recommend: bool

    @property
    def eligible_count(self) -> int:
        return sum(1 for p in self.products if p.decision.eligible)


def _ref(detail: service.CustomerDetail) -> str:
    """The customer reference suitability knows this customer by: the one assessed last
    (external_userid or the firm's customer id), the external_userid when never assessed."""
    return detail.risk.customer_ref if detail.risk else detail.row.external_userid


def sidebar_view(session: Session, *, principal: Principal, external_userid: str,
                 now: dt.datetime | None = None) -> SidebarView:
    """The customer as the sidebar shows them, with every active product and its decision."""
    ident = resolve_wecom_identity(session, principal=principal, external_userid=external_userid)
    detail = service.customer_detail_by_external_id(session, principal=principal, external_userid=ident.external_userid)
    risk = detail.risk
    options = []
    for p in suitability.list_products(session, corp_id=principal.corp_id, active_only=True):
        decision = suitability.decide(risk.level if risk else None, p.risk_level,
                                      expires_at=risk.expires_at if risk else None, now=now)
        options.append(ProductOption(code=p.code, name=p.name, product_type=p.product_type, risk_level=p.risk_level,
                                     decision=decision))
    options.sort(key=lambda o: (not o.decision.eligible, o.risk_level, o.code))
    recent = list(session.scalars(select(ProductRecommendation)
                                  .where(ProductRecommendation.customer_id == detail.row.id)
                                  .order_by(ProductRecommendation.created_at.desc(), ProductRecommendation.id.desc())
                                  .limit(RECENT)))
    return SidebarView(detail=detail, products=options, recent=recent,
                       can_recommend=principal.has_role(*RECOMMENDERS))


# --- the recommendation ---------------------------------------------------------------------------------------


def valid_message(value: object) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > MAX_MESSAGE:
        raise InvalidInput("must have at most %(n)s characters", field="message", params={"n": MAX_MESSAGE})
    if _CONTROL.search(text):
        raise InvalidInput("must not contain control characters", field="message")
    return text


def product_line(product: Product) -> str:
    """The product as the message names it."""
    kind = suitability.PRODUCT_TYPES.get(product.product_type, product.product_type)
    level = f"{product.risk_level}（{suitability.PRODUCT_LEVEL_NAMES.get(product.risk_level, '')}）"
    return f"【{kind}】{product.name}（产品代码 {product.code}，风险等级 {level}）"


def recommend(session: Session, *, principal: Principal, external_userid: str, product_code: str,
              message: str = "", ip: str | None = None, now: dt.datetime | None = None) -> ProductRecommendation:
    """Recommend a product to a customer the advisor follows. Every check happens here, now:
    visibility, the advisor's role, suitability (`NotSuitable`, field product_code), the message
    (field message) and the outbound guard (`Blocked` with the phrases; marketing opt-out). Nothing
    is stored when any of them refuses."""
    ident = resolve_wecom_identity(session, principal=principal, external_userid=external_userid)
    if not principal.has_role(*RECOMMENDERS):
        raise Forbidden("only advisors recommend products to customers")
    customer = service.get_customer_by_external_id(session, principal=principal, external_userid=ident.external_userid)
    product = suitability.get_product(session, corp_id=principal.corp_id,
                                      code=suitability.valid_product_code(product_code, field="product_code"),
                                      field="product_code")
    text = valid_message(message)
    risk = service.risk_of(session, corp_id=customer.corp_id, refs=(customer.external_userid,
                                                                    customer.firm_customer_id))
    decision = suitability.check_eligibility(session, corp_id=customer.corp_id,
                                             customer_ref=risk.customer_ref if risk else customer.external_userid,
                                             product_code=product.code, now=now)
    if not decision.eligible:
        raise NotSuitable(decision)

    from siyu.compliance.service import prepare_outbound

    body = f"{text}\n{product_line(product)}" if text else f"为您推荐：{product_line(product)}"
    out = prepare_outbound(session, corp_id=customer.corp_id, kind=KIND, text=body,
                           recipients=[customer.external_userid], product_types=[product.product_type])
    if customer.external_userid in out.refused:
        raise Forbidden("the customer withdrew consent to marketing messages: do not send them a recommendation")
    if out.blocked:
        raise Blocked(list(dict.fromkeys(f.match for f in out.findings)))
    at = utcnow() if now is None else now
    row = ProductRecommendation(
        corp_id=customer.corp_id, customer_id=customer.id, external_userid=customer.external_userid,
        advisor_staff_id=principal.staff_id, advisor_label=principal.label[:160], product_code=product.code,
        product_name=product.name, product_type=product.product_type, product_risk_level=product.risk_level,
        customer_level=decision.customer_level, assessment_expires_at=decision.expires_at,
        decision_code=decision.reason_code, explanation=decision.reason[:500], explanation_en=decision.reason_en[:500],
        final_text=out.text, disclosed=list(out.disclosed), verdict=out.verdict, created_at=at)
    session.add(row)
    session.flush()
    detail = {"recommendation_id": row.id, "product_code": product.code, "product_risk_level": product.risk_level,
              "customer_level": decision.customer_level, "decision": decision.reason_code, "verdict": out.verdict}
    contacts.record_event(session, corp_id=customer.corp_id, customer_id=customer.id, kind="product_recommended",
                          at=at, actor=principal.label, actor_staff_id=principal.staff_id, detail=detail)
    audit.record(session, corp_id=customer.corp_id, actor=principal, action="customer.product_recommended",
                 target_type="product_recommendation", target_id=row.id, detail=detail, ip=ip)
    return row


def findings_of(row: ProductRecommendation, session: Session) -> list[str]:
    """The phrases a "review" verdict found in the final text (shown to the advisor as a caution)."""
    if row.verdict == "pass":
        return []
    from siyu.compliance.service import review_outbound

    verdict = review_outbound(session, corp_id=row.corp_id, text=row.final_text)
    return list(dict.fromkeys(f.match for f in verdict.findings))


# --- the list for compliance and operations -------------------------------------------------------------------


@dataclass(frozen=True)
class RecommendationFilters:
    advisor_id: int | None = None
    product_code: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def as_dict(self) -> dict:
        return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in self.__dict__.items()
                if v not in (None, "")}


def _date(value: str, field: str) -> dt.date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("a date is YYYY-MM-DD", field=field) from None


def make_filters(*, advisor_id: str = "", product_code: str = "", date_from: str = "",
                 date_to: str = "") -> RecommendationFilters:
    advisor = None
    if (advisor_id or "").strip():
        try:
            advisor = int(advisor_id.strip())
        except ValueError:
            advisor = None
        if advisor is None or not valid_id(advisor):
            raise InvalidInput("choose an advisor from the list", field="advisor_id")
    code = suitability.valid_product_code(product_code, field="product_code") if (product_code or "").strip() \
        else None
    start, end = _date(date_from, "date_from"), _date(date_to, "date_to")
    if start and end and end < start:
        raise InvalidInput("the end date is before the start date", field="date_to")
    return RecommendationFilters(advisor_id=advisor, product_code=code, date_from=start, date_to=end)


def _query(principal: Principal, filters: RecommendationFilters):
    q = select(ProductRecommendation).where(ProductRecommendation.corp_id == principal.corp_id)
    if not principal.has_role(*READERS):
        if principal.staff_id is None:
            return q.where(False)
        q = q.where(ProductRecommendation.advisor_staff_id == principal.staff_id)
    if filters.advisor_id is not None:
        q = q.where(ProductRecommendation.advisor_staff_id == filters.advisor_id)
    if filters.product_code:
        q = q.where(ProductRecommendation.product_code == filters.product_code)
    if filters.date_from:
        q = q.where(ProductRecommendation.created_at >= service._day_start(filters.date_from))
    if filters.date_to:
        q = q.where(ProductRecommendation.created_at < service._day_start(filters.date_to + dt.timedelta(days=1)))
    return q.order_by(ProductRecommendation.created_at.desc(), ProductRecommendation.id.desc())


@dataclass(frozen=True)
class RecommendationRow:
    row: ProductRecommendation
    customer_masked: str


def _masked_names(session: Session, rows: list[ProductRecommendation]) -> dict[int, str]:
    from siyu.customers.models import Customer

    ids = sorted({r.customer_id for r in rows})
    return {i: pii.mask_name(n) for i, n in session.execute(select(Customer.id, Customer.name)
                                                             .where(Customer.id.in_(ids)))} if ids else {}


def list_recommendations(session: Session, *, principal: Principal, filters: RecommendationFilters,
                         limit: int = LIST_LIMIT) -> list[RecommendationRow]:
    rows = list(session.scalars(_query(principal, filters).limit(limit)))
    names = _masked_names(session, rows)
    return [RecommendationRow(row=r, customer_masked=names.get(r.customer_id, "")) for r in rows]


EXPORT_HEADER = ("时间 time", "顾问 advisor", "客户 customer", "客户 ID external_userid", "产品代码 product code",
                 "产品名称 product name", "产品类型 product type", "产品风险等级 product risk level",
                 "客户风险等级 customer level", "适当性说明 suitability explanation", "审查结论 review verdict",
                 "发送文本 final text")


def export_recommendations(session: Session, *, principal: Principal, filters: RecommendationFilters,
                           out: IO[bytes], fmt: str = "csv", ip: str | None = None) -> int:
    """The list under its filter as CSV (or Excel): customer names masked; audited with the filter
    and the row count. The final text is the sales-process evidence and is written as sent."""
    if not principal.has_role(*EXPORTERS):
        raise Forbidden("only administrators, operations staff and compliance officers export recommendations")

    def rows() -> Iterator[list]:
        q = _query(principal, filters).limit(EXPORT_MAX_ROWS).execution_options(yield_per=500)
        batch: list[ProductRecommendation] = []

        def flush() -> Iterator[list]:
            names = _masked_names(session, batch)
            for r in batch:
                yield [r.created_at.astimezone(audit.CALENDAR_ZONE).strftime("%Y-%m-%d %H:%M"), r.advisor_label,
                       names.get(r.customer_id, ""), r.external_userid, r.product_code, r.product_name,
                       r.product_type, r.product_risk_level, r.customer_level or "", r.explanation, r.verdict,
                       r.final_text]

        for r in session.scalars(q):
            batch.append(r)
            if len(batch) >= 500:
                yield from flush()
                batch = []
        yield from flush()

    count = tabular.write_table(out, fmt, EXPORT_HEADER, rows())
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="recommendations.exported",
                 target_type="product_recommendation", detail={"format": fmt, "filter": filters.as_dict(),
                                                               "rows": count}, ip=ip)
    return count


# --- retention and data-subject requests (registered in customers/privacy.py) ----------------------------------


def purge_recommendations(session: Session, *, corp_id: int, before: dt.datetime, limit: int) -> int:
    """Recommendations recorded before `before` (the retention period of sales records has passed)."""
    from siyu.privacy.service import purge_older

    return purge_older(session, ProductRecommendation, corp_id=corp_id, at=ProductRecommendation.created_at,
                       before=before, limit=limit)


def recommendations_of(session: Session, *, corp_id: int, customer_id: int) -> list[ProductRecommendation]:
    return list(session.scalars(select(ProductRecommendation).where(
        ProductRecommendation.corp_id == corp_id, ProductRecommendation.customer_id == customer_id)
        .order_by(ProductRecommendation.created_at, ProductRecommendation.id)))
