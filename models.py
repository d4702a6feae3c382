"""Every table of InviteLoop. Money is integer minor units; timestamps are aware UTC."""

from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db

ROLES = ("member", "operator", "marketer", "manager", "admin")
CODE_STATUSES = ("active", "disabled")
ATTRIBUTION_MODELS = ("first", "last")
REFERRAL_SOURCES = ("link", "code", "claimed", "api")
REFERRAL_STATUSES = ("pending", "qualified", "rewarded", "review", "approved", "rejected")
# Referrals that count on the leaderboard and in the referrer's counter.
COUNTED_STATUSES = ("pending", "qualified", "rewarded", "approved")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sql_list(values) -> str:
    return ", ".join(f"'{value}'" for value in values)


class UTCDateTime(TypeDecorator):
    """Stores UTC; always hands back an aware datetime (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Program(db.Model):
    __tablename__ = "programs"
    __table_args__ = (
        CheckConstraint(
            "attribution_window_days BETWEEN 1 AND 365", name="attribution_window_range"
        ),
        CheckConstraint(
            f"attribution_model IN ({_sql_list(ATTRIBUTION_MODELS)})", name="attribution_model"
        ),
        CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name="window_order"),
        # At most one default program.
        Index(
            "uq_programs_single_default",
            "is_default",
            unique=True,
            postgresql_where=text("is_default"),
            sqlite_where=text("is_default"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attribution_window_days: Mapped[int] = mapped_column(Integer, default=30)
    attribution_model: Mapped[str] = mapped_column(String(5), default="last")
    landing_url: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def is_running(self, now: datetime) -> bool:
        return (
            self.active and self.starts_at <= now and (self.ends_at is None or now < self.ends_at)
        )


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN ({_sql_list(ROLES)})", name="role"),
        CheckConstraint("email = lower(email)", name="email_lower_case"),
        CheckConstraint("referral_count >= 0", name="referral_count_not_negative"),
        CheckConstraint("referred_by_id IS NULL OR referred_by_id <> id", name="not_own_inviter"),
        # The leaderboard's order, read from the index a page at a time.
        # `active` rides along so the board's count and deep pages never visit the table.
        Index(
            "ix_users_leaderboard",
            text("referral_count DESC"),
            "last_referral_at",
            "id",
            "active",
            postgresql_where=text("referral_count > 0"),
            sqlite_where=text("referral_count > 0"),
        ),
        # The few deactivated accounts, so period boards can leave them out cheaply.
        Index(
            "ix_users_inactive",
            "id",
            # Spelled as SQLAlchemy renders `not_(User.active)` on each, so planners match it.
            postgresql_where=text("NOT active"),
            sqlite_where=text("active = 0"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    # Gmail dots and +tags folded: the same mailbox under another spelling (fraud checks).
    email_canonical: Mapped[str | None] = mapped_column(String(254), index=True)
    name: Mapped[str] = mapped_column(String(100))
    display_name: Mapped[str | None] = mapped_column(String(60))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="member")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[str] = mapped_column(String(10), default="en")
    referred_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    signup_ip: Mapped[str | None] = mapped_column(String(45))
    device_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # Counted referrals and when the latest of them landed (the leaderboard's tie-break).
    referral_count: Mapped[int] = mapped_column(Integer, default=0)
    last_referral_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    codes: Mapped[list["ReferralCode"]] = relationship(back_populates="owner")

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    @property
    def public_name(self) -> str:
        return public_name(self.name, self.display_name)


def public_name(name: str, display_name: str | None = None) -> str:
    """What the public sees: a chosen display name, else "Alice Z." from "Alice Zimmer"."""
    if display_name:
        return display_name
    parts = name.split()
    if not parts:
        return "Anonymous"
    if len(parts) == 1:
        return parts[0]
    return f"{parts[0]} {parts[-1][0].upper()}."


class ReferralCode(db.Model):
    __tablename__ = "referral_codes"
    __table_args__ = (
        CheckConstraint(f"status IN ({_sql_list(CODE_STATUSES)})", name="status"),
        CheckConstraint("length(code) BETWEEN 6 AND 8", name="code_length"),
        CheckConstraint("code = upper(code)", name="code_upper_case"),
        # One active code per participant and program.
        Index(
            "uq_referral_codes_one_active",
            "user_id",
            "program_id",
            unique=True,
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(8), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    status: Mapped[str] = mapped_column(String(10), default="active")
    is_vanity: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    owner: Mapped[User] = relationship(back_populates="codes")
    program: Mapped[Program] = relationship()


class Click(db.Model):
    __tablename__ = "clicks"
    __table_args__ = (Index("ix_clicks_code_id_created_at", "code_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code_id: Mapped[int] = mapped_column(ForeignKey("referral_codes.id", ondelete="CASCADE"))
    visitor_id: Mapped[str] = mapped_column(String(32), index=True)
    ip_prefix: Mapped[str | None] = mapped_column(String(50))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    referrer: Mapped[str | None] = mapped_column(String(400))
    utm_source: Mapped[str | None] = mapped_column(String(100))
    utm_medium: Mapped[str | None] = mapped_column(String(100))
    utm_campaign: Mapped[str | None] = mapped_column(String(100))
    utm_term: Mapped[str | None] = mapped_column(String(100))
    utm_content: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Referral(db.Model):
    __tablename__ = "referrals"
    __table_args__ = (
        CheckConstraint("referrer_id <> referred_id", name="not_self"),
        CheckConstraint(f"source IN ({_sql_list(REFERRAL_SOURCES)})", name="source"),
        CheckConstraint(f"status IN ({_sql_list(REFERRAL_STATUSES)})", name="status"),
        CheckConstraint("status <> 'rejected' OR reason IS NOT NULL", name="rejection_reason"),
        CheckConstraint("risk_score >= 0", name="risk_score_not_negative"),
        Index("ix_referrals_referrer_id_created_at", "referrer_id", "created_at"),
        Index("ix_referrals_created_at_referrer", "created_at", "referrer_id", "status"),
        # Counted referrals of a period, grouped by referrer, from the index alone (and any
        # lookup by status).
        Index("ix_referrals_status_created_at", "status", "created_at", "referrer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    code_id: Mapped[int] = mapped_column(ForeignKey("referral_codes.id"), index=True)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # A person is referred once: the first attribution stands.
    referred_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    source: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    reason: Mapped[str | None] = mapped_column(String(40))
    risk_score: Mapped[int] = mapped_column(Integer, default=0)
    risk_reasons: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    referrer: Mapped[User] = relationship(foreign_keys=[referrer_id])
    referred: Mapped[User] = relationship(foreign_keys=[referred_id])
    code: Mapped[ReferralCode] = relationship()

    @property
    def counted(self) -> bool:
        return self.status in COUNTED_STATUSES
