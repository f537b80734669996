"""REST API of the compliance domain: the product catalogue, customers' risk assessments pushed by
the firm's KYC system, suitability decisions and risk disclosures.

Every call is limited to the API key's own corp: another corp's product or customer is simply not
found. Scopes: `products:read` / `products:write` for the catalogue and disclosures, `kyc:write` to
push risk levels, `customers:read` to read a customer's levels and eligibility, `content:read` to read
outbound content and its approval state."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy.orm import Session

from siyu.compliance import approval, disclosure, suitability
from siyu.compliance.schemas import (
    CUSTOMER_REF_PATTERN,
    PRODUCT_CODE_PATTERN,
    AttachDisclosureIn,
    AttachDisclosureOut,
    ContentCheckIn,
    ContentCheckOut,
    ContentItemDetail,
    ContentItemList,
    ContentItemOut,
    ContentKind,
    ContentStatus,
    ContentVersionOut,
    DisclosureIn,
    DisclosureList,
    DisclosureOut,
    EligibilityOut,
    FindingOut,
    ProductCreate,
    ProductList,
    ProductOut,
    ProductType,
    ProductUpdate,
    RiskAssessmentIn,
    RiskAssessmentList,
    RiskAssessmentOut,
)
from siyu.db import get_session
from siyu.tenancy.deps import API_ERRORS, require_scope
from siyu.tenancy.principal import Principal

router = APIRouter(prefix="/api/v1/compliance", tags=["compliance"])

ERRORS = API_ERRORS
NOT_FOUND = {404: {"description": "no such product in the key's corp (`field`: product)"}}
CONFLICT = {409: {"description": "the catalogue already has this code"}}

read_products = require_scope("products:read")
write_products = require_scope("products:write")
write_kyc = require_scope("kyc:write")
read_customers = require_scope("customers:read")

CODE = Path(pattern=PRODUCT_CODE_PATTERN, description="the product's code")


# --- products ----------------------------------------------------------------------------------------------


@router.get("/products", response_model=ProductList, responses=ERRORS)
def list_products(
    active_only: bool = Query(False, description="only products that are on offer"),
    product_type: ProductType | None = Query(None),
    principal: Principal = Depends(read_products),
    session: Session = Depends(get_session),
) -> ProductList:
    """The corp's product catalogue, by code (scope `products:read`)."""
    rows = suitability.list_products(session, corp_id=principal.corp_id, active_only=active_only,
                                     product_type=product_type)
    return ProductList(items=[ProductOut.model_validate(p) for p in rows])


@router.post("/products", response_model=ProductOut, status_code=201, responses={**ERRORS, **CONFLICT})
def create_product(body: ProductCreate, principal: Principal = Depends(write_products),
                   session: Session = Depends(get_session)) -> ProductOut:
    """Add a product with its risk level R1–R5 (scope `products:write`)."""
    product = suitability.create_product(session, corp_id=principal.corp_id, actor=principal, code=body.code,
                                         name=body.name, product_type=body.product_type, risk_level=body.risk_level)
    return ProductOut.model_validate(product)


@router.get("/products/{code}", response_model=ProductOut, responses={**ERRORS, **NOT_FOUND})
def get_product(code: str = CODE, principal: Principal = Depends(read_products),
                session: Session = Depends(get_session)) -> ProductOut:
    return ProductOut.model_validate(suitability.get_product(session, corp_id=principal.corp_id, code=code))


@router.patch("/products/{code}", response_model=ProductOut, responses={**ERRORS, **NOT_FOUND})
def edit_product(body: ProductUpdate, code: str = CODE, principal: Principal = Depends(write_products),
                 session: Session = Depends(get_session)) -> ProductOut:
    """Change a product's name, type, risk level or whether it is on offer (scope `products:write`)."""
    product = suitability.edit_product(session, corp_id=principal.corp_id, actor=principal, code=code,
                                       name=body.name, product_type=body.product_type, risk_level=body.risk_level,
                                       is_active=body.is_active)
    return ProductOut.model_validate(product)


@router.delete("/products/{code}", response_model=ProductOut, responses={**ERRORS, **NOT_FOUND})
def deactivate_product(code: str = CODE, principal: Principal = Depends(write_products),
                       session: Session = Depends(get_session)) -> ProductOut:
    """Deactivate a product: it stays in the catalogue (past decisions name it) and nobody is eligible for it."""
    product = suitability.deactivate_product(session, corp_id=principal.corp_id, actor=principal, code=code)
    return ProductOut.model_validate(product)


# --- risk assessments and eligibility ----------------------------------------------------------------------------


@router.post("/risk-assessments", response_model=RiskAssessmentOut, status_code=201, responses=ERRORS)
def record_assessment(body: RiskAssessmentIn, principal: Principal = Depends(write_kyc),
                      session: Session = Depends(get_session)) -> RiskAssessmentOut:
    """Record a customer's risk level C1–C5 from the firm's KYC (scope `kyc:write`). Earlier assessments
    stay as history; the one in force is the latest by `assessed_at`."""
    row = suitability.record_assessment(
        session, corp_id=principal.corp_id, actor=principal, customer_ref=body.customer_ref, level=body.level,
        source=body.source, assessed_at=body.assessed_at, expires_at=body.expires_at, valid_months=body.valid_months,
        reference=body.reference,
    )
    return RiskAssessmentOut.model_validate(row)


@router.get("/risk-assessments", response_model=RiskAssessmentList, responses=ERRORS)
def assessment_history(
    customer_ref: str = Query(pattern=CUSTOMER_REF_PATTERN),
    principal: Principal = Depends(read_customers),
    session: Session = Depends(get_session),
) -> RiskAssessmentList:
    """A customer's assessments, the one in force first (scope `customers:read`)."""
    rows = suitability.assessment_history(session, corp_id=principal.corp_id, customer_ref=customer_ref)
    return RiskAssessmentList(items=[RiskAssessmentOut.model_validate(r) for r in rows])


@router.get("/eligibility", response_model=EligibilityOut, responses={**ERRORS, **NOT_FOUND})
def eligibility(
    customer_ref: str = Query(pattern=CUSTOMER_REF_PATTERN),
    product_code: str = Query(pattern=PRODUCT_CODE_PATTERN),
    principal: Principal = Depends(read_customers),
    session: Session = Depends(get_session),
) -> EligibilityOut:
    """May the product be offered to the customer, and why (scope `customers:read`)."""
    decision = suitability.check_eligibility(session, corp_id=principal.corp_id, customer_ref=customer_ref,
                                             product_code=product_code)
    return EligibilityOut(**decision.as_dict() | {"customer_ref": customer_ref.strip(),
                                                  "product_code": product_code.strip()})


# --- risk disclosures ------------------------------------------------------------------------------------------------


def _disclosures(session: Session, corp_id: int) -> DisclosureList:
    own = disclosure.corp_overrides(session, corp_id=corp_id)
    texts = disclosure.disclosure_texts(session, corp_id=corp_id)
    return DisclosureList(items=[DisclosureOut(product_type=k, text=texts[k], is_default=k not in own)
                                 for k in suitability.PRODUCT_TYPES])


@router.get("/disclosures", response_model=DisclosureList, responses=ERRORS)
def list_disclosures(principal: Principal = Depends(read_products),
                     session: Session = Depends(get_session)) -> DisclosureList:
    """The risk disclosure in force for each product type (scope `products:read`)."""
    return _disclosures(session, principal.corp_id)


@router.put("/disclosures/{product_type}", response_model=DisclosureOut, responses=ERRORS)
def set_disclosure(body: DisclosureIn, product_type: ProductType, principal: Principal = Depends(write_products),
                   session: Session = Depends(get_session)) -> DisclosureOut:
    """Replace a product type's default disclosure with the corp's own text (scope `products:write`)."""
    row = disclosure.set_disclosure(session, corp_id=principal.corp_id, actor=principal, product_type=product_type,
                                    text=body.text)
    return DisclosureOut(product_type=row.product_type, text=row.text, is_default=False)


@router.delete("/disclosures/{product_type}", status_code=204, responses=ERRORS)
def reset_disclosure(product_type: ProductType, principal: Principal = Depends(write_products),
                     session: Session = Depends(get_session)) -> Response:
    """Go back to the default disclosure of a product type (scope `products:write`)."""
    disclosure.reset_disclosure(session, corp_id=principal.corp_id, actor=principal, product_type=product_type)
    return Response(status_code=204)


@router.post("/disclosures/attach", response_model=AttachDisclosureOut, responses=ERRORS)
def attach_disclosure(body: AttachDisclosureIn, principal: Principal = Depends(read_products),
                      session: Session = Depends(get_session)) -> AttachDisclosureOut:
    """The text with the disclosures it needs appended: those of the attached products' types and of the
    product types the text talks about (scope `products:read`)."""
    needed = disclosure.needed_disclosures(session, corp_id=principal.corp_id, text=body.text,
                                           product_types=set(body.product_types))
    text = body.text.rstrip() + disclosure.SEPARATOR + "\n".join(d for _k, d in needed) if needed else body.text
    return AttachDisclosureOut(text=text, appended=[k for k, _d in needed])


# --- content approval ------------------------------------------------------------------------------------------------

read_content = require_scope("content:read")
CONTENT_NOT_FOUND = {404: {"description": "no such content in the key's corp (`field`: item_id)"}}


@router.get("/content", response_model=ContentItemList, responses=ERRORS)
def list_content(
    kind: ContentKind | None = Query(None),
    ref: str | None = Query(None, pattern=CUSTOMER_REF_PATTERN, description="the owning object, e.g. channel_code:42"),
    status: ContentStatus | None = Query(None, description="the state of the latest version"),
    principal: Principal = Depends(read_content),
    session: Session = Depends(get_session),
) -> ContentItemList:
    """The corp's outbound content (welcome messages, keyword replies, broadcasts …) with its approval state
    and the approved text in force (scope `content:read`)."""
    items = approval.list_items(session, corp_id=principal.corp_id, kind=kind, ref=ref, status=status)
    texts = approval.approved_texts(session, corp_id=principal.corp_id, items=items)
    names = _owner_names(session, principal.corp_id, items)
    return ContentItemList(items=[ContentItemOut.model_validate(i).model_copy(update={
        "approved_text": texts.get(i.id), "owner_name": names.get(i.id)}) for i in items])


def _owner_names(session: Session, corp_id: int, items) -> dict[int, str]:
    from siyu.compliance import content

    refs = {i.id: content.OwnerRef(i.owner_type, i.owner_id) for i in items if i.owner_type is not None}
    views = content.describe_owners(session, corp_id=corp_id, refs=refs.values())
    return {item_id: views[ref].name for item_id, ref in refs.items() if views[ref].exists}


@router.post("/content/check", response_model=ContentCheckOut, responses=ERRORS)
def check_content(body: ContentCheckIn, principal: Principal = Depends(read_content),
                  session: Session = Depends(get_session)) -> ContentCheckOut:
    """Review a text with the corp's wording dictionary in force, as outbound content is reviewed when
    saved: the verdict and every finding's rule, category, severity and span (scope `content:read`).
    A save or send refused by the review answers 422 with the same `findings`."""
    from siyu.compliance.dictionary_io import try_text

    verdict = try_text(session, corp_id=principal.corp_id, text=body.text)
    return ContentCheckOut(verdict=verdict.verdict, findings=[FindingOut.model_validate(f) for f in verdict.findings])


@router.get("/content/{item_id}", response_model=ContentItemDetail, responses={**ERRORS, **CONTENT_NOT_FOUND})
def get_content(item_id: int = Path(ge=1, le=approval.MAX_ID), principal: Principal = Depends(read_content),
                session: Session = Depends(get_session)) -> ContentItemDetail:
    """One content item with every version, its review and disclosures (scope `content:read`)."""
    item = approval.get_item(session, corp_id=principal.corp_id, item_id=item_id)
    versions = approval.versions(session, corp_id=principal.corp_id, item_id=item.id)
    texts = approval.approved_texts(session, corp_id=principal.corp_id, items=[item])
    owner_name = _owner_names(session, principal.corp_id, [item]).get(item.id)
    base = ContentItemOut.model_validate(item).model_dump() | {"approved_text": texts.get(item.id),
                                                               "owner_name": owner_name}
    return ContentItemDetail(**base, versions=[ContentVersionOut.model_validate(v) for v in versions])


# --- chat-archive alerts: the routes live in archive_api.py ----------------------------------------------

from siyu.compliance.archive_api import router as _archive_alerts_router  # noqa: E402

router.include_router(_archive_alerts_router)
