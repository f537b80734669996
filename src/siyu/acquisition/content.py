"""Acquisition's customer-facing content, as compliance's content gate knows it (`compliance.content`).

Owner types: a welcome variant (its welcome text and attachments), a welcome flow (its group
invitation), a persona (its introduction) and a keyword rule (its reply). Each editor saves the text
through `submit_content`; each sender asks `content_for_send` for the approved version in force.
Attachments are kept by the gate in its own shape ({"type": "link", "url", "title", …}); `to_gate` and
`from_gate` convert WeCom's shape ({"msgtype": "link", "link": {…}}) both ways."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.acquisition.models import ChannelCode, KeywordRule, Persona, WelcomeFlow, WelcomeVariant
from siyu.compliance.service import OwnerType, register_owner
from siyu.console.i18n import N_

WELCOME_VARIANT, WELCOME_FLOW, PERSONA, KEYWORD_RULE = "welcome_variant", "welcome_flow", "persona", "keyword_rule"


def to_gate(attachments: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    """WeCom-shaped attachments (as `welcome.build_attachments` makes them) in the gate's shape."""
    out = []
    for a in attachments or []:
        kind = a.get("msgtype")
        body = a.get(kind, {}) if isinstance(kind, str) else {}
        if kind == "image":
            out.append({"type": "image", "url": body.get("pic_url", "")} if body.get("pic_url")
                       else {"type": "image", "media_id": body.get("media_id", "")})
        elif kind == "link":
            out.append({"type": "link", **{k: body[k] for k in ("url", "title", "desc", "picurl") if body.get(k)}})
        elif kind == "miniprogram":
            out.append({"type": "miniprogram",
                        **{k: body[k] for k in ("appid", "page", "title", "pic_media_id") if body.get(k)}})
    return out


def from_gate(attachments: Sequence[dict[str, str]] | None) -> list[dict[str, Any]]:
    """The gate's attachments as WeCom takes them."""
    out: list[dict[str, Any]] = []
    for a in attachments or []:
        kind = a.get("type")
        if kind == "image":
            out.append({"msgtype": "image", "image": {"pic_url": a["url"]} if a.get("url")
                        else {"media_id": a.get("media_id", "")}})
        elif kind in ("link", "miniprogram"):
            out.append({"msgtype": kind, kind: {k: v for k, v in a.items() if k != "type"}})
    return out


def _ids(ids: Sequence[int]) -> list[int]:
    return [i for i in ids if isinstance(i, int) and 0 < i < 2**63]


def _variants(session: Session, corp_id: int, ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    rows = session.execute(select(WelcomeVariant.id, WelcomeVariant.label, ChannelCode.id, ChannelCode.name)
                           .join(WelcomeFlow, WelcomeFlow.id == WelcomeVariant.flow_id)
                           .join(ChannelCode, ChannelCode.id == WelcomeFlow.code_id)
                           .where(WelcomeVariant.corp_id == corp_id, WelcomeVariant.id.in_(_ids(ids))))
    return {vid: (f"{name} · {label}", f"/acquisition/codes/{code_id}#variant-{vid}")
            for vid, label, code_id, name in rows}


def _flows(session: Session, corp_id: int, ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    rows = session.execute(select(WelcomeFlow.id, ChannelCode.id, ChannelCode.name)
                           .join(ChannelCode, ChannelCode.id == WelcomeFlow.code_id)
                           .where(WelcomeFlow.corp_id == corp_id, WelcomeFlow.id.in_(_ids(ids))))
    return {fid: (name, f"/acquisition/codes/{code_id}#welcome") for fid, code_id, name in rows}


def _personas(session: Session, corp_id: int, ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    rows = session.execute(select(Persona.id, Persona.display_name)
                           .where(Persona.corp_id == corp_id, Persona.id.in_(_ids(ids))))
    return {pid: (name, f"/acquisition/personas#persona-{pid}") for pid, name in rows}


def _rules(session: Session, corp_id: int, ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    rows = session.execute(select(KeywordRule.id, KeywordRule.name)
                           .where(KeywordRule.corp_id == corp_id, KeywordRule.id.in_(_ids(ids))))
    return {rid: (name, f"/acquisition/keywords/{rid}") for rid, name in rows}


def _all(lookup, model):
    def choices(session: Session, corp_id: int) -> list[tuple[int, str]]:
        ids = list(session.scalars(select(model.id).where(model.corp_id == corp_id).order_by(model.id).limit(500)))
        found = lookup(session, corp_id, ids)
        return [(i, found[i][0]) for i in ids if i in found]
    return choices


register_owner(OwnerType(name=WELCOME_VARIANT, label=N_("Welcome variant"), kinds=("welcome",), lookup=_variants,
                         choices=_all(_variants, WelcomeVariant)))
register_owner(OwnerType(name=WELCOME_FLOW, label=N_("Welcome flow"), kinds=("group_invitation",), lookup=_flows,
                         choices=_all(_flows, WelcomeFlow)))
register_owner(OwnerType(name=PERSONA, label=N_("Persona"), kinds=("persona_intro",), lookup=_personas,
                         choices=_all(_personas, Persona)))
register_owner(OwnerType(name=KEYWORD_RULE, label=N_("Keyword rule"), kinds=("keyword_reply",), lookup=_rules,
                         choices=_all(_rules, KeywordRule)))
