"""Suitability (适当性管理): products with risk levels R1–R5, customers with risk levels C1–C5, and the
one rule that decides whether a product may be offered to a customer.

The rule (DESIGN §3): a customer is eligible for a product only when the customer's level is known,
not expired and at least the product's (C1 may buy R1 only, C5 anything); an R1 product is suitable
for everyone, even without an assessment. `decide` is that rule and nothing else: pure, no database.
Broadcasts, 1-on-1 recommendations, coupons, the CLI, the REST API and the console all decide
through it (`check_eligibility`, `decide_many`, `eligible_refs` feed it from the database), so the
same question gets the same answer and the same explanation everywhere.

Customers are named by `customer_ref` (the WeCom external_userid or the firm's customer id) until the
customers domain exists. A customer's assessments are history: a new one is a new row, the one in
force is the latest by `assessed_at` (ties: the one recorded last).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.compliance.models import CustomerRiskAssessment, Product
from siyu.db import utcnow
from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.tenancy import audit
from siyu.tenancy.principal import Principal

CUSTOMER_LEVELS = ("C1", "C2", "C3", "C4", "C5")
PRODUCT_LEVELS = ("R1", "R2", "R3", "R4", "R5")
# 产品类型: 理财, 基金, 保险, 信贷, 存款.
PRODUCT_TYPES: dict[str, str] = {
    "wealth_management": "理财",
    "fund": "基金",
    "insurance": "保险",
    "credit": "信贷",
    "deposit": "存款",
}
# Where an assessment comes from: the customer's own questionnaire (问卷), the firm's KYC system over
# the REST API, a branch's file import, or a compliance officer's manual entry.
SOURCES = ("questionnaire", "firm_kyc_api", "branch_import", "manual")

# A risk questionnaire is commonly valid for one year; firms shorten it for elderly or other
# special customers, so the validity is a parameter of each assessment.
DEFAULT_VALID_MONTHS = 12
MAX_VALID_MONTHS = 60
# Clocks of the firm's systems and ours differ a little; an assessment "from the future" beyond this is refused.
CLOCK_SKEW = dt.timedelta(minutes=5)

MAX_ID = 2**63 - 1
CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
REF_RE = re.compile(r"[^\s\x00-\x1f\x7f]{1,128}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
BATCH = 500  # customer refs per query in bulk decisions

CUSTOMER_LEVEL_NAMES = {"C1": "保守型", "C2": "稳健型", "C3": "平衡型", "C4": "成长型", "C5": "进取型"}
PRODUCT_LEVEL_NAMES = {"R1": "低风险", "R2": "中低风险", "R3": "中风险", "R4": "中高风险", "R5": "高风险"}


# --- the rule ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """An eligibility decision with its explanation, in Chinese (`reason`) and English (`reason_en`).

    reason_code: r1_for_all | level_sufficient | level_below | level_unknown | assessment_expired |
    product_inactive."""

    eligible: bool
    reason_code: str
    reason: str
    reason_en: str
    customer_level: str | None
    product_level: str
    expires_at: dt.datetime | None = None

    def as_dict(self) -> dict:
        return {
            "eligible": self.eligible,
            "reason": self.reason,
            "reason_en": self.reason_en,
            "reason_code": self.reason_code,
            "customer_level": self.customer_level,
            "product_level": self.product_level,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


def valid_customer_level(value: object, *, field: str = "customer_level") -> str:
    """A customer risk level C1–C5 (case and surrounding spaces forgiven), or InvalidInput naming `field`."""
    level = value.strip().upper() if isinstance(value, str) else None
    if level not in CUSTOMER_LEVELS:
        raise InvalidInput("a customer risk level is one of C1, C2, C3, C4, C5", field=field)
    return level


def valid_product_level(value: object, *, field: str = "risk_level") -> str:
    """A product risk level R1–R5, or InvalidInput naming `field`."""
    level = value.strip().upper() if isinstance(value, str) else None
    if level not in PRODUCT_LEVELS:
        raise InvalidInput("a product risk level is one of R1, R2, R3, R4, R5", field=field)
    return level


def _aware(value: object, *, field: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput("a time with a time zone is required", field=field)
    return value.astimezone(dt.UTC)


def _range_zh(c: str, *, only: bool = False) -> str:
    n = int(c[1])
    if n == 1:
        return "只能购买 R1 产品"
    return f"{'只能' if only else '可'}购买 R1 至 R{n} 的产品"


def _range_en(c: str, *, only: bool = False) -> str:
    n = int(c[1])
    if n == 1:
        return "may be offered R1 products only"
    return f"may {'only ' if only else ''}be offered products from R1 to R{n}"


def decide(
    customer_level: str | None,
    product_level: str,
    *,
    expires_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> Decision:
    """May a customer at `customer_level` (None: no assessment) be offered a product at `product_level`?

    `expires_at` is when the customer's assessment stops being valid (None: it does not expire, e.g.
    a level given by hand for a what-if question). Pure: the same arguments give the same decision."""
    p = valid_product_level(product_level, field="product_level")
    c = None if customer_level is None else valid_customer_level(customer_level)
    at = utcnow() if now is None else _aware(now, field="now")
    expiry = None if expires_at is None else _aware(expires_at, field="expires_at")
    p_name = f"{p}（{PRODUCT_LEVEL_NAMES[p]}）"
    if p == "R1":
        return Decision(
            True, "r1_for_all",
            f"产品风险等级为{p_name}：R1 产品适合所有客户，无须风险测评（客户等级：{c or '未知'}）。",
            f"The product's risk level is {p}: an R1 product is suitable for every customer, with or without a "
            f"risk assessment (customer level: {c or 'unknown'}).",
            c, p, expiry,
        )
    if c is None:
        return Decision(
            False, "level_unknown",
            f"客户风险等级未知（无风险测评记录），产品风险等级为{p_name}：风险等级未知的客户只能购买 R1 产品。",
            f"The customer's risk level is unknown (no risk assessment) and the product's is {p}: a customer "
            "without a known level may only be offered R1 products.",
            None, p, expiry,
        )
    c_name = f"{c}（{CUSTOMER_LEVEL_NAMES[c]}）"
    if expiry is not None and expiry <= at:
        day = expiry.date().isoformat()
        return Decision(
            False, "assessment_expired",
            f"客户风险等级{c_name}的测评已于 {day} 过期，产品风险等级为{p_name}：测评过期的客户须重新测评，"
            "在此之前只能购买 R1 产品。",
            f"The customer's risk assessment ({c}) expired on {day} and the product's level is {p}: the customer "
            "must be assessed again and until then may only be offered R1 products.",
            c, p, expiry,
        )
    if int(c[1]) >= int(p[1]):
        return Decision(
            True, "level_sufficient",
            f"客户风险等级{c_name}不低于产品风险等级{p_name}：{c} 客户{_range_zh(c)}。",
            f"The customer's risk level {c} is at least the product's {p}: a {c} customer {_range_en(c)}.",
            c, p, expiry,
        )
    return Decision(
        False, "level_below",
        f"客户风险等级{c_name}低于产品风险等级{p_name}：{c} 客户{_range_zh(c, only=True)}。",
        f"The customer's risk level {c} is below the product's {p}: a {c} customer {_range_en(c, only=True)}.",
        c, p, expiry,
    )




def _inactive(product: Product, c: str | None, expiry: dt.datetime | None) -> Decision:
    return Decision(
        False, "product_inactive",
        f"产品 {product.code} 已停用：停用的产品不得向任何客户推荐。",
        f"The product {product.code} is deactivated: a deactivated product is not offered to any customer.",
        c, product.risk_level, expiry,
    )


# --- validation ---------------------------------------------------------------------------------------------


def _corp(corp_id: object) -> int:
    if not isinstance(corp_id, int) or isinstance(corp_id, bool) or not 1 <= corp_id <= MAX_ID:
        raise InvalidInput("invalid corp", field="corp_id")
    return corp_id


def valid_product_code(value: object, *, field: str = "code") -> str:
    code = value.strip() if isinstance(value, str) else ""
    if not CODE_RE.fullmatch(code):
        raise InvalidInput("a product code is 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit",
                           field=field)
    return code


def valid_customer_ref(value: object, *, field: str = "customer_ref") -> str:
    ref = value.strip() if isinstance(value, str) else ""
    if not REF_RE.fullmatch(ref):
        raise InvalidInput("a customer reference is 1–128 characters without spaces or control characters",
                           field=field)
    return ref


def _name(value: object) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name or len(name) > 200 or _CONTROL.search(name):
        raise InvalidInput("a product name is 1–200 characters without control characters", field="name")
    return name


def valid_product_type(value: object, *, field: str = "product_type") -> str:
    kind = value.strip() if isinstance(value, str) else ""
    if kind not in PRODUCT_TYPES:
        raise InvalidInput("a product type is one of %(types)s", field=field,
                           params={"types": ", ".join(PRODUCT_TYPES)})
    return kind


def _source(value: object) -> str:
    source = value.strip() if isinstance(value, str) else ""
    if source not in SOURCES:
        raise InvalidInput("an assessment source is one of %(sources)s", field="source",
                           params={"sources": ", ".join(SOURCES)})
    return source


def _actor_fields(actor: Principal | str) -> tuple[str, int | None]:
    if isinstance(actor, Principal):
        return actor.label[:120], actor.staff_id
    return str(actor)[:120], None


# --- products -------------------------------------------------------------------------------------------------


def get_product(session: Session, *, corp_id: int, code: str, field: str = "product") -> Product:
    """The corp's product with this code (active or not); NotFound(field) otherwise."""
    corp_id = _corp(corp_id)
    code = code.strip() if isinstance(code, str) else ""
    product = session.scalar(select(Product).where(Product.corp_id == corp_id, Product.code == code)) \
        if CODE_RE.fullmatch(code) else None
    if product is None:
        raise NotFound("no such product", field=field)
    return product


def list_products(session: Session, *, corp_id: int, active_only: bool = False,
                  product_type: str | None = None) -> list[Product]:
    q = select(Product).where(Product.corp_id == _corp(corp_id))
    if active_only:
        q = q.where(Product.is_active.is_(True))
    if product_type:
        q = q.where(Product.product_type == product_type)
    return list(session.scalars(q.order_by(Product.code)))


def _audit_product(session: Session, product: Product, *, action: str, actor: Principal | str,
                   changes: dict | None = None) -> None:
    detail = {"code": product.code, "name": product.name, "product_type": product.product_type,
              "risk_level": product.risk_level}
    if changes:
        detail["changes"] = changes
    audit.record(session, corp_id=product.corp_id, actor=actor, action=f"product.{action}", target_type="product",
                 target_id=product.id, detail=detail)


def create_product(
    session: Session,
    *,
    corp_id: int,
    actor: Principal | str,
    code: str,
    name: str,
    product_type: str,
    risk_level: str,
) -> Product:
    """Add a product to the corp's catalogue. Every value is checked before anything is written."""
    corp_id = _corp(corp_id)
    code = valid_product_code(code)
    values = {"name": _name(name), "product_type": valid_product_type(product_type),
              "risk_level": valid_product_level(risk_level)}
    if session.scalar(select(Product.id).where(Product.corp_id == corp_id, Product.code == code)) is not None:
        raise Conflict("the catalogue already has a product with this code", field="code")
    product = Product(corp_id=corp_id, code=code, is_active=True, **values)
    session.add(product)
    session.flush()
    _audit_product(session, product, action="created", actor=actor)
    return product




def edit_product(
    session: Session,
    *,
    corp_id: int,
    actor: Principal | str,
    code: str,
    name: str | None = None,
    product_type: str | None = None,
    risk_level: str | None = None,
    is_active: bool | None = None,
) -> Product:
    """Change some fields of a product; fields left None stay. The code names the product and does not change."""
    product = get_product(session, corp_id=corp_id, code=code)
    new: dict[str, object] = {}
    if name is not None:
        new["name"] = _name(name)
    if product_type is not None:
        new["product_type"] = valid_product_type(product_type)
    if risk_level is not None:
        new["risk_level"] = valid_product_level(risk_level)
    if is_active is not None:
        if not isinstance(is_active, bool):
            raise InvalidInput("is_active is true or false", field="is_active")
        new["is_active"] = is_active
    changes = {k: [getattr(product, k), v] for k, v in new.items() if getattr(product, k) != v}
    if not changes:
        return product
    for k, (_old, v) in changes.items():
        setattr(product, k, v)
    product.updated_at = utcnow()
    session.flush()
    if set(changes) == {"is_active"}:
        action = "reactivated" if product.is_active else "deactivated"
    else:
        action = "edited"
    _audit_product(session, product, action=action, actor=actor, changes=changes)
    return product


def deactivate_product(session: Session, *, corp_id: int, actor: Principal | str, code: str) -> Product:
    """Take a product out of the catalogue (it stays, with its history): no customer is eligible for it."""
    return edit_product(session, corp_id=corp_id, actor=actor, code=code, is_active=False)


def reactivate_product(session: Session, *, corp_id: int, actor: Principal | str, code: str) -> Product:
    return edit_product(session, corp_id=corp_id, actor=actor, code=code, is_active=True)


# --- customer risk assessments ---------------------------------------------------------------------------------


def _add_months(at: dt.datetime, months: int) -> dt.datetime:
    """The same day and time `months` later (the last day of the month when that day does not exist)."""
    index = at.month - 1 + months
    year, month = at.year + index // 12, index % 12 + 1
    return at.replace(year=year, month=month, day=min(at.day, calendar.monthrange(year, month)[1]))


def default_expiry(assessed_at: dt.datetime, *, valid_months: int = DEFAULT_VALID_MONTHS) -> dt.datetime:
    """When an assessment made at `assessed_at` expires: `valid_months` later (one year by default)."""
    if isinstance(valid_months, bool) or not isinstance(valid_months, int) or not 1 <= valid_months <= MAX_VALID_MONTHS:
        raise InvalidInput("the validity is 1–%(max)s months", field="valid_months", params={"max": MAX_VALID_MONTHS})
    return _add_months(_aware(assessed_at, field="assessed_at"), valid_months)


def record_assessment(
    session: Session,
    *,
    corp_id: int,
    actor: Principal | str,
    customer_ref: str,
    level: str,
    source: str,
    assessed_at: dt.datetime | None = None,
    expires_at: dt.datetime | None = None,
    valid_months: int = DEFAULT_VALID_MONTHS,
    reference: str = "",
) -> CustomerRiskAssessment:
    """Record a customer's risk assessment (a new row; earlier ones stay as history).

    `assessed_at` defaults to now; `expires_at` to `valid_months` after it (12: one year)."""
    corp_id = _corp(corp_id)
    ref = valid_customer_ref(customer_ref)
    level = valid_customer_level(level, field="level")
    source = _source(source)
    now = utcnow()
    assessed = now if assessed_at is None else _aware(assessed_at, field="assessed_at")
    if assessed > now + CLOCK_SKEW:
        raise InvalidInput("the assessment cannot be in the future", field="assessed_at")
    if assessed.year < 1990:
        raise InvalidInput("the assessment is too old to be real", field="assessed_at")
    if expires_at is None:
        expiry = default_expiry(assessed, valid_months=valid_months)
    else:
        expiry = _aware(expires_at, field="expires_at")
        if expiry <= assessed:
            raise InvalidInput("the assessment must expire after it was made", field="expires_at")
        if expiry > _add_months(assessed, MAX_VALID_MONTHS):
            raise InvalidInput("an assessment is valid for at most %(max)s months", field="expires_at",
                               params={"max": MAX_VALID_MONTHS})
    reference = reference.strip() if isinstance(reference, str) else ""
    if len(reference) > 200 or _CONTROL.search(reference):
        raise InvalidInput("the reference is at most 200 characters without control characters", field="reference")
    label, staff_id = _actor_fields(actor)
    row = CustomerRiskAssessment(corp_id=corp_id, customer_ref=ref, level=level, source=source, assessed_at=assessed,
                                 expires_at=expiry, reference=reference, recorded_by=label,
                                 recorded_by_staff_id=staff_id)
    session.add(row)
    session.flush()
    # The customer reference is an identifier of a person: the audit entry points at the row instead.
    audit.record(session, corp_id=corp_id, actor=actor, action="risk_assessment.recorded",
                 target_type="customer_risk_assessment", target_id=row.id,
                 detail={"level": level, "source": source, "assessed_at": assessed.isoformat(),
                         "expires_at": expiry.isoformat()})
    return row




def current_assessment(session: Session, *, corp_id: int, customer_ref: str) -> CustomerRiskAssessment | None:
    """The assessment in force for a customer: the latest by assessed_at (expired or not), or None."""
    ref = valid_customer_ref(customer_ref)
    return session.scalar(
        select(CustomerRiskAssessment)
        .where(CustomerRiskAssessment.corp_id == _corp(corp_id), CustomerRiskAssessment.customer_ref == ref)
        .order_by(CustomerRiskAssessment.assessed_at.desc(), CustomerRiskAssessment.id.desc())
        .limit(1)
    )


def assessment_history(session: Session, *, corp_id: int, customer_ref: str) -> list[CustomerRiskAssessment]:
    """Every assessment of a customer, the one in force first."""
    ref = valid_customer_ref(customer_ref)
    return list(session.scalars(
        select(CustomerRiskAssessment)
        .where(CustomerRiskAssessment.corp_id == _corp(corp_id), CustomerRiskAssessment.customer_ref == ref)
        .order_by(CustomerRiskAssessment.assessed_at.desc(), CustomerRiskAssessment.id.desc())
    ))


# --- decisions from the database -----------------------------------------------------------------------------


def check_eligibility(
    session: Session,
    *,
    corp_id: int,
    customer_ref: str,
    product_code: str,
    now: dt.datetime | None = None,
) -> Decision:
    """The decision for one customer and one of the corp's products, from the assessment in force."""
    ref = valid_customer_ref(customer_ref)
    product = get_product(session, corp_id=corp_id, code=product_code)
    current = current_assessment(session, corp_id=corp_id, customer_ref=ref)
    level = current.level if current else None
    expiry = current.expires_at if current else None
    if not product.is_active:
        return _inactive(product, level, expiry)
    return decide(level, product.risk_level, expires_at=expiry, now=now)


def decide_many(
    session: Session,
    *,
    corp_id: int,
    product_code: str,
    customer_refs: Iterable[str],
    now: dt.datetime | None = None,
) -> dict[str, Decision]:
    """The decision for each customer (deduplicated, in the order given) for one product, in bulk:
    one query per 500 customers. A reference that is not valid is an error naming `customer_refs`."""
    product = get_product(session, corp_id=corp_id, code=product_code)
    refs: list[str] = []
    seen: set[str] = set()
    for raw in customer_refs:
        ref = valid_customer_ref(raw, field="customer_refs")
        if ref not in seen:
            seen.add(ref)
            refs.append(ref)
    now = utcnow() if now is None else _aware(now, field="now")
    current: dict[str, tuple[str, dt.datetime]] = {}
    for i in range(0, len(refs), BATCH):
        chunk = refs[i : i + BATCH]
        rows = session.execute(
            select(CustomerRiskAssessment.customer_ref, CustomerRiskAssessment.level, CustomerRiskAssessment.expires_at)
            .where(CustomerRiskAssessment.corp_id == product.corp_id, CustomerRiskAssessment.customer_ref.in_(chunk))
            .order_by(CustomerRiskAssessment.customer_ref, CustomerRiskAssessment.assessed_at.desc(),
                      CustomerRiskAssessment.id.desc())
        )
        for ref, level, expiry in rows:
            current.setdefault(ref, (level, expiry))
    out: dict[str, Decision] = {}
    for ref in refs:
        level, expiry = current.get(ref, (None, None))
        if not product.is_active:
            out[ref] = _inactive(product, level, expiry)
        else:
            out[ref] = decide(level, product.risk_level, expires_at=expiry, now=now)
    return out


def eligible_refs(
    session: Session,
    *,
    corp_id: int,
    product_code: str,
    customer_refs: Iterable[str],
    now: dt.datetime | None = None,
) -> list[str]:
    """The customers (deduplicated, in the order given) to whom the product may be offered — what a
    broadcast keeps; `decide_many` says why each of the others is left out."""
    decisions = decide_many(session, corp_id=corp_id, product_code=product_code, customer_refs=customer_refs,
                            now=now)
    return [ref for ref, d in decisions.items() if d.eligible]
