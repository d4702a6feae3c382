"""CSV exports cannot smuggle a formula into a spreadsheet, whatever list separator or width
the spreadsheet reads them with; numbers stay numbers (docs/guarantees.md #19)."""

import csv
import io
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from admin.crm import services as crm
from admin.exports import safe_cell
from extensions import db
from tests import factories
from tests.helpers import log_in

SEPARATORS = (",", ";", "\t", "\r", "\n")
FORMULA_STARTS = "=+-@"

# The cells the issue reported, and their width and separator variants.
REPORTED = (
    "ok;=1+1",
    "＝1+1",
    "ok；＝1+1",
    "ok;＋1",
    "ok,－1",
    "ok\t＠SUM(A1)",
    "ok\r=1+1",
    "ok\n=1+1",
    "ok;  =1+1",
    'ok;"=1+1"',
    "ok，=cmd|' /C calc'!A0",
    "﹦1+1",
    "ok\u3000;\u3000=1",
)


def pieces(line: str):
    """What a spreadsheet could take as cells when it splits `line` at any separator and
    ignores quotes: the worst reading of a file."""
    normal = unicodedata.normalize("NFKC", line)
    for separator in SEPARATORS:
        normal = normal.replace(separator, "\x1f")
    return normal.split("\x1f")


def runs_as_formula(piece: str) -> bool:
    """Whether a spreadsheet would evaluate this piece: its first character, past spaces and a
    field's opening quote, starts a formula. Plain numbers are data, not formulas."""
    text = piece.lstrip(' "')
    if not text or text[0] not in FORMULA_STARTS:
        return False
    try:
        float(text.strip('"'))
    except ValueError:
        return True
    return False


def test_reported_cells_are_defused_for_every_separator_and_width():
    for raw in REPORTED:
        cell = safe_cell(raw)
        assert [p for p in pieces(cell) if runs_as_formula(p)] == [], (raw, cell)
        # Defusing only adds apostrophes: what the cell says is still there.
        assert cell.replace("'", "") == raw.replace("'", ""), raw


def test_the_old_rules_still_hold_and_numbers_stay_numbers():
    assert safe_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert safe_cell("\tcmd") == "'\tcmd"
    assert safe_cell("Smith, John") == "Smith, John"  # plain text is left alone
    assert safe_cell("tel: +49 30 1234") == "tel: +49 30 1234"
    assert safe_cell(-500) == -500
    assert safe_cell(12.5) == 12.5
    assert safe_cell(True) == "yes"
    assert safe_cell(None) == ""


TRICKY = st.sampled_from(list("=+-@;,\t\r\n \"'ab1＝＋－＠；，﹦\u3000"))


@given(st.text(alphabet=TRICKY) | st.text())
def test_no_text_comes_out_as_a_formula(raw):
    cell = safe_cell(raw)
    assert not any(runs_as_formula(piece) for piece in pieces(cell)), (raw, cell)
    assert cell.replace("'", "") == raw.replace("'", "")


def test_an_exported_file_runs_nothing_whatever_the_separator(app):
    with app.app_context():
        for index, name in enumerate(REPORTED):
            crm.save_lead(
                None,
                full_name=name,
                phone=None,
                email=f"lead{index}@example.com",
                campaign_id=None,
            )
        db.session.commit()
        admin = factories.staff("admin")
    client = app.test_client()
    log_in(client, admin["email"])
    response = client.get("/admin/export/leads.csv")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    for line in text.splitlines():
        assert not any(runs_as_formula(piece) for piece in pieces(line)), line
    rows = list(csv.DictReader(io.StringIO(text)))
    # Read back with a comma, every name is there (behind its apostrophes) and ids are numbers.
    assert sorted(row["full_name"].replace("'", "") for row in rows) == sorted(
        name.replace("'", "") for name in REPORTED
    )
    assert all(row["id"].isdigit() for row in rows)
