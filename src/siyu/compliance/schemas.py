"""Pydantic shapes of the compliance domain: review verdicts, wording-dictionary entries, products,
risk assessments, suitability decisions and risk disclosures."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

# Wording categories (措辞类别). "disclosure" entries are allowed phrases that mask their span:
# risk warnings and negated or benign uses ("不保本", "第一次").
CATEGORIES: dict[str, str] = {
    "promise": "承诺保本保收益",
    "superlative": "绝对化与夸大用语",
    "pressure": "制造紧迫感",
    "comparison": "误导性比较",
    "unlicensed": "非法或未经许可的金融活动",
    "off_platform": "引导脱离平台与私下交易",
    "incentive": "基金销售不当激励",
    "firm": "本机构自定",
    "disclosure": "风险揭示与放行用语",
    # Kinds of the rule families (rules.py); a corp may add phrases in them too.
    "principal_guarantee": "保本承诺（变相）",
    "return_promise": "承诺或预测收益",
    "past_performance": "展示业绩未提示过往业绩不代表未来",
    "disparagement": "贬低同业",
    "insurance_as_deposit": "将保险混同存款",
    "suitability_evasion": "规避适当性或隐瞒风险",
    "loan_promise": "贷款审批承诺",
    "purchase_incentive": "与购买挂钩的返利赠送",
    "illegal_fundraising": "非法集资",
    "anti_fraud": "诈骗风险行为",
    "securities_advice": "非法荐股与确定性预测",
    "private_fund_promotion": "私募公开宣传与降低门槛",
}

# Detector categories (识别器), reported with the dictionary's findings.
DETECTOR_CATEGORIES: dict[str, str] = {
    "phone": "手机号码",
    "id_number": "身份证号码",
    "bank_card": "银行卡号",
    "wechat_id": "微信号/QQ号",
    "qr_code": "二维码或图片",
    "red_packet": "红包或转账",
    "external_link": "外部链接",
}

Severity = Literal["block", "review", "allow"]
VerdictValue = Literal["block", "review", "pass"]
Context = Literal["outbound", "archive"]

MAX_PHRASE_LEN = 100


class FindingOut(BaseModel):
    """One hit; `start`/`end` are character offsets into the original text (`text[start:end] == match`)."""

    model_config = ConfigDict(from_attributes=True)

    category: str
    rule: str
    start: int
    end: int
    match: str
    severity: Literal["block", "review"]
    source: Literal["dictionary", "phonetic", "rule", "context", "detector", "model"] = "dictionary"
    phrase: str | None = None
    note: str | None = None


class VerdictOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    verdict: VerdictValue
    findings: list[FindingOut] = Field(default_factory=list)


class WordingEntryFields(BaseModel):
    """What a compliance officer enters for one dictionary entry (and what the seed file holds)."""

    model_config = ConfigDict(str_strip_whitespace=True)

    category: str
    phrase: str = Field(min_length=1, max_length=MAX_PHRASE_LEN)
    severity: Severity
    rule: str = Field(min_length=1, max_length=500)
    notes: str = Field(default="", max_length=1000)

    @field_validator("category")
    @classmethod
    def _known_category(cls, v: str) -> str:
        if v not in CATEGORIES:
            raise ValueError(f"unknown category {v!r}; one of {', '.join(CATEGORIES)}")
        return v


class WordingEntryCreate(WordingEntryFields):
    pass


class WordingEntryUpdate(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    category: str | None = None
    phrase: str | None = Field(default=None, min_length=1, max_length=MAX_PHRASE_LEN)
    severity: Severity | None = None
    rule: str | None = Field(default=None, min_length=1, max_length=500)
    notes: str | None = Field(default=None, max_length=1000)

    @field_validator("category")
    @classmethod
    def _known_category(cls, v: str | None) -> str | None:
        if v is not None and v not in CATEGORIES:
            raise ValueError(f"unknown category {v!r}; one of {', '.join(CATEGORIES)}")
        return v


class WordingEntryOut(WordingEntryFields):
    model_config = ConfigDict(from_attributes=True)

    id: int
    corp_id: int | None
    is_active: bool


class SeedFile(BaseModel):
    name: str
    version: str
    note: str = ""
    entries: list[WordingEntryFields]


# --- suitability (适当性) and risk disclosures ----------------------------------------------------------------

ProductType = Literal["wealth_management", "fund", "insurance", "credit", "deposit"]
ProductLevel = Literal["R1", "R2", "R3", "R4", "R5"]
CustomerLevel = Literal["C1", "C2", "C3", "C4", "C5"]
AssessmentSource = Literal["questionnaire", "firm_kyc_api", "branch_import", "manual"]
PRODUCT_CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
CUSTOMER_REF_PATTERN = r"^[^\s\x00-\x1f\x7f]{1,128}$"


class ProductCreate(BaseModel):
    code: str = Field(pattern=PRODUCT_CODE_PATTERN, description="the firm's product code, unique in the corp")
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")
    product_type: ProductType
    risk_level: ProductLevel


class ProductUpdate(BaseModel):
    """Fields left out stay as they are; the code names the product and does not change."""

    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")
    product_type: ProductType | None = None
    risk_level: ProductLevel | None = None
    is_active: bool | None = None


class ProductOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    product_type: ProductType
    risk_level: ProductLevel
    is_active: bool
    created_at: datetime
    updated_at: datetime


class ProductList(BaseModel):
    items: list[ProductOut]


class RiskAssessmentIn(BaseModel):
    """A customer's risk level as the firm's KYC system assessed it."""

    customer_ref: str = Field(pattern=CUSTOMER_REF_PATTERN,
                              description="the WeCom external_userid or the firm's customer id")
    level: CustomerLevel
    source: AssessmentSource = "firm_kyc_api"
    assessed_at: AwareDatetime | None = Field(default=None, description="default: now")
    expires_at: AwareDatetime | None = Field(default=None, description="default: valid_months after assessed_at")
    valid_months: int = Field(default=12, ge=1, le=60)
    reference: str = Field(default="", max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$",
                           description="e.g. the questionnaire's id at the firm")


class RiskAssessmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_ref: str
    level: CustomerLevel
    source: AssessmentSource
    assessed_at: datetime
    expires_at: datetime
    reference: str
    recorded_by: str
    created_at: datetime


class RiskAssessmentList(BaseModel):
    """A customer's assessments, the one in force first."""

    items: list[RiskAssessmentOut]


class DecisionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    eligible: bool
    reason_code: str
    reason: str
    reason_en: str
    customer_level: CustomerLevel | None
    product_level: ProductLevel
    expires_at: datetime | None = None


class EligibilityOut(DecisionOut):
    customer_ref: str
    product_code: str


class DisclosureOut(BaseModel):
    product_type: ProductType
    text: str
    is_default: bool


class DisclosureList(BaseModel):
    items: list[DisclosureOut]


class DisclosureIn(BaseModel):
    text: str = Field(min_length=1, max_length=1000)


class AttachDisclosureIn(BaseModel):
    text: str = Field(max_length=100_000)
    product_types: list[ProductType] = Field(default_factory=list, max_length=5)


class AttachDisclosureOut(BaseModel):
    text: str
    appended: list[ProductType]


# --- content approval ---------------------------------------------------------------------------------------

# The kinds of compliance.content.KINDS (a test keeps the two in step).
ContentKind = Literal["welcome", "group_invitation", "persona_intro", "keyword_reply", "group_welcome", "handover",
                      "sop_slot", "broadcast", "moments", "campaign", "script", "course", "game", "other"]
ContentStatus = Literal["draft", "submitted", "approved", "rejected"]


class ContentVersionOut(BaseModel):
    """One version: the maker's `text`, `final_text` (with risk disclosures: what is approved and sent),
    and the wording review of `final_text` (findings' offsets are into it)."""

    model_config = ConfigDict(from_attributes=True)

    number: int
    status: Literal["draft", "submitted", "approved", "rejected", "superseded"]
    text: str
    final_text: str
    attachments: list[dict]
    product_codes: list[str]
    product_types: list[str]
    disclosure_types: list[str]
    verdict: VerdictValue
    findings: list[dict]
    created_by: str
    submitted_by: str | None
    submitted_at: datetime | None
    decided_by: str | None
    decided_at: datetime | None
    decision_comment: str
    created_at: datetime


class ContentItemOut(BaseModel):
    """A content item and its state: `status` of the latest version; `approved_version` is the one in force."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: ContentKind
    ref: str
    owner_type: str | None = None  # None: an item made before owners were typed (never sent)
    owner_id: int | None = None
    owner_name: str | None = None
    title: str
    status: ContentStatus
    latest_version: int
    approved_version: int | None
    approved_text: str | None = None
    created_by: str
    created_at: datetime
    updated_at: datetime


class ContentItemDetail(ContentItemOut):
    versions: list[ContentVersionOut]


class ContentItemList(BaseModel):
    items: list[ContentItemOut]


class ContentCheckIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class ContentCheckOut(BaseModel):
    """The wording review of a text as outbound content is reviewed: each finding's rule, category,
    severity and span (`start`/`end`, offsets into `text`)."""

    verdict: VerdictValue
    findings: list[FindingOut]
