"""The licence of every runtime dependency: the packages requirements.txt names and everything
they pull in, as installed in this environment (importlib.metadata), each with its licence and
whether it may ship with Apache-2.0 InviteLoop.

    python -m tests.licences > docs/licences.md     # after changing requirements.txt

tests/test_licences.py fails on a licence outside ALLOWED and on a docs/licences.md that no
longer matches this list.
"""

import importlib.metadata as metadata
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements.txt"
LICENCES_DOC = ROOT / "docs" / "licences.md"

# Permissive licences (and a public-domain dedication): any use, with the notice kept.
PERMISSIVE = {
    "Apache-2.0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSD",  # a classifier that names no clause count; both variants are permissive
    "ISC",
    "MIT",
    "MIT-0",
    "PSF-2.0",
    "Unlicense",
}
# Weak copyleft per file: fine as long as we ship the files unchanged (we do: pip installs them).
FILE_COPYLEFT = {"MPL-2.0"}
# LGPL asks that users can swap the library for their own build. A Python package imported at
# run time is used like a shared library: it stays a separate, unmodified, replaceable file,
# so it is allowed, but only for the packages named here, each after thinking about it.
LGPL = {"LGPL-3.0-only", "LGPL-3.0-or-later"}
LGPL_DYNAMIC = {
    "psycopg": "the PostgreSQL driver, imported unmodified; replaceable by any psycopg build",
    "psycopg-binary": "psycopg's compiled part (bundles libpq, PostgreSQL licence); same",
}

# How the older metadata fields and classifiers spell the licences above.
ALIASES = {
    "apache software license": "Apache-2.0",
    "apache 2.0": "Apache-2.0",
    "apache-2.0": "Apache-2.0",
    "bsd license": "BSD",
    "bsd": "BSD",
    "new bsd": "BSD-3-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "mit license": "MIT",
    "mit": "MIT",
    "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0",
    "mpl-2.0": "MPL-2.0",
    "the unlicense (unlicense)": "Unlicense",
    "unlicense": "Unlicense",
    "isc license (iscl)": "ISC",
    "python software foundation license": "PSF-2.0",
}


@dataclass(frozen=True)
class Dependency:
    name: str
    licence: str  # an SPDX expression, e.g. "MIT" or "Apache-2.0 OR BSD-3-Clause"
    verdict: str  # why it may ship with InviteLoop, or "NOT ALLOWED"

    @property
    def allowed(self) -> bool:
        return self.verdict != "NOT ALLOWED"


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_requirements() -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def installed_closure(requirements: list[Requirement]) -> dict[str, metadata.Distribution]:
    """Every installed distribution the requirements need at run time, with the extras asked
    for (celery[redis] brings redis; a test-only extra of a package brings nothing)."""
    found: dict[str, metadata.Distribution] = {}
    extras: dict[str, set[str]] = {}
    pending = list(requirements)
    while pending:
        requirement = pending.pop()
        key = _key(requirement.name)
        wanted = set(requirement.extras)
        if key in found and wanted <= extras[key]:
            continue
        try:
            found[key] = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            raise LookupError(f"{requirement.name} is required but not installed") from None
        extras[key] = extras.get(key, set()) | wanted
        for line in found[key].requires or []:
            dependency = Requirement(line)
            marker = dependency.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in extras[key] | {""}):
                pending.append(dependency)
    return found


def licence_of(distribution: metadata.Distribution) -> str:
    """The SPDX expression if the package gives one, else its short licence field, else its
    classifiers; "unknown" when none says anything usable."""
    fields = distribution.metadata
    if fields.get("License-Expression"):
        return fields["License-Expression"].strip()
    short = (fields.get("License") or "").strip()
    if short and "\n" not in short and short.lower() in ALIASES:
        return ALIASES[short.lower()]
    named = []
    for classifier in fields.get_all("Classifier") or []:
        if classifier.startswith("License :: OSI Approved :: "):
            text = classifier.rsplit(" :: ", 1)[1].lower()
            named.append(ALIASES.get(text, text))
    return " OR ".join(sorted(set(named))) if named else "unknown"


def verdict(name: str, expression: str) -> str:
    """One allowed alternative of an OR is enough; every part of an AND must be allowed."""
    alternatives = [part.strip("() ") for part in expression.split(" OR ")]
    for alternative in alternatives:
        parts = [part.strip("() ") for part in alternative.split(" AND ")]
        if all(part in PERMISSIVE for part in parts):
            return "permissive"
        if all(part in PERMISSIVE | FILE_COPYLEFT for part in parts):
            return "weak copyleft per file, shipped unmodified"
        if all(part in PERMISSIVE | LGPL for part in parts) and name in LGPL_DYNAMIC:
            return "LGPL, used as a dynamic library: " + LGPL_DYNAMIC[name]
    return "NOT ALLOWED"


def runtime_dependencies() -> list[Dependency]:
    closure = installed_closure(runtime_requirements())
    listed = []
    for key, distribution in sorted(closure.items()):
        expression = licence_of(distribution)
        listed.append(Dependency(key, expression, verdict(key, expression)))
    return listed


def licences_document(dependencies: list[Dependency]) -> str:
    rows = "\n".join(f"| {d.name} | {d.licence} | {d.verdict} |" for d in dependencies)
    return f"""# Licences of the runtime dependencies

InviteLoop is licensed under the Apache License 2.0 (`LICENSE`). These are the packages it runs
on: those `requirements.txt` names and everything they install, as pip resolves them. Each
licence is read from the package's own metadata. `tests/test_licences.py` fails when a package
has a licence not allowed here, or when this page no longer matches the installed packages;
regenerate it with `python -m tests.licences > docs/licences.md`. Versions are left out: only
`requirements.txt`'s own lines are pinned, and a licence rarely changes between releases.

Allowed: permissive licences (MIT, BSD, Apache-2.0, ISC, PSF, the Unlicense); MPL-2.0, whose
copyleft covers only its own files, which are shipped unchanged; LGPL only for a package that is
imported as a separate, unmodified library that anyone can replace with their own build
(psycopg, the PostgreSQL driver; its binary wheel bundles libpq under the PostgreSQL licence).
Nothing under the GPL or AGPL, and nothing without a stated licence.

| package | licence | why it may ship |
|---|---|---|
{rows}
"""


if __name__ == "__main__":
    print(licences_document(runtime_dependencies()), end="")
