"""Parsing XML that arrives from the network (WeCom callbacks) without the usual XML attacks.

WeCom never sends a DTD, so any DOCTYPE or ENTITY declaration is refused outright: that closes
entity expansion ("billion laughs") and external entities without a third-party parser. The
bytes are decoded as strict UTF-8 first (WeCom sends nothing else) so that a document declaring
another encoding cannot hide a declaration from the check."""

from __future__ import annotations

from xml.etree import ElementTree

DEFAULT_MAX_BYTES = 64 * 1024


class MalformedXml(ValueError):
    """Not a well-formed UTF-8 XML document of an acceptable size."""


class UnsafeXml(MalformedXml):
    """The document declares a DTD or entities."""


def parse_xml_element(data: str | bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ElementTree.Element:
    if isinstance(data, bytes):
        if len(data) > max_bytes:
            raise MalformedXml(f"XML document larger than {max_bytes} bytes")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise MalformedXml("XML document is not UTF-8") from None
    else:
        text = data
        if len(text) > max_bytes:  # characters ≤ bytes, so this never refuses what the bytes check allows
            raise MalformedXml(f"XML document larger than {max_bytes} bytes")
    upper = text.upper()
    if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
        raise UnsafeXml("DTDs and entities are not accepted")
    try:
        return ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise MalformedXml(f"malformed XML: {exc}") from None


def child_text(root: ElementTree.Element, tag: str) -> str | None:
    """The text of a direct child (CDATA included), or None when the child is absent."""
    child = root.find(tag)
    if child is None:
        return None
    return child.text or ""


def cdata(value: object) -> str:
    """A CDATA section holding `value`, the way WeCom writes text fields ("]]>" split so it
    cannot end the section early)."""
    return "<![CDATA[" + str(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"
