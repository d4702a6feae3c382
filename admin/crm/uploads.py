"""Signed contract documents on disk, outside static/: checked, stored under a random name.

A document is accepted only when its extension is one we allow AND its first bytes say it
is that kind of file, so a renamed program is refused. It is written under a random key
(never the name the user sent, so no path in that name can reach the disk) to a `.part`
file first and renamed when complete; the caller writes the database row afterwards and
removes the file again if the row fails.
"""

import os
import re
import secrets
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from flask import current_app, send_from_directory
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

from core.errors import DomainError

# extension -> the content type the download is served with
CONTENT_TYPES = {
    ".pdf": "application/pdf",
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
}
ACCEPT = ",".join(CONTENT_TYPES)  # for the file input's accept attribute
ALLOWED_LABEL = _l("PDF, DOC, DOCX, ODT, PNG or JPG")

_PDF = b"%PDF-"
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the container of legacy .doc files
_ZIP = b"PK\x03\x04"
_ODT_MIMETYPE = b"application/vnd.oasis.opendocument.text"
_CHUNK = 64 * 1024
_NAME_LIMIT = 200
_UNSAFE_IN_NAMES = re.compile(r'[\x00-\x1f\x7f"<>:|?*;]')


class UnsupportedDocument(DomainError):
    status = 415
    code = "unsupported_document"
    field = "document"
    message = _l("Upload a PDF, DOC, DOCX, ODT, PNG or JPG file.")


class DocumentTooLarge(DomainError):
    status = 413
    code = "document_too_large"
    field = "document"


class EmptyDocument(DomainError):
    code = "empty_document"
    field = "document"
    message = _l("The file is empty.")


@dataclass(frozen=True)
class StoredDocument:
    key: str  # the file's name on disk
    file_name: str  # the cleaned name the user gave, for the download
    size: int
    content_type: str


def contracts_folder() -> Path:
    folder = Path(current_app.config["CONTRACTS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def max_bytes() -> int:
    return current_app.config["CONTRACT_MAX_BYTES"]


def clean_file_name(raw: str | None) -> str:
    """The last part of whatever path the browser sent, without control characters or
    characters that mean something to a shell or a header; "document" if nothing is left."""
    name = re.split(r"[\\/]", (raw or "").replace("\x00", ""))[-1]
    name = _UNSAFE_IN_NAMES.sub("", name).strip()
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    stem = stem.strip(" .") or "document"
    extension = f".{extension.strip().lower()}" if extension.strip() else ""
    return stem[: _NAME_LIMIT - len(extension)] + extension


def store(stream: BinaryIO, raw_name: str | None) -> StoredDocument:
    """Check and keep one uploaded document; refuse it with a DomainError otherwise."""
    file_name = clean_file_name(raw_name)
    extension = os.path.splitext(file_name)[1]
    if extension not in CONTENT_TYPES:
        raise UnsupportedDocument()
    folder = contracts_folder()
    key = secrets.token_hex(20) + extension
    partial = folder / f"{key}.part"
    try:
        size = _copy_limited(stream, partial, max_bytes())
        if not _looks_like(extension, partial):
            raise UnsupportedDocument(
                _(
                    "This file is not a real %(kind)s document. "
                    "Upload a PDF, DOC, DOCX, ODT, PNG or JPG file.",
                    kind=extension[1:].upper(),
                )
            )
        os.replace(partial, folder / key)
    finally:
        partial.unlink(missing_ok=True)
    return StoredDocument(key, file_name, size, CONTENT_TYPES[extension])


def remove(key: str) -> None:
    """Forget a stored document (its row could not be written)."""
    _path_of(key).unlink(missing_ok=True)


def exists(key: str) -> bool:
    return _path_of(key).is_file()


def send(key: str, file_name: str, content_type: str):
    """The document as a download, never rendered in the browser."""
    response = send_from_directory(
        contracts_folder(),
        key,
        mimetype=content_type,
        as_attachment=True,
        download_name=file_name,
        max_age=0,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def readable_size(size: int) -> str:
    if size >= 1024 * 1024:
        return _("%(size)s MB", size=f"{size / (1024 * 1024):.3g}")
    if size >= 1024:
        return _("%(size)s KB", size=f"{size / 1024:.3g}")
    return ngettext("%(num)d byte", "%(num)d bytes", size)


def _path_of(key: str) -> Path:
    folder = contracts_folder().resolve()
    path = (folder / key).resolve()
    if path.parent != folder:  # keys are ours, but never trust a path blindly
        raise ValueError(f"document key outside the contracts folder: {key!r}")
    return path


def _copy_limited(stream: BinaryIO, target: Path, limit: int) -> int:
    """Copy at most `limit` bytes; more than that is refused and nothing is kept."""
    size = 0
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        while chunk := stream.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise DocumentTooLarge(
                    _(
                        "The file is larger than %(limit)s; upload a smaller one.",
                        limit=readable_size(limit),
                    )
                )
            out.write(chunk)
    if size == 0:
        raise EmptyDocument()
    return size


def _looks_like(extension: str, path: Path) -> bool:
    with path.open("rb") as file:
        head = file.read(16)
    if extension == ".pdf":
        return head.startswith(_PDF)
    if extension == ".png":
        return head.startswith(_PNG)
    if extension in (".jpg", ".jpeg"):
        return head.startswith(_JPEG)
    if extension == ".doc":
        return head.startswith(_OLE2)
    return head.startswith(_ZIP) and _zip_kind(path) == extension


def _zip_kind(path: Path) -> str | None:
    """ ".odt" when the archive opens with the OpenDocument text mimetype entry, ".docx"
    when it holds a Word document part; None for any other (or a broken) archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            first = entries[0] if entries else None
            if first and first.filename == "mimetype" and first.file_size < 100:
                return ".odt" if archive.read(first).strip() == _ODT_MIMETYPE else None
            names = {entry.filename for entry in entries}
            if "[Content_Types].xml" in names and "word/document.xml" in names:
                return ".docx"
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    return None
