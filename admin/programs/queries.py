"""The programs list's query and its CSV export."""

from sqlalchemy import func, not_, select

from admin.exports import CsvExport
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
            ("campaign id", lambda program: program.campaign_id),
            ("trigger", lambda program: program.trigger_event),
            ("currency", lambda program: program.currency),
            ("minimum purchase (minor units)", lambda program: program.min_purchase_amount),
            ("referrer reward kind", lambda program: program.referrer_reward_kind),
            ("referrer reward basis", lambda program: program.referrer_reward_basis),
            ("referrer reward value", lambda program: program.referrer_reward_value),
            ("friend reward kind", lambda program: program.friend_reward_kind),
            ("friend reward basis", lambda program: program.friend_reward_basis),
            ("friend reward value", lambda program: program.friend_reward_value),
            ("hold days", lambda program: program.hold_days),
            ("starts", lambda program: program.starts_at),
            ("ends", lambda program: program.ends_at),
            ("created", lambda program: program.created_at),
        ),
        query=programs_query,
    ),
)
