"""Contract documents: only real documents of the allowed kinds, within the size limit,
stored under a random name inside the contracts folder, downloadable only by contract
managers."""

import io
import zipfile
from datetime import date

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from admin.crm import services as crm
from admin.crm.uploads import clean_file_name
from extensions import db
from models import AuditLog, Contract
from tests import factories
from tests.helpers import csrf_token, log_in

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 200


@pytest.fixture
def config_overrides(tmp_path):
    return {"CONTRACTS_FOLDER": str(tmp_path / "contracts")}


@pytest.fixture
def folder(app):
    from pathlib import Path

    return Path(app.config["CONTRACTS_FOLDER"])


@pytest.fixture
def lead(app):
    """A lead and a service to sell it, as ids."""
    with app.app_context():
        service = crm.save_service(None, name="Roofing", description="", price=0, currency="USD")
        lead = crm.save_lead(
            None, full_name="Lena Lead", phone="+1 555 010 2000", email=None, campaign_id=None
        )
        db.session.commit()
        return {"id": lead.id, "service_id": service.id}


@pytest.fixture
def manager(app, client):
    with app.app_context():
        person = factories.staff("manager")
    log_in(client, person["email"])
    return person


def docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def odt_bytes(mimetype: str = "application/vnd.oasis.opendocument.text") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", mimetype, compress_type=zipfile.ZIP_STORED)
        archive.writestr("content.xml", "<office:document-content/>")
    return buffer.getvalue()


def upload(client, lead, content: bytes, file_name: str, **fields):
    path = f"/admin/leads/{lead['id']}/contracts/new"
    data = {
        "csrf_token": csrf_token(client, path),
        "name": "Roof contract",
        "service_id": str(lead["service_id"]),
        "signed_on": "2026-03-01",
        "valid_from": "2026-03-01",
        "valid_until": "2027-02-28",
        "amount": "1200.50",
        "currency": "USD",
        "document": FileStorage(io.BytesIO(content), filename=file_name),
        **fields,
    }
    # Encoded here, in memory: the test client spools big bodies to a file it never closes.
    boundary, body = encode_multipart(data)
    return client.post(path, data=body, content_type=f"multipart/form-data; boundary={boundary}")


def stored_files(folder) -> list:
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def contract_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Contract.id)))


def test_a_valid_upload_is_stored_under_a_random_name_and_downloads_as_sent(
    app, client, manager, lead, folder
):
    response = upload(client, lead, PDF, "Signed roof contract.pdf")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].endswith(f"/admin/leads/{lead['id']}")

    with app.app_context():
        contract = db.session.scalars(select(Contract)).one()
        assert (contract.amount, contract.currency) == (120050, "USD")
        assert contract.file_name == "Signed roof contract.pdf"
        assert (contract.file_size, contract.content_type) == (len(PDF), "application/pdf")
        assert contract.signed_on == date(2026, 3, 1)
        contract_id, key = contract.id, contract.file_key
        entry = db.session.scalars(select(AuditLog).where(AuditLog.target_type == "contract")).one()
        assert (entry.action, entry.actor_id) == ("contract.upload", manager["id"])
        assert entry.after["file_name"] == "Signed roof contract.pdf"
    [stored] = stored_files(folder)
    assert stored.name == key and "roof" not in key.lower()
    assert stored.read_bytes() == PDF

    download = client.get(f"/admin/contracts/{contract_id}/document")
    body = download.get_data()
    download.close()
    assert download.status_code == 200
    assert body == PDF
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert "Signed roof contract.pdf" in download.headers["Content-Disposition"]
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.mimetype == "application/pdf"

    listing = client.get("/admin/contracts").get_data(as_text=True)
    assert "Roof contract" in listing and "Lena Lead" in listing


@pytest.mark.parametrize(
    ("content", "file_name"),
    [
        (PNG, "scan.png"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 64, "scan.JPG"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "old.doc"),
        (docx_bytes(), "contract.docx"),
        (odt_bytes(), "contract.odt"),
    ],
)
def test_every_allowed_kind_is_accepted(app, client, manager, lead, content, file_name):
    assert upload(client, lead, content, file_name).status_code == 302
    assert contract_count(app) == 1


@pytest.mark.parametrize(
    ("content", "file_name"),
    [
        (EXE, "setup.exe"),  # a type we do not take
        (EXE, "contract.pdf"),  # a program renamed
        (PDF, "contract.png"),  # the bytes of another kind
        (b"<script>alert(1)</script>", "page.html"),
        (docx_bytes(), "contract.odt"),  # a Word archive is not an OpenDocument
        (odt_bytes("application/vnd.oasis.opendocument.spreadsheet"), "sheet.odt"),
        (b"PK\x03\x04 broken archive", "contract.docx"),
        (PDF, "no extension"),
    ],
)
def test_a_wrong_type_is_refused_and_nothing_is_stored(
    app, client, manager, lead, folder, content, file_name
):
    response = upload(client, lead, content, file_name)
    assert response.status_code == 415
    page = response.get_data(as_text=True)
    assert "PDF, DOC, DOCX, ODT, PNG or JPG" in page
    assert 'value="Roof contract"' in page  # what was typed is kept
    assert contract_count(app) == 0
    assert stored_files(folder) == []


def test_an_empty_file_is_refused(app, client, manager, lead, folder):
    response = upload(client, lead, b"", "empty.pdf")
    assert response.status_code == 400
    assert "The file is empty." in response.get_data(as_text=True)
    assert contract_count(app) == 0
    assert stored_files(folder) == []


def test_a_document_above_the_limit_is_refused_with_a_message(app, client, manager, lead, folder):
    app.config["CONTRACT_MAX_BYTES"] = 10_000
    response = upload(client, lead, PDF + b"0" * 10_000, "big.pdf")
    assert response.status_code == 413
    assert "larger than 9.77 KB" in response.get_data(as_text=True)
    assert contract_count(app) == 0
    assert stored_files(folder) == []


def test_a_body_far_above_the_limit_is_cut_off_with_413(app, client, manager, lead, folder):
    app.config["CONTRACT_MAX_BYTES"] = 10_000
    response = upload(client, lead, PDF + b"0" * 200_000, "huge.pdf")
    assert response.status_code == 413
    assert contract_count(app) == 0
    assert stored_files(folder) == []


def test_uploads_above_the_apps_1_mb_body_limit_are_taken_up_to_the_contract_limit(
    app, client, manager, lead, folder
):
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    content = PDF + b"0" * (3 * 1024 * 1024)
    assert upload(client, lead, content, "scan.pdf").status_code == 302
    [stored] = stored_files(folder)
    assert stored.stat().st_size == len(content)
    # Other requests keep the small limit.
    token = csrf_token(client, "/admin/services/new")
    big_form = {"csrf_token": token, "name": "x" * (2 * 1024 * 1024)}
    assert client.post("/admin/services/new", data=big_form).status_code == 413


@pytest.mark.parametrize(
    ("sent_name", "kept_name"),
    [
        ("../../escape.pdf", "escape.pdf"),
        ("..\\..\\windows.pdf", "windows.pdf"),
        ("/etc/cron.d/job.pdf", "job.pdf"),
        ("evil\x00.pdf", "evil.pdf"),
        ("a<b>|c*?.pdf", "abc.pdf"),
        ("../.pdf", "document.pdf"),
    ],
)
def test_path_tricks_in_the_name_stay_inside_the_folder(
    app, client, manager, lead, folder, tmp_path, sent_name, kept_name
):
    assert upload(client, lead, PDF, sent_name).status_code == 302
    with app.app_context():
        contract = db.session.scalars(select(Contract)).one()
        assert contract.file_name == kept_name
    [stored] = stored_files(tmp_path)  # nothing anywhere else under the test's folder
    assert stored.parent == folder and stored.name == contract.file_key


def test_cleaned_names_have_no_path_control_characters_or_nul():
    assert clean_file_name("evil\x00.pdf") == "evil.pdf"
    assert clean_file_name("line\r\nbreak.pdf") == "linebreak.pdf"
    assert clean_file_name(None) == "document"
    assert clean_file_name("Договор №5.PDF") == "Договор №5.pdf"
    assert len(clean_file_name("x" * 500 + ".pdf")) == 200


def test_download_is_refused_to_roles_without_contract_access_and_to_visitors(
    app, client, manager, lead
):
    upload(client, lead, PDF, "contract.pdf")
    with app.app_context():
        contract_id = db.session.scalar(select(Contract.id))
        operator = factories.staff("operator")
        marketer = factories.staff("marketer")
        member = factories.participant("Mallory Member")
    path = f"/admin/contracts/{contract_id}/document"

    for person in (operator, marketer, member):
        other = app.test_client()
        log_in(other, person["email"])
        response = other.get(path)
        assert response.status_code == 403
        assert PDF not in response.get_data()

    visitor = app.test_client().get(path)
    assert visitor.status_code == 302 and "/auth/login" in visitor.headers["Location"]

    admin = app.test_client()
    with app.app_context():
        log_in(admin, factories.staff("admin")["email"])
    allowed = admin.get(path)
    body = allowed.get_data()
    allowed.close()
    assert body == PDF


def test_an_operator_cannot_upload_and_nothing_is_stored(app, client, lead, folder):
    with app.app_context():
        operator = factories.staff("operator")
    log_in(client, operator["email"])
    path = f"/admin/leads/{lead['id']}/contracts/new"
    assert client.get(path).status_code == 403
    response = client.post(
        path,
        data={"document": (io.BytesIO(PDF), "c.pdf"), "name": "x"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 403
    assert contract_count(app) == 0
    assert stored_files(folder) == []


def test_an_upload_without_the_csrf_token_is_refused(app, client, manager, lead, folder):
    response = client.post(
        f"/admin/leads/{lead['id']}/contracts/new",
        data={"name": "x", "document": (io.BytesIO(PDF), "c.pdf")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert contract_count(app) == 0
    assert stored_files(folder) == []


def test_the_file_is_removed_when_the_row_cannot_be_written(app, lead, folder):
    from sqlalchemy.exc import IntegrityError

    from admin.crm import contracts

    with app.test_request_context():
        with pytest.raises(IntegrityError):  # the database refuses a negative amount
            contracts.upload_contract(
                lead_id=lead["id"],
                name="x",
                service_id=lead["service_id"],
                signed_on=date(2026, 1, 1),
                valid_from=date(2026, 1, 1),
                valid_until=date(2026, 12, 31),
                amount=-100,
                currency="USD",
                document=io.BytesIO(PDF),
                document_name="x.pdf",
            )
        db.session.rollback()
    assert stored_files(folder) == []
    assert contract_count(app) == 0
