"""Realistic demo data: participants who joined over the last months, many through a
friend's link, with the clicks that brought them and a few self-referrals caught."""

import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from werkzeug.security import check_password_hash

from auth.services import canonical_email, hash_password
from core.clients import ip_prefix
from extensions import db
from models import ReferralCode, User, utcnow
from referral import services

DEMO_PASSWORD = "invite-loop-demo"  # noqa: S105 - published on purpose: demo data only
ADMIN_EMAIL = "admin@example.com"
# One demo account per staff role, to see the panel as each role sees it.
STAFF_EMAILS = {
    "admin": ADMIN_EMAIL,
    "manager": "manager@example.com",
    "marketer": "marketer@example.com",
    "operator": "operator@example.com",
}

FIRST_NAMES = [
    "Ava",
    "Liam",
    "Noah",
    "Emma",
    "Olivia",
    "Mia",
    "Lucas",
    "Amelia",
    "Ethan",
    "Sofia",
    "Mateo",
    "Chloe",
    "Yuki",
    "Aarav",
    "Priya",
    "Omar",
    "Leila",
    "Jonas",
    "Freya",
    "Ines",
    "Diego",
    "Hana",
    "Kofi",
    "Amara",
    "Nikolai",
    "Zoe",
    "Elif",
    "Tomas",
    "Maya",
    "Arjun",
]
LAST_NAMES = [
    "Smith",
    "Garcia",
    "Müller",
    "Rossi",
    "Kowalski",
    "Nguyen",
    "Tanaka",
    "Okafor",
    "Silva",
    "Andersen",
    "Dubois",
    "Novak",
    "Haddad",
    "Petrov",
    "Costa",
    "Jensen",
    "Moreau",
    "Fischer",
    "Ivanova",
    "Santos",
    "Kim",
    "Patel",
    "Osei",
    "Lindqvist",
]
USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 Chrome/131.0 Mobile",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 Version/18.1 Safari",
)
SITES = (
    None,
    "https://t.me/",
    "https://web.whatsapp.com/",
    "https://x.com/",
    "https://mail.google.com/",
)
UTM_SOURCES = (None, "telegram", "whatsapp", "x", "email", "facebook")


@dataclass
class SeedReport:
    participants: int
    referrals: int
    clicks: int


def database_is_empty() -> bool:
    return db.session.scalar(select(func.count(User.id))) == 0


def demo_accounts_exist() -> bool:
    """The demo's admin account is still there and still has the published password."""
    admin = db.session.scalar(select(User).where(User.email == ADMIN_EMAIL))
    return admin is not None and check_password_hash(admin.password_hash or "", DEMO_PASSWORD)


def seed(participants: int, days: int, progress: Callable[[int, int], None]) -> SeedReport:
    rng = random.Random(20261121)
    now = utcnow()
    program = services.ensure_default_program()
    shared_hash = hash_password(DEMO_PASSWORD)  # one hash for all: seeding stays fast
    _seed_staff(shared_hash, now - timedelta(days=days + 1), program)
    start = now - timedelta(days=days)
    joined = sorted(start + (now - start) * rng.random() ** 0.7 for _ in range(participants))
    people: list[tuple[User, ReferralCode]] = []
    report = SeedReport(0, 0, 0)
    for index, joined_at in enumerate(joined):
        user = _seed_participant(rng, index, joined_at, shared_hash)
        code = _issue_code(user, program, joined_at)
        inviter = _pick_inviter(rng, people)
        if inviter is not None:
            inviter_user, inviter_code = inviter
            clicks, last_click_at = _seed_clicks(rng, inviter_code, joined_at)
            report.clicks += clicks
            roll = rng.random()
            if roll < 0.04:  # the inviter's own browser and address: refused
                user.device_id = inviter_user.device_id
                user.signup_ip = inviter_user.signup_ip
            elif roll < 0.07:  # the inviter's address: held for review
                user.signup_ip = inviter_user.signup_ip
            source = rng.choice(("link", "code"))
            clicked_at = last_click_at if source == "link" else None
            services.attribute_signup(
                user, inviter_code, source, joined_at, clicked_at=clicked_at, new_participant=True
            )
            report.referrals += 1
        people.append((user, code))
        report.participants += 1
        if (index + 1) % 50 == 0 or index + 1 == participants:
            db.session.commit()
        progress(index + 1, participants)
    return report


def _seed_staff(password_hash: str, joined_at: datetime, program) -> None:
    for role, email in STAFF_EMAILS.items():
        person = User(
            email=email,
            email_canonical=email,
            name=f"Demo {role.title()}",
            password_hash=password_hash,
            role=role,
            created_at=joined_at,
            device_id=secrets.token_hex(16),
        )
        db.session.add(person)
        db.session.flush()
        _issue_code(person, program, joined_at)


def _issue_code(user: User, program, joined_at: datetime) -> ReferralCode:
    """Everyone gets their code as they join: it is dated then, not on the day of the seed."""
    code = services.issue_code(user, program)
    code.created_at = joined_at
    return code


def _seed_participant(rng: random.Random, index: int, joined_at: datetime, password_hash: str):
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    email = f"{first}.{last}.{index}@example.com".lower()
    user = User(
        name=f"{first} {last}",
        email=email,
        email_canonical=canonical_email(email),
        password_hash=password_hash,
        signup_ip=f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        device_id=secrets.token_hex(16),
        created_at=joined_at,
    )
    db.session.add(user)
    db.session.flush()
    return user


def _pick_inviter(rng: random.Random, people: list) -> tuple[User, ReferralCode] | None:
    """Two in three joined through a friend; early joiners have had more time to invite."""
    if not people or rng.random() < 0.33:
        return None
    return people[int(len(people) * rng.random() ** 2)]


def _seed_clicks(
    rng: random.Random, code: ReferralCode, signup_at: datetime
) -> tuple[int, datetime]:
    """The visits before a signup: a few people opened the link over the days before (never
    before its owner had it), the last of them the friend, who signs up minutes later.
    Returns how many, and when the friend's click was."""
    count = rng.randint(1, 5)
    since_issued = signup_at - code.created_at  # the inviter may have joined just before
    converting_at = signup_at - min(timedelta(minutes=rng.uniform(2, 90)), since_issued * 0.9)
    earliest = max(code.created_at, converting_at - timedelta(days=7))
    moments = sorted(earliest + (converting_at - earliest) * rng.random() for _ in range(count - 1))
    for moment in [*moments, converting_at]:
        click = services.record_click(
            code,
            visitor_id=secrets.token_hex(16),
            ip_prefix=ip_prefix(f"203.0.113.{rng.randint(1, 254)}"),
            user_agent=rng.choice(USER_AGENTS),
            referrer=rng.choice(SITES),
            utm={"source": rng.choice(UTM_SOURCES)},
        )
        click.created_at = moment
    return count, converting_at
