"""The Chinese catalogue is split into one .po file per domain; together they must stay one catalogue."""

from babel.messages.pofile import read_po

from siyu.console.i18n import catalogue_files, translations


def test_no_message_id_is_translated_in_two_files():
    seen: dict[str, str] = {}
    clashes = []
    for po in catalogue_files("zh_CN"):
        with po.open("rb") as fh:
            for message in read_po(fh, locale="zh_CN"):
                if not message.id:
                    continue
                if message.id in seen:
                    clashes.append(f"{message.id!r} in {seen[message.id]} and {po.name}")
                seen[message.id] = po.name
    assert not clashes, "message ids translated twice:\n" + "\n".join(clashes)


def test_every_catalogue_file_is_read():
    files = catalogue_files("zh_CN")
    assert files[0].name == "messages.po"
    gettext = translations("zh_CN").gettext
    for po in files:
        with po.open("rb") as fh:
            translated = [m for m in read_po(fh, locale="zh_CN") if m.id and m.string]
        if translated:
            assert gettext(translated[-1].id) == translated[-1].string, po.name
