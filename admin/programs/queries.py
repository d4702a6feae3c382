"""The programs list's query and its CSV export."""

from decimal import Decimal

from sqlalchemy import func, not_, select

from admin.exports import CsvExport, money_cell
from models import Program

PROGRAM_STATUSES = ("active", "inactive")


def programs_query(args):
    """The programs list's filters (`q` in the name or short name, `status`)."""
    query = select(Program)
    text = (args.get("q") or "").strip().lower()[:100]
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            func.lower(Program.name).like(pattern, escape="\\")
            | Program.slug.like(pattern, escape="\\")
        )
    if args.get("status") == "active":
        query = query.where(Program.active)
    elif args.get("status") == "inactive":
        query = query.where(not_(Program.active))
    return query.order_by(Program.is_default.desc(), Program.name, Program.id)


def _reward_amount(program: Program, side: str) -> Decimal | int | None:
    """A fixed reward in the program's currency (points as their number); empty for a
    percent."""
    if getattr(program, f"{side}_reward_basis") != "fixed":
        return None
    kind = getattr(program, f"{side}_reward_kind")
    return money_cell(getattr(program, f"{side}_reward_value"), program.currency, kind)


def _reward_percent(program: Program, side: str) -> Decimal | None:
    """A percent-of-the-purchase reward as a percent (12.50 = 12.5 %); empty for fixed."""
    if getattr(program, f"{side}_reward_basis") != "percent":
        return None
    return Decimal(getattr(program, f"{side}_reward_value")).scaleb(-2)


CSV_EXPORTS = (
    CsvExport(
        name="programs",
        permission="programs.manage",
        columns=(
            ("id", lambda program: program.id),
            ("slug", lambda program: program.slug),
            ("name", lambda program: program.name),
            ("default", lambda program: program.is_default),
            ("active", lambda program: program.active),
            ("campaign_id", lambda program: program.campaign_id),
            ("trigger", lambda program: program.trigger_event),
            ("currency", lambda program: program.currency),
            (
                "min_purchase_amount",
                lambda program: money_cell(program.min_purchase_amount, program.currency),
            ),
            ("referrer_reward_kind", lambda program: program.referrer_reward_kind),
            ("referrer_reward_amount", lambda program: _reward_amount(program, "referrer")),
            ("referrer_reward_percent", lambda program: _reward_percent(program, "referrer")),
            ("friend_reward_kind", lambda program: program.friend_reward_kind),
            ("friend_reward_amount", lambda program: _reward_amount(program, "friend")),
            ("friend_reward_percent", lambda program: _reward_percent(program, "friend")),
            ("hold_days", lambda program: program.hold_days),
            ("starts_at", lambda program: program.starts_at),
            ("ends_at", lambda program: program.ends_at),
            ("created_at", lambda program: program.created_at),
        ),
        query=programs_query,
    ),
)
