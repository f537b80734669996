"""The segment rule language: a JSON tree of groups and conditions, checked field by field.

A node is a group or a condition:

    {"all": [node, ...]}     every node holds            (且)
    {"any": [node, ...]}     at least one node holds     (或)
    {"none": [node, ...]}    no node holds               (都不)
    {"not": node}            the node does not hold      (非)
    {"kind": "...", ...}     a condition (`CONDITIONS`)

e.g. "added in the last 7 days and not verified":

    {"all": [{"kind": "added", "within_days": 7}, {"kind": "firm_customer", "present": false}]}

Days are calendar days in Asia/Shanghai: "within the last N days" is from the start of the day N-1
days before today (Shanghai) up to now, so `within_days: 1` is today; `from`/`to` dates are whole
days, both included. A rule that is not valid is an `InvalidInput` naming the field path, e.g.
`rule.all[1].tag_ids`. Ids a rule names (tags, groups, codes, staff) are checked against the corp
when the rule is compiled (`siyu.audiences.service`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from siyu.errors import InvalidInput

MAX_DEPTH = 6
MAX_CONDITIONS = 60
MAX_IDS = 500
GROUPS = ("all", "any", "none")

STAGES = ("new", "activated", "invested", "reinvested", "dormant", "lost")
CUSTOMER_LEVELS = ("C1", "C2", "C3", "C4", "C5")
PRODUCT_LEVELS = ("R1", "R2", "R3", "R4", "R5")
CONSENT_PURPOSES = ("marketing", "chat_archiving", "data_sharing", "profiling", "personal_info")
# What the customer timeline (`customer_event.kind`) records and a rule may ask about.
EVENT_KINDS = ("added", "lost", "deleted_by_staff", "transferred", "firm_linked", "invested", "redeemed",
               "stage_changed", "tags_changed", "note_added", "product_recommended")

Ids = Annotated[list[int], Field(min_length=1, max_length=MAX_IDS)]
Days = Annotated[int, Field(ge=1, le=3660)]


class _Condition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Window(_Condition):
    """A time window in Asia/Shanghai calendar days: `within_days` (the last N days, today included)
    or `from`/`to` (dates, both included; either may be left open). None of them: any time."""

    within_days: Days | None = None
    from_: dt.date | None = Field(None, alias="from")
    to: dt.date | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_way(self):
        if self.within_days is not None and (self.from_ is not None or self.to is not None):
            raise ValueError("give within_days or from/to, not both")
        if self.from_ is not None and self.to is not None and self.from_ > self.to:
            raise ValueError("from is after to")
        return self


class Gender(_Condition):
    """WeCom's gender: 0 unknown, 1 male, 2 female."""

    kind: Literal["gender"]
    values: Annotated[list[Literal[0, 1, 2]], Field(min_length=1, max_length=3)]


class Added(_Window):
    """First added as a contact within the window."""

    kind: Literal["added"]

    @model_validator(mode="after")
    def _some_window(self):
        if self.within_days is None and self.from_ is None and self.to is None:
            raise ValueError("give within_days or from/to")
        return self


class FirmCustomer(_Condition):
    """Linked to the firm's customer record (verified) or not."""

    kind: Literal["firm_customer"]
    present: bool = True


class Lost(_Condition):
    """No advisor follows the customer any more (stage lost) — or, with `lost: false`, still followed."""

    kind: Literal["lost"]
    lost: bool = True


class Tags(_Condition):
    """Corp tags: all of them, any of them, or none of them."""

    kind: Literal["tags"]
    match: Literal["all", "any", "none"] = "any"
    tag_ids: Annotated[list[int], Field(min_length=1, max_length=100)]


class Stage(_Condition):
    kind: Literal["stage"]
    stages: Annotated[list[Literal[STAGES]], Field(min_length=1, max_length=len(STAGES))]  # type: ignore[valid-type]


class RiskLevel(_Condition):
    """The current risk assessment's level (the latest, by external_userid or the firm's id)."""

    kind: Literal["risk_level"]
    levels: Annotated[list[Literal[CUSTOMER_LEVELS]], Field(min_length=1, max_length=5)]  # type: ignore[valid-type]


class RiskExpiry(_Condition):
    """The current assessment: expired, expiring within `days` calendar days, valid, or none at all."""

    kind: Literal["risk_expiry"]
    state: Literal["expired", "expires_within", "valid", "unassessed"]
    days: Days | None = None

    @model_validator(mode="after")
    def _days(self):
        if (self.state == "expires_within") != (self.days is not None):
            raise ValueError("days goes with state expires_within, and only with it")
        return self


class Channel(_Condition):
    """Added through one of these channel codes (渠道活码)."""

    kind: Literal["channel"]
    code_ids: Ids


class JoinWay(_Condition):
    """Joined a group through one of these join ways (群活码)."""

    kind: Literal["join_way"]
    join_way_ids: Ids


class Group(_Condition):
    """A member now of any group (`scope: any`), of a group in a group set, or of a given group."""

    kind: Literal["group"]
    scope: Literal["any", "group_set", "group"] = "any"
    ids: Annotated[list[int], Field(max_length=MAX_IDS)] = []

    @model_validator(mode="after")
    def _ids(self):
        if (self.scope == "any") != (not self.ids):
            raise ValueError("ids are needed for scope group_set or group, and only for them")
        return self


class Event(_Window):
    """At least one timeline event of this kind within the window."""

    kind: Literal["event"]
    event: Literal[EVENT_KINDS]  # type: ignore[valid-type]


class Invested(_Window):
    """An investment (申购) within the window, optionally in given products."""

    kind: Literal["invested"]
    product_codes: Annotated[list[str], Field(max_length=100)] = []


class NotReinvested(_Condition):
    """A redemption (赎回, maturities included) within the last `within_days` days with no investment
    after it: the customers to win back."""

    kind: Literal["redeemed_not_reinvested"]
    within_days: Days


class Holds(_Condition):
    """Holds a product (investments minus redemptions > 0) of risk `min_risk` or above, or one of
    `product_codes`."""

    kind: Literal["holds"]
    min_risk: Literal[PRODUCT_LEVELS] = "R1"  # type: ignore[valid-type]
    product_codes: Annotated[list[str], Field(max_length=100)] = []


class Consent(_Condition):
    """The consent in force for a purpose: granted, withdrawn (opted out), or never asked."""

    kind: Literal["consent"]
    purpose: Literal[CONSENT_PURPOSES] = "marketing"  # type: ignore[valid-type]
    state: Literal["granted", "withdrawn", "unknown"]


class Advisor(_Condition):
    """Followed now by one of these members of staff, or by anyone in these departments (and below)."""

    kind: Literal["advisor"]
    staff_ids: Annotated[list[int], Field(max_length=MAX_IDS)] = []
    department_ids: Annotated[list[int], Field(max_length=MAX_IDS)] = []

    @model_validator(mode="after")
    def _some(self):
        if not self.staff_ids and not self.department_ids:
            raise ValueError("give staff_ids or department_ids")
        return self


CONDITIONS: dict[str, type[_Condition]] = {
    c.model_fields["kind"].annotation.__args__[0]: c  # type: ignore[union-attr]
    for c in (Gender, Added, FirmCustomer, Lost, Tags, Stage, RiskLevel, RiskExpiry, Channel, JoinWay, Group, Event,
              Invested, NotReinvested, Holds, Consent, Advisor)
}


class Node:
    """A parsed rule: `op` is all/any/none/not with `children`, or "cond" with `condition`."""

    __slots__ = ("op", "children", "condition")

    def __init__(self, op: str, children: tuple[Node, ...] = (), condition: _Condition | None = None):
        self.op, self.children, self.condition = op, children, condition

    def conditions(self):
        if self.condition is not None:
            yield self.condition
        for c in self.children:
            yield from c.conditions()


# Pydantic's error types as the project's own message ids (translated in the console).
_MESSAGES = {
    "too_short": "choose at least one",
    "too_long": "too many values (at most %(max_length)s)",
    "literal_error": "not one of the allowed values: %(expected)s",
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "greater_than_equal": "at least %(ge)s",
    "less_than_equal": "at most %(le)s",
    "extra_forbidden": "unknown field",
    "missing": "required",
    "date_parsing": "a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "a date (YYYY-MM-DD)",
    "date_type": "a date (YYYY-MM-DD)",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a text",
    "list_type": "a list",
}


def _message(err: dict) -> tuple[str, dict]:
    if err["type"] == "value_error":
        return str(err["msg"]).removeprefix("Value error, "), {}
    message = _MESSAGES.get(err["type"])
    if message is None:
        return str(err["msg"]), {}
    ctx = {k: str(v) for k, v in (err.get("ctx") or {}).items()}
    try:
        message % ctx
    except (KeyError, TypeError, ValueError):
        return str(err["msg"]), {}
    return message, ctx


def _path(base: str, loc: tuple) -> str:
    out = base
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{'from' if part == 'from_' else part}"
    return out


def parse(data: Any, *, path: str = "rule") -> Node:
    """The rule `data` (decoded JSON) as a tree; `InvalidInput` naming the field path when not valid."""
    count = [0]
    return _parse(data, path, 1, count)


def _parse(data: Any, path: str, depth: int, count: list[int]) -> Node:
    if depth > MAX_DEPTH:
        raise InvalidInput("the rule is nested too deep (at most %(n)s levels)", field=path, params={"n": MAX_DEPTH})
    if not isinstance(data, dict) or not data:
        raise InvalidInput("a rule node is an object: a group (all, any, none, not) or a condition with a kind",
                           field=path)
    ops = [k for k in (*GROUPS, "not") if k in data]
    if ops:
        if len(data) != 1:
            raise InvalidInput("a group has exactly one key (all, any, none or not)", field=path)
        op = ops[0]
        inner = data[op]
        if op == "not":
            return Node("not", (_parse(inner, f"{path}.not", depth + 1, count),))
        if not isinstance(inner, list) or not inner:
            raise InvalidInput("a group lists at least one rule node", field=f"{path}.{op}")
        return Node(op, tuple(_parse(item, f"{path}.{op}[{i}]", depth + 1, count) for i, item in enumerate(inner)))
    kind = data.get("kind")
    model = CONDITIONS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise InvalidInput("unknown condition kind; one of: %(kinds)s", field=f"{path}.kind",
                           params={"kinds": ", ".join(CONDITIONS)})
    count[0] += 1
    if count[0] > MAX_CONDITIONS:
        raise InvalidInput("a rule has at most %(n)s conditions", field=path, params={"n": MAX_CONDITIONS})
    try:
        condition = model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        message, params = _message(err)
        raise InvalidInput(message, field=_path(path, tuple(err["loc"])), params=params) from None
    return Node("cond", condition=condition)


def dump(node: Node) -> dict:
    """The rule as JSON to store: what was given, normalised (defaults written out)."""
    if node.condition is not None:
        return node.condition.model_dump(mode="json", by_alias=True, exclude_none=True)
    if node.op == "not":
        return {"not": dump(node.children[0])}
    return {node.op: [dump(c) for c in node.children]}
