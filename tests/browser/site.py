"""The site the browser tests visit: a database filled by the demo seed (staff, participants,
referrals incl. held ones, purchases, rewards, payouts, CRM records) behind a real server.

The seed runs once per database for the whole run (SiteTemplates); each module visits a copy
of its own, so what one module's journeys write never reaches another."""

import contextlib
import email
import email.message
import fcntl
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import select

from auth.email_choices import unsubscribe_token
from auth.reset import make_token
from demo.people import ADMIN_EMAIL, DEMO_PASSWORD
from extensions import db
from models import (
    Campaign,
    Invitation,
    Lead,
    Program,
    Referral,
    ReferralCode,
    Reward,
    Service,
    User,
    utcnow,
)
from referral.invitations import stop_token
from tests import databases
from tests.apps import other_app, start_afresh
from tests.server import SERVER_SECRET, running_server

# Small enough to seed in about three seconds, large enough for every screen to have rows.
SEED_ARGS = ["demo", "seed", "--participants", "80", "--days", "120"]
KINDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class SiteCopy:
    """A module's own copy of the seeded database and of the contract documents it names."""

    database_url: str
    contracts_folder: str

    def drop(self) -> None:
        # A SQLite copy is a file in the module's temporary folder, which pytest tidies.
        if self.database_url.startswith("postgresql"):
            databases.drop_postgres_database(self.database_url)


class SiteTemplates:
    """The demo seed, made once per database for the whole run and copied for each module.

    Each database's template lives in a folder of `folder`, which every xdist worker of the
    run sees: its file lock lets one worker seed while the others wait. A worker that copied a
    template is noted there until its session ends, and the last one to leave drops it
    (should a worker still need it after that, it seeds it again).

    The seed dates its history back from the moment it ran, so a copy opened later in the run
    holds the same history, minutes older. That changes nothing the journeys check: they date
    what they add themselves, and nothing seeded changes by the clock alone (a reward whose
    hold ends meanwhile stays held until something releases it, as it did before)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.worker = os.environ.get("PYTEST_XDIST_WORKER", "main")

    def copy(self, kind: str, into: Path) -> SiteCopy:
        contracts = into / "contracts"
        with self._locked(kind) as place:
            (place / "users").mkdir(exist_ok=True)
            (place / "users" / self.worker).touch()
            template = _template(place, kind)
            shutil.copytree(place / "contracts", contracts)
            if kind == "sqlite":
                url = _copy_sqlite(template, into / "site.db")
            else:
                url = databases.copy_postgres_database(template)
        return SiteCopy(url, str(contracts))

    def release(self) -> None:
        """This worker is done with the templates; the last worker drops each."""
        for kind in KINDS:
            if not (self.folder / kind / "users" / self.worker).exists():
                continue  # never copied this one
            with self._locked(kind) as place:
                (place / "users" / self.worker).unlink()
                if not any((place / "users").iterdir()):
                    _drop(place)

    @contextlib.contextmanager
    def _locked(self, kind: str):
        place = self.folder / kind
        place.mkdir(parents=True, exist_ok=True)
        with open(place / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield place  # closing the file lets go of the lock


def _template(place: Path, kind: str) -> str:
    """The template's URL, seeded first if no worker has yet. Called under its lock."""
    done = place / "template.url"
    if done.exists():
        return done.read_text()
    _drop(place)  # whatever a seed that failed left
    if kind == "sqlite":
        url = f"sqlite:///{place / 'site.db'}"
    else:
        try:
            url = databases.create_postgres_database()
        except Exception as error:  # any connection problem: skip or fail, with the reason
            databases.service_missing("PostgreSQL", error)
    (place / "seeding.url").write_text(url)  # so that _drop finds a seed that failed
    try:
        _seed(url, str(place / "contracts"))
    except BaseException:
        _drop(place)
        raise
    (place / "seeding.url").rename(done)
    return url


def _drop(place: Path) -> None:
    """The template, its documents, and the record that names it."""
    for record in (place / "template.url", place / "seeding.url"):
        if record.exists():
            url = record.read_text()
            if url.startswith("postgresql"):
                databases.drop_postgres_database(url)
            record.unlink()
    for name in ("site.db", "site.db-wal", "site.db-shm"):
        (place / name).unlink(missing_ok=True)
    shutil.rmtree(place / "contracts", ignore_errors=True)


def run_folder(tmp_path_factory) -> Path:
    """The temporary folder of the whole run: an xdist worker's own is inside it."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


def _seed(database_url: str, contracts_folder: str) -> None:
    with other_app(database_url) as app:
        databases.migrate(app)
    with other_app(database_url, CONTRACTS_FOLDER=contracts_folder) as app:
        start_afresh(app)
        result = app.test_cli_runner().invoke(args=SEED_ARGS)
    assert result.exit_code == 0, result.output


def _copy_sqlite(template_url: str, path: Path) -> str:
    # The backup API copies what the database holds, including pages still in its WAL file.
    source = sqlite3.connect(template_url.removeprefix("sqlite:///"))
    target = sqlite3.connect(path)
    with contextlib.closing(source), contextlib.closing(target):
        source.backup(target)
    return f"sqlite:///{path}"


@dataclass(frozen=True)
class Site:
    base_url: str
    admin_email: str
    password: str
    held_referrer_email: str  # has a referral under review on the dashboard
    referral_code: str  # of a participant, for /r/<code>
    reset_path: str  # a valid password reset link
    unsubscribe_path: str  # a participant's one-click unsubscribe link (auth/email_choices.py)
    stop_invitations_path: str  # an invitation's one-click stop link (referral/invitations.py)
    held_referral_id: int
    participant_id: int
    program_id: int
    lead_id: int
    service_id: int
    campaign_id: int
    pending_reward_id: int
    mail_folder: str = ""  # what the server mailed, one file per message (site_mail)


def _facts(app, base_url: str) -> Site:
    with app.app_context():
        held = db.session.scalars(
            select(Referral).where(Referral.status == "review").order_by(Referral.id)
        ).first()
        assert held is not None, "the demo seed holds no referral for review"
        code = db.session.scalars(
            select(ReferralCode).where(ReferralCode.user_id == held.referrer_id)
        ).first()
        return Site(
            base_url=base_url,
            admin_email=ADMIN_EMAIL,
            password=DEMO_PASSWORD,
            held_referrer_email=held.referrer.email,
            referral_code=code.code,
            reset_path="",  # made below, once this app's session has let go of SQLite
            unsubscribe_path="",
            stop_invitations_path="",
            held_referral_id=held.id,
            participant_id=held.referrer_id,
            program_id=db.session.scalar(select(Program.id).order_by(Program.id)),
            lead_id=db.session.scalar(select(Lead.id).order_by(Lead.id)),
            service_id=db.session.scalar(select(Service.id).order_by(Service.id)),
            campaign_id=db.session.scalar(select(Campaign.id).order_by(Campaign.id)),
            pending_reward_id=db.session.scalar(
                select(Reward.id).where(Reward.status == "pending").order_by(Reward.id)
            ),
        )


def _signed_paths(database_url: str, email: str) -> dict[str, str]:
    """A participant's password reset link, the one-click links of their email and of an
    invitation they sent: signed with the server's key, as the server's own emails carry them."""
    with other_app(database_url, SECRET_KEY=SERVER_SECRET) as app, app.app_context():
        user = db.session.scalar(select(User).where(User.email == email))
        invitation = Invitation(
            program_id=db.session.scalar(select(Program.id).where(Program.is_default)),
            sender_id=user.id,
            email_canonical="invited.friend@example.com",
            created_at=utcnow(),
        )
        db.session.add(invitation)
        db.session.commit()
        return {
            "reset_path": f"/auth/reset/{make_token(user)}",
            "unsubscribe_path": f"/auth/emails/unsubscribe/{unsubscribe_token(user.id, 'friends')}",
            "stop_invitations_path": f"/invitations/stop/{stop_token(invitation.id)}",
        }


@contextlib.contextmanager
def seeded_site(app, database_url: str, contracts_folder: str, mail_folder: str):
    """The server on a copy of the seeded database (SiteTemplates.copy), and what the tests
    need to know about its data."""
    # Ten rows a page: every list still fills a page (and shows its pager), and axe-core,
    # whose time grows with the page, stays quick.
    with running_server(
        database_url,
        workers=1,
        threads=8,
        CONTRACTS_FOLDER=contracts_folder,
        ADMIN_PAGE_SIZE="10",
        MAIL_BACKEND="file",
        MAIL_FILE_PATH=mail_folder,
    ) as base_url:
        facts = _facts(app, base_url)
        yield replace(
            facts,
            mail_folder=mail_folder,
            **_signed_paths(database_url, facts.held_referrer_email),
        )


def site_mail(site: Site, to: str, subject: str, wait_seconds: float = 10.0) -> list[str]:
    """The bodies of the messages the server mailed to `to` under `subject`, waiting up to
    `wait_seconds` for the first (the outbox sends right after the request's commit)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        found = [
            message.get_payload(decode=True).decode()
            for message in _mailed(Path(site.mail_folder))
            if message["To"] == to and message["Subject"] == subject
        ]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _mailed(folder: Path) -> list[email.message.Message]:
    # The file backend writes each connection's messages to one file, 79 dashes apart.
    messages = []
    for path in sorted(folder.iterdir()):
        for chunk in path.read_text().split("\n" + "-" * 79 + "\n"):
            if chunk.strip():
                messages.append(email.message_from_string(chunk.lstrip("\n")))
    return messages
