"""Console languages: Simplified Chinese by default, English available.

Templates and code are written with English message ids; `locale/zh_CN/LC_MESSAGES/messages.po`
holds the Chinese. The .po file is read directly at start-up (no compile step to forget)."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).parent / "locale"
LOCALES = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"
LANG_COOKIE = "siyu_lang"


@lru_cache
def translations(locale: str) -> NullTranslations:
    po = LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf)


def N_(message: str) -> str:
    """Marks an English message id for extraction where it is defined; it is translated where shown."""
    return message


def pick_locale(query_lang: str | None, cookie_lang: str | None, default: str = DEFAULT_LOCALE) -> str:
    for candidate in (query_lang, cookie_lang):
        if candidate in LOCALES:
            return candidate
    return default if default in LOCALES else DEFAULT_LOCALE
