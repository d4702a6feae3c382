"""Every table of InviteLoop. Money is integer minor units; timestamps are aware UTC.

One file, in sections (each starts with a `# ---` header), in this order:
    allowed values  the tuples the CHECK constraints are built from
    helpers         utcnow, the UTC column type
    programs        Program: a referral program's rules, rewards and fraud policy;
                    ProgramText: its texts in each language;
                    ProgramFilter: the channels, countries and categories it is limited to
    accounts        User (participants and staff, by role), UserSession, PhoneCode
    referral loop   ReferralCode, Click, Referral (its status changes: referral/lifecycle.py),
                    LinkCacheGeneration (when the links' caches are stale)
    rewards         Conversion (events in), Payout, Reward (the ledger), EventInbox (events
                    acknowledged at once, processed by the worker)
    integrations    ApiKey (calls in)
    staff panel     AuditLog (who changed what), SiteBranding (the installation's own brand)
    CRM             Service, Campaign, Lead, Contract
    integrations    WebhookEndpoint, WebhookDelivery (events out)
    outbox          OutboxMessage (side effects waiting to leave: core/outbox.py)
    emails          EmailOptOut (a participant's "no thanks"), Invitation, InvitationSuppression
    analytics       AnalyticsDaily, AnalyticsDailyAccounts, AnalyticsRollup (the roll-up),
                    AnalyticsReferralDay, AnalyticsPurchaseDay, AnalyticsRewardDay,
                    AnalyticsGapDay, AnalyticsStaleDay
    Saleor app      SaleorInstallation (the token), SaleorFulfilment (gift cards paid there)
"""

from datetime import UTC, date, datetime

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db

# --- allowed values: the tuples the CHECK constraints are built from ---

ROLES = ("member", "operator", "marketer", "manager", "admin")
CODE_STATUSES = ("active", "disabled")
ATTRIBUTION_MODELS = ("first", "last")
REFERRAL_SOURCES = ("link", "code", "claimed", "api")
# Which status may follow which, and the one place a status changes: referral/lifecycle.py.
REFERRAL_STATUSES = ("pending", "qualified", "rewarded", "review", "approved", "rejected")
# Referrals that count on the leaderboard and in the referrer's counter.
COUNTED_STATUSES = ("pending", "qualified", "rewarded", "approved")
# Referrals a qualifying event may still turn into rewards.
QUALIFIABLE_STATUSES = ("pending", "approved")

TRIGGERS = ("signup", "first_purchase", "every_purchase")
REWARD_KINDS = ("credit", "points", "coupon", "gift_card", "cash")
REWARD_BASES = ("fixed", "percent")  # percent values are in basis points (1000 = 10 %)
# Kinds a participant can cash out through a payout request.
PAYABLE_KINDS = ("cash", "credit")
MAX_DEPTH = 10
# What a program may limit its purchases to (ProgramFilter): Saleor channel slugs, ISO 3166
# alpha-2 countries of the order's address, and product category slugs.
FILTER_KINDS = ("channel", "country", "category")
# The texts of a program an admin may write per language (referral/program_texts.py).
PROGRAM_TEXT_FIELDS = ("name", "description", "headline", "share_text", "usage_text", "email_intro")
# How a program's Saleor-paid rewards are issued once approved (rewards/rollout.py).
FULFILMENT_MODES = ("automatic", "limited", "manual")

CONVERSION_SOURCES = ("api", "saleor", "stripe", "manual", "app")
CONVERSION_KINDS = ("signup", "purchase", "refund")
OUTCOMES = ("accepted", "duplicate", "unattributed", "ignored", "rejected")

REWARD_ROLES = ("referrer", "referee", "bonus")
REWARD_STATUSES = (
    "review",  # held by a fraud check until staff decide
    "pending",  # inside the hold (refund) window
    "approved",
    "paid",
    "redeemed",
    "expired",
    "cancelled",
    "rejected",
)
# Entries that are, or will be, worth something to the participant.
LIVE_REWARD_STATUSES = ("review", "pending", "approved", "paid", "redeemed")
# Entries that count in some balance; cancelled, rejected and expired ones count nowhere.
BALANCE_STATUSES = ("review", "pending", "approved", "paid")
# Logo files the branding screen accepts, by the type they are served with (core/logo.py).
LOGO_TYPES = ("image/png", "image/webp", "image/svg+xml")
# Reward entries that cost the business, or will: everything not taken back, lapsed or held
# for review (the analytics' reward cost, the campaign statistics' cost).
COST_STATUSES = ("pending", "approved", "paid", "redeemed")
PAYOUT_STATUSES = ("requested", "paid", "cancelled")

CAMPAIGN_CHANNELS = ("referral", "search", "social", "email", "offline", "other")
LEAD_STATUSES = ("potential", "active", "lost")
LEAD_SOURCES = ("manual", "referral")
WEBHOOK_EVENTS = ("referral.created", "referral.qualified", "reward.approved", "reward.paid")
DELIVERY_STATUSES = ("pending", "succeeded", "failed")
OUTBOX_STATUSES = ("pending", "sent", "dead")
# What a participant may turn off (auth/email_choices.py); security mails always go.
EMAIL_KINDS = ("friends", "rewards", "payouts", "news")
# The languages a participant may save and a program's texts may be written in:
# config.LANGUAGES, spelled again because models.py imports no project module
# (tests/test_i18n.py checks the two agree).
LOCALES = ("en", "ru")


# --- helpers: the clock, CHECK lists, the UTC column type ---


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


# --- programs: a referral program's rules, rewards and fraud policy ---


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
        CheckConstraint(f"trigger_event IN ({_sql_list(TRIGGERS)})", name="trigger_event"),
        CheckConstraint("min_purchase_amount >= 0", name="min_purchase_not_negative"),
        CheckConstraint("length(currency) = 3 AND currency = upper(currency)", name="currency"),
        CheckConstraint(
            f"referrer_reward_kind IN ({_sql_list(REWARD_KINDS)})", name="referrer_kind"
        ),
        CheckConstraint(
            f"referrer_reward_basis IN ({_sql_list(REWARD_BASES)})", name="referrer_basis"
        ),
        CheckConstraint("referrer_reward_value > 0", name="referrer_value_positive"),
        CheckConstraint(
            "referrer_reward_basis = 'fixed' OR referrer_reward_value <= 10000",
            name="referrer_percent_range",
        ),
        # A friend's reward is all three fields or none.
        CheckConstraint(
            "(friend_reward_kind IS NULL) = (friend_reward_basis IS NULL)"
            " AND (friend_reward_kind IS NULL) = (friend_reward_value IS NULL)",
            name="friend_reward_complete",
        ),
        CheckConstraint(
            f"friend_reward_kind IS NULL OR friend_reward_kind IN ({_sql_list(REWARD_KINDS)})",
            name="friend_kind",
        ),
        CheckConstraint(
            f"friend_reward_basis IS NULL OR friend_reward_basis IN ({_sql_list(REWARD_BASES)})",
            name="friend_basis",
        ),
        CheckConstraint(
            "friend_reward_value IS NULL OR (friend_reward_value > 0"
            " AND (friend_reward_basis = 'fixed' OR friend_reward_value <= 10000))",
            name="friend_value_range",
        ),
        CheckConstraint(f"max_depth BETWEEN 1 AND {MAX_DEPTH}", name="depth_range"),
        CheckConstraint(
            "(milestone_every IS NULL) = (milestone_amount IS NULL)", name="milestone_complete"
        ),
        CheckConstraint(
            "milestone_every IS NULL OR (milestone_every >= 2 AND milestone_amount > 0)",
            name="milestone_range",
        ),
        CheckConstraint("cap_per_day IS NULL OR cap_per_day > 0", name="cap_per_day_positive"),
        CheckConstraint(
            "cap_per_month IS NULL OR cap_per_month > 0", name="cap_per_month_positive"
        ),
        CheckConstraint("cap_total IS NULL OR cap_total > 0", name="cap_total_positive"),
        CheckConstraint("hold_days BETWEEN 0 AND 365", name="hold_days_range"),
        CheckConstraint(
            "reward_expiry_days IS NULL OR reward_expiry_days BETWEEN 1 AND 3650",
            name="expiry_days_range",
        ),
        CheckConstraint("review_score > 0 AND reject_score >= review_score", name="policy_order"),
        CheckConstraint("max_signups_per_ip_per_day > 0", name="ip_limit_positive"),
        CheckConstraint("max_signups_per_code_per_hour > 0", name="code_limit_positive"),
        CheckConstraint("min_seconds_click_to_purchase >= 0", name="click_gap_not_negative"),
        CheckConstraint("claim_window_days BETWEEN 0 AND 365", name="claim_window_range"),
        CheckConstraint(
            "share_text IS NULL OR length(share_text) BETWEEN 1 AND 280", name="share_text_length"
        ),
        CheckConstraint(
            "reward_usage_text IS NULL OR length(reward_usage_text) BETWEEN 1 AND 500",
            name="reward_usage_text_length",
        ),
        # A program belongs only to a campaign of the referral channel: the composite key
        # below points at (campaign id, channel), and this pins the channel.
        CheckConstraint("campaign_channel = 'referral'", name="campaign_channel_referral"),
        ForeignKeyConstraint(
            ["campaign_id", "campaign_channel"],
            ["campaigns.id", "campaigns.channel"],
            name="fk_programs_campaign_referral",
            use_alter=True,
        ),
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
    # What earns a reward, and what it is worth. Amounts are minor units of `currency`.
    trigger_event: Mapped[str] = mapped_column(String(16), default="first_purchase")
    min_purchase_amount: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    referrer_reward_kind: Mapped[str] = mapped_column(String(10), default="credit")
    referrer_reward_basis: Mapped[str] = mapped_column(String(7), default="fixed")
    referrer_reward_value: Mapped[int] = mapped_column(Integer, default=1000)
    friend_reward_kind: Mapped[str | None] = mapped_column(String(10))
    friend_reward_basis: Mapped[str | None] = mapped_column(String(7))
    friend_reward_value: Mapped[int | None] = mapped_column(Integer)
    # Levels paid and shown: level 1 earns the full reward, level n+1 earns
    # level_shares[n-1] percent of it; levels past the list earn nothing.
    max_depth: Mapped[int] = mapped_column(Integer, default=3)
    level_shares: Mapped[list] = mapped_column(JSON, default=list)
    milestone_every: Mapped[int | None] = mapped_column(Integer)
    milestone_amount: Mapped[int | None] = mapped_column(Integer)
    # Caps count referrer rewards (level 1): per referrer per UTC day / month, and in all.
    cap_per_day: Mapped[int | None] = mapped_column(Integer)
    cap_per_month: Mapped[int | None] = mapped_column(Integer)
    cap_total: Mapped[int | None] = mapped_column(Integer)
    hold_days: Mapped[int] = mapped_column(Integer, default=14)
    reward_expiry_days: Mapped[int | None] = mapped_column(Integer)
    # Fraud policy: a risk score at or above review_score is held, at reject_score refused.
    review_score: Mapped[int] = mapped_column(Integer, default=50)
    reject_score: Mapped[int] = mapped_column(Integer, default=100)
    max_signups_per_ip_per_day: Mapped[int] = mapped_column(Integer, default=5)
    max_signups_per_code_per_hour: Mapped[int] = mapped_column(Integer, default=200)
    min_seconds_click_to_purchase: Mapped[int] = mapped_column(Integer, default=10)
    excluded_email_domains: Mapped[list] = mapped_column(JSON, default=list)
    # Days after signup during which a participant without an inviter may still enter one's
    # code (POST /referral/claim); 0 turns claiming off.
    claim_window_days: Mapped[int] = mapped_column(Integer, default=14, server_default="14")
    # What participants read (referral/offer.py): the text sent with a shared link, its
    # {placeholders} filled from the rules, and how to use a reward. None: made from the rules.
    share_text: Mapped[str | None] = mapped_column(String(280))
    reward_usage_text: Mapped[str | None] = mapped_column(String(500))
    # Tell the referrer when a friend's signup does not count (rewards/notifications.py).
    notify_rejected: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    campaign_id: Mapped[int | None] = mapped_column(Integer, index=True)
    campaign_channel: Mapped[str] = mapped_column(
        String(10), default="referral", server_default="referral"
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    filters: Mapped[list["ProgramFilter"]] = relationship(
        cascade="all, delete-orphan", order_by="ProgramFilter.value"
    )
    rollout: Mapped["ProgramRollout | None"] = relationship(cascade="all, delete-orphan")
    payout_allowlist: Mapped[list["ProgramPayoutAllowance"]] = relationship(
        cascade="all, delete-orphan"
    )
    # Its texts in each language (the default language's name, description, share text and
    # usage text are the columns above); read through referral/program_texts.py.
    texts: Mapped[list["ProgramText"]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )

    # Rollout of Saleor payments (rewards/rollout.py); a program without a row is automatic.
    @property
    def fulfilment_mode(self) -> str:
        return self.rollout.mode if self.rollout else "automatic"

    @fulfilment_mode.setter
    def fulfilment_mode(self, mode: str) -> None:
        self._rollout().mode = mode

    @property
    def fulfilment_percent(self) -> int:
        return self.rollout.percent if self.rollout else 0

    @fulfilment_percent.setter
    def fulfilment_percent(self, percent: int) -> None:
        self._rollout().percent = percent

    def _rollout(self) -> "ProgramRollout":
        if self.rollout is None:
            self.rollout = ProgramRollout(mode="automatic", percent=0)
        return self.rollout

    @property
    def fulfilment_allowlist(self) -> list[str]:
        """The allow-list as the form and the audit log show it: the participants' emails."""
        return sorted(row.user.email or f"#{row.user_id}" for row in self.payout_allowlist)

    def is_running(self, now: datetime) -> bool:
        return (
            self.active and self.starts_at <= now and (self.ends_at is None or now < self.ends_at)
        )

    # The eligibility filters as plain lists (empty: no limit), so rules code, the form and the
    # audit log treat them like any other rule.
    @property
    def eligible_channels(self) -> list[str]:
        return self._filter_values("channel")

    @eligible_channels.setter
    def eligible_channels(self, values: list[str]) -> None:
        self._set_filter_values("channel", values)

    @property
    def eligible_countries(self) -> list[str]:
        return self._filter_values("country")

    @eligible_countries.setter
    def eligible_countries(self, values: list[str]) -> None:
        self._set_filter_values("country", values)

    @property
    def eligible_categories(self) -> list[str]:
        return self._filter_values("category")

    @eligible_categories.setter
    def eligible_categories(self, values: list[str]) -> None:
        self._set_filter_values("category", values)

    def _filter_values(self, kind: str) -> list[str]:
        return sorted(row.value for row in self.filters if row.kind == kind)

    def _set_filter_values(self, kind: str, values: list[str]) -> None:
        """Keep the rows still wanted and add the new ones: replacing a row by an equal one
        would insert it before the old one is deleted and break the unique constraint."""
        wanted = set(values or [])
        kept = [row for row in self.filters if row.kind != kind or row.value in wanted]
        have = {row.value for row in kept if row.kind == kind}
        added = [ProgramFilter(kind=kind, value=value) for value in sorted(wanted - have)]
        self.filters = kept + added


class ProgramRollout(db.Model):
    """How a program's approved Saleor rewards are issued: `automatic` all of them, `limited`
    those of the allow-list and of a stable `percent` of the other participants, `manual`
    none; the rest wait approved until staff press "Pay out"."""

    __tablename__ = "program_rollouts"
    __table_args__ = (
        CheckConstraint(f"mode IN ({_sql_list(FULFILMENT_MODES)})", name="mode"),
        CheckConstraint("percent BETWEEN 0 AND 100", name="percent_range"),
    )

    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", ondelete="CASCADE"), primary_key=True
    )
    mode: Mapped[str] = mapped_column(String(10))
    percent: Mapped[int] = mapped_column(Integer, default=0)


class ProgramPayoutAllowance(db.Model):
    """A participant whose rewards a `limited` program issues in Saleor automatically."""

    __tablename__ = "program_payout_allowlist"

    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )

    user: Mapped["User"] = relationship()


class ProgramText(db.Model):
    """One text of a program in one language, as an admin wrote it."""

    __tablename__ = "program_texts"
    __table_args__ = (
        UniqueConstraint("program_id", "locale", "field", name="uq_program_texts_field"),
        CheckConstraint(f"locale IN ({_sql_list(LOCALES)})", name="locale"),
        CheckConstraint(f"field IN ({_sql_list(PROGRAM_TEXT_FIELDS)})", name="field"),
        CheckConstraint("length(text) BETWEEN 1 AND 2000", name="text_length"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    locale: Mapped[str] = mapped_column(String(5))
    field: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)


class ProgramFilter(db.Model):
    """One value a program's purchases must match: a row per channel, country or category.
    A table rather than JSON so the database holds each value's shape and uniqueness."""

    __tablename__ = "program_filters"
    __table_args__ = (
        UniqueConstraint("program_id", "kind", "value", name="uq_program_filters_value"),
        CheckConstraint(f"kind IN ({_sql_list(FILTER_KINDS)})", name="kind"),
        CheckConstraint(
            "kind <> 'country' OR (length(value) = 2 AND value = upper(value))",
            name="country_alpha2",
        ),
        CheckConstraint(
            "kind = 'country' OR (length(value) BETWEEN 1 AND 100 AND value = lower(value))",
            name="slug_shape",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(100))


# --- accounts: participants and staff (by role), phone sign-in ---


# A deleted account keeps its row (referrals and ledger entries point at it) but nothing that
# identifies or signs in anyone: auth/account_data.py writes it, this CHECK holds it so.
DELETED_EMAIL_DOMAIN = "invalid"  # RFC 2606: never routable
DELETED_NAME = "Deleted participant"
DELETED_IS_ANONYMOUS = (
    "deleted_at IS NULL OR (NOT active AND role = 'member' AND password_hash IS NULL"
    " AND phone IS NULL AND external_id IS NULL AND email_canonical IS NULL"
    " AND display_name = name AND signup_ip IS NULL AND device_id IS NULL"
    f" AND email LIKE 'deleted-%@{DELETED_EMAIL_DOMAIN}' AND name = '{DELETED_NAME}')"
)


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN ({_sql_list(ROLES)})", name="role"),
        CheckConstraint(f"locale IS NULL OR locale IN ({_sql_list(LOCALES)})", name="locale"),
        CheckConstraint("email = lower(email)", name="email_lower_case"),
        CheckConstraint("referral_count >= 0", name="referral_count_not_negative"),
        CheckConstraint("referred_by_id IS NULL OR referred_by_id <> id", name="not_own_inviter"),
        CheckConstraint("session_version >= 0", name="session_version_not_negative"),
        CheckConstraint(DELETED_IS_ANONYMOUS, name="deleted_is_anonymous"),
        # The leaderboard's order, read from the index a page at a time.
        # `active` rides along so the board's count and deep pages never visit the table.
        Index(
            "ix_users_leaderboard",
            text("referral_count DESC"),
            "last_referral_at",
            "id",
            "active",
            "on_leaderboard",
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
        # The few who left the public board, so period boards can leave them out cheaply.
        Index(
            "ix_users_off_leaderboard",
            "id",
            postgresql_where=text("NOT on_leaderboard"),
            sqlite_where=text("on_leaderboard = 0"),
        ),
        # The analytics home: new participants per day and participants by a date.
        Index("ix_users_role_created_at", "role", "created_at"),
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
    # Shown on the public leaderboard; the participant can leave it and rejoin (profile).
    on_leaderboard: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The language chosen (switcher, profile, signup page); None: never chosen, so each
    # request's cookie or Accept-Language decides (core/i18n.py).
    locale: Mapped[str | None] = mapped_column(String(5))
    referred_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    signup_ip: Mapped[str | None] = mapped_column(String(45), index=True)
    device_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # Counted referrals and when the latest of them landed (the leaderboard's tie-break),
    # kept by a trigger on referrals (migration 0023): never below the counted rows.
    referral_count: Mapped[int] = mapped_column(Integer, default=0)
    last_referral_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Part of every session's user id: raising it ends all sessions and remember-me cookies
    # signed before (a password reset does), and every reset link issued before.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the person deleted their account (or staff did on their request).
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    codes: Mapped[list["ReferralCode"]] = relationship(back_populates="owner")

    # The signed-in browser's session key (see UserSession), set on the instance by whoever
    # signs it in or loads it for a request; never stored on the row.
    session_key = None

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    def get_id(self) -> str:
        # What the session and the remember-me cookie carry: "<id>:<session version>:<key>".
        if not self.session_key:
            raise RuntimeError("sign in through auth.sessions.sign_in, which issues a session key")
        return f"{self.id}:{self.session_version}:{self.session_key}"

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


# Spread over this many rows per count, so concurrent referrals to different people rarely
# wait on the same counter row (readers add the shards up).
BOARD_COUNT_SHARDS = 16


class BoardCount(db.Model):
    """How many participants on the all-time board have each referral count: the board's size
    and anyone's rank ("one more than the number with more") read from a few hundred rows
    instead of counting the board. Kept by database triggers on users (migrations 0020 and
    0024), so every path that changes a counter, `active` or `on_leaderboard` keeps it right;
    a count's row goes when its last participant leaves it."""

    __tablename__ = "board_counts"
    __table_args__ = (
        CheckConstraint("referral_count > 0", name="referral_count_positive"),
        CheckConstraint(f"shard >= 0 AND shard < {BOARD_COUNT_SHARDS}", name="shard_in_range"),
        CheckConstraint("participants >= 0", name="participants_not_negative"),
    )

    referral_count: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    participants: Mapped[int] = mapped_column(Integer, default=0)


class UserSession(db.Model):
    """One signed-in browser: a login's random key, carried by its session cookie and its
    remember-me cookie (only the key's SHA-256 is kept). Every request looks its row up;
    logging out deletes it, which ends both cookies. Rows past `expires_at` count for nothing
    and are pruned (`flask auth prune-sessions`)."""

    __tablename__ = "user_sessions"
    __table_args__ = (
        CheckConstraint("length(key_hash) = 64", name="key_hash_sha256"),
        CheckConstraint("expires_at > created_at", name="expiry_order"),
    )

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class PhoneCode(db.Model):
    """A one-time code texted to a phone number: to sign in with it, or (with `user_id`) to
    add it to that account. Only a keyed hash of the code is kept."""

    __tablename__ = "phone_codes"
    __table_args__ = (
        CheckConstraint("phone LIKE '+%'", name="phone_e164"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        CheckConstraint("expires_at > created_at", name="expiry_order"),
        Index("ix_phone_codes_phone_created_at", "phone", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(16))
    # Set when a signed-in participant is verifying a number for their account.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- the referral loop: codes, clicks on their links, referrals ---


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
    # The id a click carried through the Redis queue (referral/clicks.py): unique, so a batch
    # moved twice after a crash stores each click once. NULL for clicks written directly.
    queue_id: Mapped[str | None] = mapped_column(String(32), unique=True)


class LinkCacheGeneration(db.Model):
    """One row: a number that every change to what a referral link resolves to (a code
    disabled, a participant deactivated, a program edited) increases in its own transaction,
    so each process's cache of links (referral/links.py) sees at once that it is stale."""

    __tablename__ = "link_cache_generation"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class Referral(db.Model):
    __tablename__ = "referrals"
    __table_args__ = (
        CheckConstraint("referrer_id <> referred_id", name="not_self"),
        CheckConstraint(f"source IN ({_sql_list(REFERRAL_SOURCES)})", name="source"),
        CheckConstraint(f"status IN ({_sql_list(REFERRAL_STATUSES)})", name="status"),
        CheckConstraint("status <> 'rejected' OR reason IS NOT NULL", name="rejection_reason"),
        CheckConstraint("risk_score >= 0", name="risk_score_not_negative"),
        # A referrer's referrals by time; with status and program, the analytics top ten
        # counts a leader's referrals of a range from the index alone.
        Index("ix_referrals_referrer_history", "referrer_id", "created_at", "status", "program_id"),
        # A code's referrals by time: a signup's velocity checks count the code's last day
        # from the index, however many came before (a code with 17,000 referrals read them
        # all, 14 ms of every signup through it on SQLite).
        Index("ix_referrals_code_history", "code_id", "created_at"),
        Index("ix_referrals_created_at_referrer", "created_at", "referrer_id", "status"),
        # Counted referrals of a period, grouped by referrer, from the index alone (and any
        # lookup by status).
        Index("ix_referrals_status_created_at", "status", "created_at", "referrer_id"),
        # The analytics home: the range's funnel, fraud count, click-to-signup times and
        # top referrers, read from the index alone.
        Index(
            "ix_referrals_analytics",
            "created_at",
            "program_id",
            "status",
            "referrer_id",
            "risk_score",
            "clicked_at",
        ),
        # The analytics home: customers acquired in a range and their signup-to-purchase times.
        Index(
            "ix_referrals_first_purchase_at",
            "first_purchase_at",
            "program_id",
            "created_at",
            postgresql_where=text("first_purchase_at IS NOT NULL"),
            sqlite_where=text("first_purchase_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    code_id: Mapped[int] = mapped_column(ForeignKey("referral_codes.id"))
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
    # For the analytics' medians: when the friend clicked the link that brought them (from
    # the signed attribution cookie), and when they first bought.
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_purchase_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    referrer: Mapped[User] = relationship(foreign_keys=[referrer_id])
    referred: Mapped[User] = relationship(foreign_keys=[referred_id])
    code: Mapped[ReferralCode] = relationship()

    @property
    def counted(self) -> bool:
        return self.status in COUNTED_STATUSES


# --- rewards: conversion events in, the ledger, payouts out ---


class Conversion(db.Model):
    """One event from outside (or from the app itself), stored once however often it comes."""

    __tablename__ = "conversions"
    __table_args__ = (
        UniqueConstraint("source", "kind", "external_id", name="uq_conversions_event"),
        CheckConstraint(f"source IN ({_sql_list(CONVERSION_SOURCES)})", name="source"),
        CheckConstraint(f"kind IN ({_sql_list(CONVERSION_KINDS)})", name="kind"),
        CheckConstraint(f"outcome IN ({_sql_list(OUTCOMES)})", name="outcome"),
        CheckConstraint("amount IS NULL OR amount >= 0", name="amount_not_negative"),
        CheckConstraint(
            "eligible_amount IS NULL OR (eligible_amount >= 0 AND eligible_amount <= amount)",
            name="eligible_amount_range",
        ),
        CheckConstraint("country IS NULL OR length(country) = 2", name="country"),
        CheckConstraint("length(currency) = 3", name="currency"),
        CheckConstraint("outcome = 'accepted' OR reason IS NOT NULL", name="outcome_reason"),
        Index("ix_conversions_source_order_id", "source", "order_id"),
        Index("ix_conversions_participant_id_occurred_at", "participant_id", "occurred_at"),
        Index("ix_conversions_created_at", "created_at"),
        # The analytics home: accepted purchases of a range, per day and program.
        Index("ix_conversions_analytics", "kind", "outcome", "occurred_at", "program_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(10))
    external_id: Mapped[str] = mapped_column(String(200))
    # The shop's order a purchase pays for, or a refund gives back.
    order_id: Mapped[str | None] = mapped_column(String(200))
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id"), index=True)
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    referral_id: Mapped[int | None] = mapped_column(
        ForeignKey("referrals.id", ondelete="SET NULL"), index=True
    )
    customer_external_id: Mapped[str | None] = mapped_column(String(100))
    customer_email: Mapped[str | None] = mapped_column(String(254))
    ref_code: Mapped[str | None] = mapped_column(String(8))
    amount: Mapped[int | None] = mapped_column(Integer)
    # What the order reported for a program's filters: its channel, its country (shipping
    # address, else billing), and the part of `amount` in eligible categories (None: all of it).
    channel: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(2))
    eligible_amount: Mapped[int | None] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    outcome: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(String(40))
    risk_score: Mapped[int] = mapped_column(Integer, default=0)
    risk_reasons: Mapped[list] = mapped_column(JSON, default=list)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    participant: Mapped[User | None] = relationship()
    referral: Mapped[Referral | None] = relationship()


class Payout(db.Model):
    """A participant's request to cash out approved rewards of one kind and currency."""

    __tablename__ = "payouts"
    __table_args__ = (
        CheckConstraint(f"status IN ({_sql_list(PAYOUT_STATUSES)})", name="status"),
        CheckConstraint(f"kind IN ({_sql_list(PAYABLE_KINDS)})", name="kind"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status <> 'paid' OR paid_at IS NOT NULL", name="paid_at"),
        # One open request per participant, kind and currency.
        Index(
            "uq_payouts_one_open",
            "user_id",
            "kind",
            "currency",
            unique=True,
            postgresql_where=text("status = 'requested'"),
            sqlite_where=text("status = 'requested'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10), default="requested")
    reference: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class Reward(db.Model):
    """One entry of a participant's ledger."""

    __tablename__ = "rewards"
    __table_args__ = (
        # Exactly once by construction: a conversion pays each beneficiary once per role/level.
        UniqueConstraint(
            "conversion_id", "beneficiary_id", "role", "level", name="uq_rewards_issuance"
        ),
        # A refund reverses an entry at most once; each later refund may take back its own
        # share of the same entry (a reward is reversed once per refund event).
        UniqueConstraint("reverses_id", "conversion_id", name="uq_rewards_reversal"),
        CheckConstraint(f"role IN ({_sql_list(REWARD_ROLES)})", name="role"),
        CheckConstraint(f"kind IN ({_sql_list(REWARD_KINDS)})", name="kind"),
        CheckConstraint(f"status IN ({_sql_list(REWARD_STATUSES)})", name="status"),
        CheckConstraint(f"level BETWEEN 1 AND {MAX_DEPTH}", name="level_range"),
        CheckConstraint("length(currency) = 3", name="currency"),
        # Only a reversing entry is negative, and it names what it reverses.
        CheckConstraint(
            "(reverses_id IS NULL AND amount > 0) OR (reverses_id IS NOT NULL AND amount < 0)",
            name="amount_sign",
        ),
        CheckConstraint(
            "status NOT IN ('cancelled', 'rejected', 'expired') OR reason IS NOT NULL",
            name="closed_reason",
        ),
        CheckConstraint("status <> 'paid' OR paid_at IS NOT NULL", name="paid_at"),
        # A milestone bonus is paid once per referrer, program and milestone number.
        Index(
            "uq_rewards_one_milestone",
            "program_id",
            "beneficiary_id",
            "milestone",
            unique=True,
            postgresql_where=text("milestone IS NOT NULL"),
            sqlite_where=text("milestone IS NOT NULL"),
        ),
        Index("ix_rewards_beneficiary_id_created_at", "beneficiary_id", "created_at"),
        Index("ix_rewards_status_available_at", "status", "available_at"),
        Index("ix_rewards_status_expires_at", "status", "expires_at"),
        # The analytics home: the reward cost of a range, from the index alone.
        Index(
            "ix_rewards_analytics",
            "created_at",
            "program_id",
            "status",
            "kind",
            "currency",
            "amount",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    conversion_id: Mapped[int] = mapped_column(ForeignKey("conversions.id"), index=True)
    referral_id: Mapped[int | None] = mapped_column(
        ForeignKey("referrals.id", ondelete="SET NULL"), index=True
    )
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(10))
    level: Mapped[int] = mapped_column(Integer, default=1)
    milestone: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    reason: Mapped[str | None] = mapped_column(String(40))
    # The entry a reversing entry takes back (all of it, or a refund's share of it).
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("rewards.id", ondelete="CASCADE"))
    coupon_code: Mapped[str | None] = mapped_column(String(40), unique=True)
    external_reference: Mapped[str | None] = mapped_column(String(200))
    payout_id: Mapped[int | None] = mapped_column(
        ForeignKey("payouts.id", ondelete="SET NULL"), index=True
    )
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    beneficiary: Mapped[User] = relationship()
    conversion: Mapped[Conversion] = relationship()
    referral: Mapped[Referral | None] = relationship()


class EventInbox(db.Model):
    """An event a sender asked to have processed later (`Prefer: respond-async`): stored once
    per sender and event before the 202 that acknowledges it, then run through the same
    intake as a synchronous event by the worker (rewards/tasks.py), which keeps the answer
    that intake gave. Queued while `processed_at` is NULL."""

    __tablename__ = "event_inbox"
    __table_args__ = (
        # A retried delivery finds its first one: the same inbox id, stored once.
        UniqueConstraint("sender", "kind", "external_id", name="uq_event_inbox_event"),
        CheckConstraint(
            "(processed_at IS NULL) = (outcome IS NULL)", name="outcome_when_processed"
        ),
        CheckConstraint(
            "(processed_at IS NULL) = (outcome_status IS NULL)", name="status_when_processed"
        ),
        CheckConstraint(f"kind IN ({_sql_list(CONVERSION_KINDS)})", name="kind"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # What the worker looks for: queued rows, those that failed least first.
        Index(
            "ix_event_inbox_queued",
            "attempts",
            "id",
            postgresql_where=text("processed_at IS NULL"),
            sqlite_where=text("processed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Who sent it: "signature" (the shared secret) or "api_key:<id>"; only they may read it.
    sender: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(10))
    external_id: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The synchronous answer's body and HTTP status, once processed.
    outcome: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    outcome_status: Mapped[int | None] = mapped_column(Integer)
    # Runs that failed unexpectedly (rolled back); the last one's error.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))


# --- integrations: keys other systems call InviteLoop with ---


class ApiKey(db.Model):
    """A key another system uses to call InviteLoop. Only a hash of the secret is kept."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint("length(prefix) = 8", name="prefix_length"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # Shown in lists and used to find the key; the secret part is never stored.
    prefix: Mapped[str] = mapped_column(String(8), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- the staff panel: the audit log ---


class AuditLog(db.Model):
    """Who changed what, when, from where: every staff write and every reward status change."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_target", "target_type", "target_id"),
        Index("ix_audit_log_actor_id_created_at", "actor_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # A staff account, or none for the command line and background jobs (see actor_label).
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_label: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(60))
    target_type: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(40))
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    actor: Mapped[User | None] = relationship()


class SiteBranding(db.Model):
    """The installation's own brand (core/branding.py). One row at most (id 1); no row, or
    an empty column, means InviteLoop's own name, colour and no logo."""

    __tablename__ = "site_branding"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint(
            "primary_color IS NULL OR (length(primary_color) = 7"
            " AND primary_color LIKE '#%' AND primary_color = lower(primary_color))",
            name="primary_color_hex",
        ),
        CheckConstraint("site_name IS NULL OR length(site_name) > 0", name="site_name_not_empty"),
        CheckConstraint(f"logo_type IN ({_sql_list(LOGO_TYPES)})", name="logo_type"),
        CheckConstraint(
            "(logo IS NULL AND logo_type IS NULL AND logo_hash IS NULL)"
            " OR (logo IS NOT NULL AND logo_type IS NOT NULL AND length(logo_hash) = 64)",
            name="logo_complete",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    site_name: Mapped[str | None] = mapped_column(String(60))
    support_email: Mapped[str | None] = mapped_column(String(254))
    primary_color: Mapped[str | None] = mapped_column(String(7))
    logo: Mapped[bytes | None] = mapped_column(LargeBinary)
    logo_type: Mapped[str | None] = mapped_column(String(20))
    logo_hash: Mapped[str | None] = mapped_column(String(64))  # SHA-256 of `logo`, hex
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- CRM: services, campaigns, leads, contracts ---


class Service(db.Model):
    """Something the business sells; campaigns promote it, contracts sell it."""

    __tablename__ = "services"
    __table_args__ = (
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("length(currency) = 3 AND currency = upper(currency)", name="currency"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Campaign(db.Model):
    """An acquisition channel's effort, with its budget: referral, search, social, ..."""

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint(f"channel IN ({_sql_list(CAMPAIGN_CHANNELS)})", name="channel"),
        CheckConstraint("budget >= 0", name="budget_not_negative"),
        CheckConstraint("length(currency) = 3 AND currency = upper(currency)", name="currency"),
        CheckConstraint("ends_on IS NULL OR ends_on >= starts_on", name="dates_order"),
        # The target of programs' (campaign, channel) key.
        UniqueConstraint("id", "channel", name="uq_campaigns_id_channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    service_id: Mapped[int | None] = mapped_column(
        ForeignKey("services.id", ondelete="SET NULL"), index=True
    )
    channel: Mapped[str] = mapped_column(String(10))
    budget: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    service: Mapped[Service | None] = relationship()


class Lead(db.Model):
    """A prospective client: entered by an operator, or created from a referred signup."""

    __tablename__ = "leads"
    __table_args__ = (
        CheckConstraint(f"status IN ({_sql_list(LEAD_STATUSES)})", name="status"),
        CheckConstraint(f"source IN ({_sql_list(LEAD_SOURCES)})", name="source"),
        CheckConstraint("phone IS NOT NULL OR email IS NOT NULL", name="reachable"),
        CheckConstraint("email IS NULL OR email = lower(email)", name="email_lower_case"),
        # Active only through a contract, and only a contract of this very lead.
        CheckConstraint("status <> 'active' OR contract_id IS NOT NULL", name="active_contract"),
        ForeignKeyConstraint(
            ["contract_id", "id"],
            ["contracts.id", "contracts.lead_id"],
            name="fk_leads_contract_of_lead",
            use_alter=True,
        ),
        Index("ix_leads_campaign_id_status", "campaign_id", "status"),
        Index("ix_leads_created_at", "created_at"),
    )

    # Part of the key to its contract too, so SQLAlchemy must be told it is generated.
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    full_name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(10), default="potential")
    source: Mapped[str] = mapped_column(String(10), default="manual")
    # The participant a referred signup made into a lead: at most one lead each.
    participant_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), unique=True
    )
    # The contract that made this lead an active client.
    contract_id: Mapped[int | None] = mapped_column(Integer)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    campaign: Mapped[Campaign | None] = relationship()
    participant: Mapped[User | None] = relationship(foreign_keys=[participant_id])


class Contract(db.Model):
    """A signed agreement with a lead; its document is stored outside static/."""

    __tablename__ = "contracts"
    __table_args__ = (
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("length(currency) = 3 AND currency = upper(currency)", name="currency"),
        CheckConstraint("valid_until >= valid_from", name="validity_order"),
        CheckConstraint("file_size > 0", name="file_size_positive"),
        # The target of a lead's (contract, lead) key.
        UniqueConstraint("id", "lead_id", name="uq_contracts_id_lead_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    # The uploaded file: a random storage name on disk, the cleaned original name for download.
    file_key: Mapped[str] = mapped_column(String(80), unique=True)
    file_name: Mapped[str] = mapped_column(String(200))
    file_size: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(100))
    signed_on: Mapped[date] = mapped_column(Date)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    service: Mapped[Service] = relationship()
    lead: Mapped[Lead] = relationship(foreign_keys=[lead_id])


# --- integrations: InviteLoop's own events, sent to webhook endpoints ---


class WebhookEndpoint(db.Model):
    """Where InviteLoop sends its own events, signed per Standard Webhooks."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(String(200), default="")
    # The signing secret ("whsec_" + base64) must be kept to sign; shown to admins only.
    secret: Mapped[str] = mapped_column(String(100))
    events: Mapped[list] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(db.Model):
    """One event for one endpoint, with the outcome of its latest attempt."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "message_id", name="uq_webhook_deliveries_message"),
        CheckConstraint(f"status IN ({_sql_list(DELIVERY_STATUSES)})", name="status"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        Index("ix_webhook_deliveries_endpoint_id_created_at", "endpoint_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    # The webhook-id header: the same on every retry, so the receiver can deduplicate.
    message_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    endpoint: Mapped[WebhookEndpoint] = relationship()


# --- outbox (core/outbox.py writes and delivers it) ---


class OutboxMessage(db.Model):
    """One side effect (an email, a text, a webhook attempt) written in the transaction that
    caused it and delivered after the commit: pending until its job succeeds, dead after
    OUTBOX_MAX_ATTEMPTS failures."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        CheckConstraint(f"status IN ({_sql_list(OUTBOX_STATUSES)})", name="status"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        CheckConstraint("(status = 'sent') = (sent_at IS NOT NULL)", name="sent_at_when_sent"),
        # What the senders look for: pending rows by due time.
        Index("ix_outbox_messages_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(100))
    args: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A sender holds a row until then; past it, another may take the row over (a sender died).
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    # Development without PUBLIC_URL: the site root the causing request came to, for links.
    link_root: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- the analytics roll-up (admin/rollup.py writes it; admin/analytics_queries.py reads it) ---
# Closed UTC days only, before the watermark; the page counts later days from the rows
# themselves. Accounts of every role are rolled up: the page takes the few staff accounts out
# live, so a change of role never leaves a rolled-up day wrong.


class AnalyticsDaily(db.Model):
    """Per closed day and program: accounts whose first code of the program was issued that
    day, and the clicks on the program's codes."""

    __tablename__ = "analytics_daily"
    __table_args__ = (
        CheckConstraint("new_participants >= 0", name="new_participants_not_negative"),
        CheckConstraint("clicks >= 0", name="clicks_not_negative"),
    )

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), primary_key=True)
    new_participants: Mapped[int] = mapped_column(Integer, default=0)
    clicks: Mapped[int] = mapped_column(Integer, default=0)


class AnalyticsDailyAccounts(db.Model):
    """Per closed day: accounts that joined that day (all programs' participants)."""

    __tablename__ = "analytics_daily_accounts"
    __table_args__ = (CheckConstraint("new_accounts >= 0", name="new_accounts_not_negative"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    new_accounts: Mapped[int] = mapped_column(Integer)


class AnalyticsRollup(db.Model):
    """The roll-up's watermark, one row: every day before `complete_until` is rolled up."""

    __tablename__ = "analytics_rollup"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    complete_until: Mapped[date] = mapped_column(Date)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# The rest of the page's figures, per closed day and program, so a year is a few hundred rows
# per figure. Unlike the rows above, these change after their day (a referral qualifies, a
# reward is cancelled, a refund arrives): the database itself marks such a day stale
# (AnalyticsStaleDay, by the triggers of migration 0021), the page counts stale days from the
# rows and the job recounts them.

GAP_MEASURES = ("click_to_signup", "signup_to_purchase")


class AnalyticsReferralDay(db.Model):
    """Per closed day and program: the referrals made that day, by what became of them."""

    __tablename__ = "analytics_referral_days"
    __table_args__ = (
        CheckConstraint(
            "rewarded >= 0 AND qualified >= rewarded AND signups >= qualified"
            " AND flagged >= 0 AND signups >= flagged",
            name="counts_nest",
        ),
    )

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), primary_key=True)
    signups: Mapped[int] = mapped_column(Integer)
    qualified: Mapped[int] = mapped_column(Integer)  # qualified or rewarded
    rewarded: Mapped[int] = mapped_column(Integer)
    # Held, refused or cleared by staff, or risky by the program's review score when counted
    # (a change of that score marks every day of the program stale).
    flagged: Mapped[int] = mapped_column(Integer)


class AnalyticsPurchaseDay(db.Model):
    """Per closed day (of the purchase), program and currency: accepted purchases, and the
    referred ones' amount less refunds of those orders whenever they came."""

    __tablename__ = "analytics_purchase_days"
    __table_args__ = (
        CheckConstraint("referred >= 0 AND purchases >= referred", name="counts_nest"),
    )

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    purchases: Mapped[int] = mapped_column(Integer)
    referred: Mapped[int] = mapped_column(Integer)  # of them (a currency shows if any)
    referred_net: Mapped[int] = mapped_column(BigInteger)


class AnalyticsRewardDay(db.Model):
    """Per closed day, program and currency: the cost of the rewards entered that day (cost
    statuses, points left out)."""

    __tablename__ = "analytics_reward_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    cost: Mapped[int] = mapped_column(BigInteger)


class AnalyticsGapDay(db.Model):
    """Per closed day, program and measure: how many referrals took how long, in buckets
    (admin/analytics/buckets.py), so a range's median is read from a few hundred rows a day.
    click_to_signup by the day of the signup; signup_to_purchase by the day of the first
    purchase (its total is the day's acquired customers)."""

    __tablename__ = "analytics_gap_days"
    __table_args__ = (
        CheckConstraint(f"measure IN ({_sql_list(GAP_MEASURES)})", name="measure"),
        CheckConstraint("referrals > 0", name="referrals_positive"),
    )

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), primary_key=True)
    measure: Mapped[str] = mapped_column(String(20), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    referrals: Mapped[int] = mapped_column(Integer)


class AnalyticsStaleDay(db.Model):
    """A mark on a day whose rows changed after it may have been rolled up: the page counts it
    from the rows until the job recounts it and removes its marks. Written by the database's
    triggers, never by the app. Not unique per day on purpose: two writers marking the same
    day at once each add a mark rather than wait for the other's commit."""

    __tablename__ = "analytics_stale_days"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)


# The roll-up's batches and the page's live part read codes by the day they were issued.
Index("ix_referral_codes_created_at", ReferralCode.created_at, ReferralCode.program_id)


# --- emails: what participants turned off, invitations sent to friends by email ---


class EmailOptOut(db.Model):
    """A kind of email (EMAIL_KINDS) a participant does not want; no row: they get it."""

    __tablename__ = "email_opt_outs"
    __table_args__ = (CheckConstraint(f"kind IN ({_sql_list(EMAIL_KINDS)})", name="kind"),)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Invitation(db.Model):
    """An email a participant asked us to send a friend about a program: one per address
    (one spelling per mailbox, `email_canonical`) and program, ever."""

    __tablename__ = "invitations"
    __table_args__ = (
        UniqueConstraint("program_id", "email_canonical", name="uq_invitations_program_address"),
        CheckConstraint("email_canonical = lower(email_canonical)", name="canonical_lower_case"),
        # The per-sender daily count.
        Index("ix_invitations_sender_id_created_at", "sender_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    email_canonical: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InvitationSuppression(db.Model):
    """An address that asked never to be invited again (its one-click unsubscribe)."""

    __tablename__ = "invitation_suppressions"
    __table_args__ = (
        CheckConstraint("email_canonical = lower(email_canonical)", name="canonical_lower_case"),
    )

    email_canonical: Mapped[str] = mapped_column(String(254), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- the Saleor app: where it is installed, and what it paid there (rewards/saleor_app.py) ---


class SaleorInstallation(db.Model):
    """InviteLoop installed as an App in one Saleor instance: its auth token, encrypted (the
    key comes from SALEOR_TOKEN_KEY or SECRET_KEY; the plain token is never stored)."""

    __tablename__ = "saleor_installations"
    __table_args__ = (UniqueConstraint("api_url", name="uq_saleor_installations_api_url"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    api_url: Mapped[str] = mapped_column(String(300))
    app_id: Mapped[str] = mapped_column(String(200))
    token_ciphertext: Mapped[str] = mapped_column(Text)
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The last reconciliation of paid orders (rewards/saleor_reconcile.py): when it ran, how
    # many orders the webhooks had missed, and the error that stopped it, if any.
    reconciled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reconcile_found: Mapped[int | None] = mapped_column(Integer)
    reconcile_error: Mapped[str | None] = mapped_column(String(500))


class SaleorFulfilment(db.Model):
    """A reward being paid as a Saleor gift card: one row per reward, ever. Done once
    `saleor_id` is set; until then the last error is kept for staff."""

    __tablename__ = "saleor_fulfilments"
    __table_args__ = (
        UniqueConstraint("saleor_id", name="uq_saleor_fulfilments_saleor_id"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        CheckConstraint("fulfilled_at IS NULL OR saleor_id IS NOT NULL", name="done_has_id"),
    )

    reward_id: Mapped[int] = mapped_column(
        ForeignKey("rewards.id", ondelete="CASCADE"), primary_key=True
    )
    saleor_id: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The purchase was refunded and the card, still unused, was deactivated in Saleor.
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Saleor reported the gift card spent from, or the voucher used (reconciliation read it).
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    reward: Mapped[Reward] = relationship()
