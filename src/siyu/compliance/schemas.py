"""Pydantic shapes of the compliance domain: review verdicts and wording-dictionary entries."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
    source: Literal["dictionary", "detector"] = "dictionary"
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
