"""Every message the console can show has a Simplified Chinese translation; pages are Chinese by
default and English on request (remembered in a cookie)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract
from babel.messages.pofile import read_po

import siyu
from siyu.console import i18n
from siyu.console.templating import NAV
from siyu.errors import SiyuError
from tenancy.factories import log_in, make_client, make_corp, make_staff

SRC = Path(siyu.__file__).parent
CATALOGUE = i18n.LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "messages.po"
# Service errors are shown in console pages; their messages are message ids too. The modules whose
# errors are held to a translation (the console's own, the tenancy domain's and the job queue's):
ERROR_MODULES = [SRC / "errors.py", *sorted((SRC / "tenancy").glob("*.py")), *sorted((SRC / "console").glob("*.py")),
                 *sorted((SRC / "jobs").glob("*.py"))]


def _import_all_modules() -> None:
    for info in pkgutil.walk_packages([str(SRC)], prefix="siyu."):
        if info.name.startswith(("siyu.migrations", "siyu.bench")) or info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except ImportError:
            continue


def _error_classes() -> set[str]:
    _import_all_modules()
    found, stack = set(), [SiyuError]
    while stack:
        cls = stack.pop()
        found.add(cls.__name__)
        stack.extend(cls.__subclasses__())
    return found


def _extract(path: Path, method: str, keywords, options=None) -> list[tuple[str, str]]:
    with path.open("rb") as fh:
        out = []
        for lineno, message, _comments, _context in extract(method, fh, keywords=keywords, options=options or {}):
            for msgid in message if isinstance(message, tuple) else (message,):
                if msgid:
                    out.append((msgid, f"{path.relative_to(SRC)}:{lineno}"))
        return out


def collect_msgids() -> dict[str, list[str]]:
    """msgid -> where it is used, from templates, `_()`/`N_()`/`gettext()` in Python, NAV, and the
    messages of errors raised in the console's and tenancy's modules."""
    found: dict[str, list[str]] = {}
    for template in sorted(SRC.glob("**/templates/**/*.html")):
        for msgid, where in _extract(template, "jinja2.ext:babel_extract", DEFAULT_KEYWORDS,
                                     {"extensions": "jinja2.ext.i18n", "trimmed": "true"}):
            found.setdefault(msgid, []).append(where)
    for module in sorted(SRC.glob("**/*.py")):
        if "migrations" in module.parts:
            continue
        for msgid, where in _extract(module, "python", DEFAULT_KEYWORDS):
            found.setdefault(msgid, []).append(where)
    error_keywords = dict.fromkeys(_error_classes())
    for module in ERROR_MODULES:
        for msgid, where in _extract(module, "python", error_keywords):
            found.setdefault(msgid, []).append(where)
    for path, label, _roles in NAV:
        found.setdefault(label, []).append(f"console/templating.py NAV {path}")
    return found


def _catalogue():
    with CATALOGUE.open("rb") as fh:
        return read_po(fh, locale="zh_CN")


def _untranslated(msgids) -> list[str]:
    # Every catalogue file of the locale (messages.po and one per later domain), as the console
    # merges them.
    catalogues = []
    for path in i18n.catalogue_files("zh_CN"):
        with path.open("rb") as fh:
            catalogues.append(read_po(fh, locale="zh_CN"))
    missing = []
    for msgid in msgids:
        messages = [m for c in catalogues if (m := c.get(msgid)) is not None and m.string and not m.fuzzy]
        if not messages:
            missing.append(msgid)
    return missing


def test_the_catalogue_is_a_proper_po_file():
    catalogue = _catalogue()
    assert (catalogue.locale.language, catalogue.locale.territory) == ("zh", "CN")
    headers = dict(catalogue.mime_headers)
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Language"] == "zh_CN" and headers["Plural-Forms"].startswith("nplurals=1;")
    assert catalogue.project == "Siyu"
    problems = [(m.id, [str(e) for e in errors]) for m, errors in catalogue.check()]
    assert problems == [], "placeholders that do not match their msgid"


def test_the_extraction_finds_the_console_messages():
    found = collect_msgids()
    # one of each source, so that a broken extractor cannot pass the test below by finding nothing
    assert "Staff & roles" in found            # NAV and a template
    assert "Verify chain" in found             # a template
    assert "Some fields are not valid." in found  # _() in Python
    assert "this login is taken" in found      # an error raised by a service
    assert "Wrong corp code, login or password." in found  # N_() in a view


def test_every_message_has_a_chinese_translation():
    found = collect_msgids()
    missing = _untranslated(found)
    assert missing == [], "no zh_CN translation in {}:\n{}".format(
        CATALOGUE, "\n".join(f"  {m!r}  ({', '.join(found[m][:2])})" for m in sorted(missing)))


def test_every_dashboard_label_has_a_chinese_translation(session):
    from siyu.console.dashboard import dashboard_charts
    from siyu.console.home import home_sections
    from tenancy.factories import principal_of

    corp = make_corp(session)
    staff = make_staff(session, corp, roles=["administrator", "operations", "advisor", "compliance", "auditor"],
                       password=None)
    principal = principal_of(staff)
    labels = [t.label for s in home_sections(session, principal=principal) for t in s["tiles"]]
    labels += [s["title"] for s in home_sections(session, principal=principal)]
    for chart in dashboard_charts(session, principal=principal):
        labels += [chart["title"], *(s["label"] for s in chart["series"])]
    assert labels, "the dashboard offers nothing"
    assert _untranslated(labels) == []


def test_translations_are_used(monkeypatch):
    i18n.translations.cache_clear()
    gettext = i18n.translations("zh_CN").gettext
    assert gettext("Staff & roles") == "员工与角色"
    assert i18n.translations("en").gettext("Staff & roles") == "Staff & roles"


# --- pages ------------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(session):
    corp = make_corp(session)
    admin = make_staff(session, corp, roles=["administrator"])
    client = make_client(session)
    log_in(client, admin)
    return client


def test_login_page_is_chinese_by_default(session):
    client = make_client(session)
    page = client.get("/login")
    assert '<html lang="zh-CN">' in page.text and "登录" in page.text and "Password" not in page.text


@pytest.mark.parametrize("path", ["/", "/staff", "/departments", "/api-keys", "/audit"])
def test_pages_are_chinese_by_default_and_english_on_request(admin_client, path):
    zh = admin_client.get(path)
    assert zh.status_code == 200 and '<html lang="zh-CN">' in zh.text
    assert "仪表盘" in zh.text and "Dashboard" not in zh.text

    en = admin_client.get(path + "?lang=en")
    assert '<html lang="en">' in en.text and "Dashboard" in en.text and "仪表盘" not in en.text
    assert en.cookies.get(i18n.LANG_COOKIE) == "en" or admin_client.cookies.get(i18n.LANG_COOKIE) == "en"

    remembered = admin_client.get(path)  # the cookie keeps English
    assert '<html lang="en">' in remembered.text
    back = admin_client.get(path + "?lang=zh_CN")
    assert '<html lang="zh-CN">' in back.text


def test_unknown_language_falls_back_to_chinese(admin_client):
    page = admin_client.get("/?lang=fr")
    assert '<html lang="zh-CN">' in page.text
    assert i18n.LANG_COOKIE not in page.cookies


def test_service_errors_are_shown_in_chinese(admin_client):
    from tenancy.factories import console_csrf

    csrf = console_csrf(admin_client)
    page = admin_client.post("/staff", data={"csrf_token": csrf, "login": "x", "name": "名字", "roles": ["advisor"]})
    assert page.status_code == 422
    assert "登录名须为 3–120 个字符" in page.text
    en = admin_client.post("/staff?lang=en", data={"csrf_token": csrf, "login": "x", "name": "n", "roles": ["advisor"]})
    assert "login must be 3–120 characters" in en.text


def test_error_pages_are_chinese(admin_client):
    page = admin_client.get("/staff/not-a-number/nothing", headers={"accept": "text/html"})
    assert page.status_code in (404, 405)
    missing = admin_client.post("/api-keys/999999999/revoke", headers={"accept": "text/html"},
                                data={"csrf_token": "wrong"})
    assert missing.status_code == 403 and "表单已过期" in missing.text
