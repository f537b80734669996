"""Console languages: Simplified Chinese by default, English available.

Templates and code are written with English message ids; `locale/zh_CN/LC_MESSAGES/*.po` hold
the Chinese: `messages.po` for the shell and the first domains, one file per later domain or
capability (so that work on two domains never edits the same catalogue). The files are read
directly at start-up (no compile step to forget) and merged; a message id defined in two files
takes the translation of the file sorted last, and a test refuses such duplicates."""

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
    files = catalogue_files(locale)
    if not files:
        return NullTranslations()
    catalog = None
    for po in files:
        with po.open("rb") as fh:
            part = read_po(fh, locale=locale)
        if catalog is None:
            catalog = part
            continue
        for message in part:
            if message.id:
                catalog[message.id] = message
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf)


def catalogue_files(locale: str) -> list[Path]:
    """The .po files of a locale, `messages.po` first and the others by name."""
    folder = LOCALE_DIR / locale / "LC_MESSAGES"
    files = sorted(folder.glob("*.po"), key=lambda p: (p.name != "messages.po", p.name))
    return files


def N_(message: str) -> str:
    """Marks an English message id for extraction where it is defined; it is translated where shown."""
    return message


def pick_locale(query_lang: str | None, cookie_lang: str | None, default: str = DEFAULT_LOCALE) -> str:
    for candidate in (query_lang, cookie_lang):
        if candidate in LOCALES:
            return candidate
    return default if default in LOCALES else DEFAULT_LOCALE
