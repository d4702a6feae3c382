"""Every runtime dependency may ship with Apache-2.0 InviteLoop, and docs/licences.md lists
them as they are installed (docs/guarantees.md #34)."""

from tests.licences import LICENCES_DOC, licences_document, runtime_dependencies, verdict


def test_every_runtime_dependency_has_an_allowed_licence():
    dependencies = runtime_dependencies()
    names = {dependency.name for dependency in dependencies}
    # What requirements.txt names and what those pull in (Flask brings Werkzeug and Jinja2).
    assert {"flask", "jinja2", "psycopg", "celery", "kombu", "gunicorn"} <= names
    refused = [d for d in dependencies if not d.allowed]
    assert refused == [], "licences not compatible with Apache-2.0: " + ", ".join(
        f"{d.name} ({d.licence})" for d in refused
    )


def test_the_licence_rules_refuse_copyleft_and_unknown_licences():
    assert verdict("somelib", "GPL-3.0-only") == "NOT ALLOWED"
    assert verdict("somelib", "AGPL-3.0-or-later") == "NOT ALLOWED"
    assert verdict("somelib", "unknown") == "NOT ALLOWED"
    # LGPL only for the packages reasoned about as dynamic libraries.
    assert verdict("somelib", "LGPL-3.0-only") == "NOT ALLOWED"
    assert verdict("psycopg", "LGPL-3.0-only").startswith("LGPL, used as a dynamic library")
    assert verdict("somelib", "MIT AND GPL-2.0-only") == "NOT ALLOWED"
    assert verdict("somelib", "GPL-2.0-only OR MIT") == "permissive"


def test_the_licences_page_lists_the_installed_dependencies():
    expected = licences_document(runtime_dependencies())
    assert LICENCES_DOC.read_text() == expected, (
        "docs/licences.md is out of date: python -m tests.licences > docs/licences.md"
    )
