"""入群欢迎语素材 (`externalcontact/group_welcome_template/add|edit|get|del`) with WeCom's rules: at
most 100 templates per corp; text.content at most 3000 bytes; text, image, link, miniprogram, file
and video not all empty; a link needs title (≤128 bytes) and url, a description ≤512 bytes; a
mini-program needs title (≤64 bytes), pic_media_id, appid and page. Owners apply a template to their
groups in the app (`notify`, default 1, tells them); WeCom then greets each new member with it."""

from __future__ import annotations

from typing import Any

from siyu.wecom.emulator.state import ApiError, Corp, EmulatorState, locked

TEMPLATES_MAX = 100
TEXT_MAX_BYTES = 3000
LINK_TITLE_MAX_BYTES = 128
LINK_DESC_MAX_BYTES = 512
MINIPROGRAM_TITLE_MAX_BYTES = 64
KINDS = ("text", "image", "link", "miniprogram", "file", "video")


def _bytes(value: object) -> int:
    return len(value.encode()) if isinstance(value, str) else 0


def _required_str(part: dict[str, Any], key: str, kind: str) -> str:
    value = part.get(key)
    if not isinstance(value, str) or not value:
        raise ApiError(40058, f"{kind}.{key} is required")
    return value


def _content(body: dict[str, Any]) -> dict[str, Any]:
    """The template's message parts, checked; what `get` answers."""
    out: dict[str, Any] = {}
    for kind in KINDS:
        part = body.get(kind)
        if part is None:
            continue
        if not isinstance(part, dict):
            raise ApiError(40058, f"{kind} must be an object")
        if kind == "text":
            content = part.get("content")
            if not isinstance(content, str):
                raise ApiError(40058, "text.content must be a string")
            if _bytes(content) > TEXT_MAX_BYTES:
                raise ApiError(40058, f"text.content is at most {TEXT_MAX_BYTES} bytes")
            if not content:
                continue
        elif kind == "image":
            if not (part.get("media_id") or part.get("pic_url")):
                raise ApiError(40058, "image needs media_id or pic_url")
        elif kind == "link":
            if _bytes(_required_str(part, "title", kind)) > LINK_TITLE_MAX_BYTES:
                raise ApiError(40058, f"link.title is at most {LINK_TITLE_MAX_BYTES} bytes")
            _required_str(part, "url", kind)
            if _bytes(part.get("desc")) > LINK_DESC_MAX_BYTES:
                raise ApiError(40058, f"link.desc is at most {LINK_DESC_MAX_BYTES} bytes")
        elif kind == "miniprogram":
            if _bytes(_required_str(part, "title", kind)) > MINIPROGRAM_TITLE_MAX_BYTES:
                raise ApiError(40058, f"miniprogram.title is at most {MINIPROGRAM_TITLE_MAX_BYTES} bytes")
            for key in ("pic_media_id", "appid", "page"):
                _required_str(part, key, kind)
        else:
            _required_str(part, "media_id", kind)
        out[kind] = dict(part)
    if not out:
        raise ApiError(40058, "text, image, link, miniprogram, file and video cannot all be empty")
    return out


def _notify(body: dict[str, Any]) -> int:
    notify = body.get("notify", 1)
    if notify not in (0, 1):
        raise ApiError(40058, "notify must be 0 or 1")
    return notify


def _require(corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    template_id = body.get("template_id")
    if not isinstance(template_id, str) or not template_id:
        raise ApiError(40058, "template_id is required")
    template = corp.group_welcome_templates.get(template_id)
    if template is None:
        raise ApiError(40058, f"invalid template_id: {template_id}")
    return template


@locked
def add_template(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    content = _content(body)
    notify = _notify(body)
    if len(corp.group_welcome_templates) >= TEMPLATES_MAX:
        # WeCom documents the limit but not the errcode of a full library: the emulator answers its
        # invalid-parameter code with a message saying so.
        raise ApiError(40058, f"the corp's group welcome library holds at most {TEMPLATES_MAX} templates")
    template_id = "msg" + state.new_id("", 24)
    corp.group_welcome_templates[template_id] = {"content": content, "notify": notify,
                                                 "created_at": int(state.now()), "edits": 0}
    return {"template_id": template_id}


@locked
def edit_template(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    template = _require(corp, body)
    template["content"] = _content(body)  # the whole template is replaced
    template["edits"] += 1
    return {}


@locked
def get_template(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    template = _require(corp, body)
    return {kind: dict(part) for kind, part in template["content"].items()}


@locked
def del_template(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    template = _require(corp, body)
    corp.group_welcome_templates = {k: v for k, v in corp.group_welcome_templates.items() if v is not template}
    return {}
