"""The catalogues are complete and agree with the code (docs/guarantees.md #43): every string
the code marks is extracted, every language has every message, the Russian one translated
(three plural forms, nothing fuzzy), and no translation loses or invents a placeholder."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from config import LANGUAGES

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "translations" / "messages.pot"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdif]")


def catalogue(path: Path):
    with path.open("rb") as source:
        return read_po(source)


def po_of(language: str) -> Path:
    return ROOT / "translations" / language / "LC_MESSAGES" / "messages.po"


def keys(messages) -> set:
    """Each message as gettext finds it: its context and its msgid (singular)."""
    return {(m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in messages if m.id}


def extract_command(output: Path) -> list[str]:
    """`make messages`'s own extract step (read from the Makefile, so the options cannot drift
    apart), writing to `output` instead of the committed template."""
    planned = subprocess.run(
        ["make", "-n", "-s", "messages"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.replace("\\\n", " ")
    [line] = [line for line in planned.splitlines() if " extract " in line]
    words = shlex.split(line)
    words[words.index("-o") + 1] = str(output)
    return words


def test_the_template_holds_every_string_the_code_marks(tmp_path):
    fresh = tmp_path / "messages.pot"
    subprocess.run(extract_command(fresh), cwd=ROOT, check=True, capture_output=True)
    extracted, committed = keys(catalogue(fresh)), keys(catalogue(TEMPLATE))
    assert sorted(extracted - committed, key=str) == [], "run `make messages`: not extracted"
    assert sorted(committed - extracted, key=str) == [], "run `make messages`: no longer used"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_exactly_the_templates_messages(language):
    assert keys(catalogue(po_of(language))) == keys(catalogue(TEMPLATE))


def test_russian_translates_everything_and_nothing_is_fuzzy():
    russian = [m for m in catalogue(po_of("ru")) if m.id]
    untranslated = [m.id for m in russian if not all(_forms(m))]
    fuzzy = [m.id for m in russian if m.fuzzy]
    assert untranslated == []
    assert fuzzy == []


def test_every_russian_plural_has_its_three_forms():
    russian = catalogue(po_of("ru"))
    assert russian.num_plurals == 3
    for message in russian:
        if message.id and message.pluralizable:
            assert len(message.string) == 3 and all(message.string), message.id


def test_translations_keep_the_placeholders_of_their_message():
    for message in catalogue(po_of("ru")):
        if not message.id:
            continue
        if message.pluralizable:
            expected = set(PLACEHOLDER.findall(message.id[1]))
        else:
            expected = set(PLACEHOLDER.findall(message.id))
        for form in _forms(message):
            assert set(PLACEHOLDER.findall(form)) == expected, (message.id, form)


def test_english_is_the_source_and_needs_no_translation():
    english = [m for m in catalogue(po_of("en")) if m.id]
    assert [m.id for m in english if any(_forms(m))] == []


def _forms(message) -> tuple[str, ...]:
    return message.string if isinstance(message.string, tuple) else (message.string,)
