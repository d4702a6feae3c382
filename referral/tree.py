"""A participant's referral tree: the people below them, level by level, and what each level
earned them.

The edges are `users.referred_by_id` (set only when a referral counts). Level 1 is the people
a participant invited, level 2 the people those invited, down to the default program's
`max_depth`. Every query is a recursive CTE (SQLite and PostgreSQL alike) bounded by the
depth, so even a loop in the data could not make one run forever; counts and sums are done by
the database, and members are read a page at a time, so a tree of 10,000 people costs a few
aggregates and one page of rows.
"""

from dataclasses import dataclass
from math import ceil

from flask import url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy import Integer, cast, func, literal_column, select
from sqlalchemy.orm import aliased

from core.errors import DomainError
from core.money import format_amount
from core.pagination import parse_page
from extensions import db
from models import BALANCE_STATUSES, Reward, User
from referral import services

# Referrer entries pay for a referral at some level of the tree; friend rewards ("referee")
# and milestone bonuses are the participant's own, not a level's.
LEVEL_ROLE = "referrer"


class UnknownLevel(DomainError):
    status = 404
    code = "unknown_level"
    message = _l("There is no such level in this tree.")


class NotInTree(DomainError):
    status = 404
    code = "not_in_tree"
    message = _l("This person is not in the part of the tree you can see.")


@dataclass(frozen=True)
class LevelReward:
    """What one level earned in one currency and kind, in minor units (reversals netted)."""

    currency: str
    kind: str
    amount: int

    @property
    def formatted(self) -> str:
        return format_amount(self.amount, self.currency, self.kind)

    def as_json(self) -> dict:
        return {
            "currency": self.currency,
            "kind": self.kind,
            "amount": self.amount,
            "formatted": self.formatted,
        }


@dataclass(frozen=True)
class Member:
    """Someone in the tree, at `level` below the root, with how many they invited and who
    invited them (None on level 1: the root did)."""

    user: User
    level: int
    invitees: int
    inviter: User | None = None


@dataclass(frozen=True)
class MemberPage:
    items: list[Member]
    level: int  # the level of the people listed
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return ceil(self.total / self.per_page) if self.total else 0

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def prev_num(self) -> int:
        return self.page - 1

    @property
    def next_num(self) -> int:
        return self.page + 1


@dataclass(frozen=True)
class Level:
    level: int
    count: int
    rewards: list[LevelReward]
    members: MemberPage | None = None  # a page of them, when asked for


@dataclass(frozen=True)
class Tree:
    root: User
    depth: int
    levels: list[Level]

    @property
    def total(self) -> int:
        return sum(level.count for level in self.levels)


@dataclass(frozen=True)
class Branch:
    """The people `node` invited; `node` sits `level` levels below the root (0: the root)."""

    node: User
    level: int
    members: MemberPage


def program_depth() -> int:
    return services.default_program().max_depth


def _downline(root_id: int, depth: int):
    """Everyone up to `depth` levels below `root_id`, as (id, level) rows."""
    below = (
        select(User.id.label("id"), literal_column("1", Integer).label("level"))
        .where(User.referred_by_id == root_id)
        .cte("downline", recursive=True)
    )
    person = aliased(User)
    return below.union_all(
        select(person.id, cast(below.c.level + 1, Integer))
        .join(below, person.referred_by_id == below.c.id)
        # The depth ends the walk; leaving the root out keeps a loop from counting it.
        .where(below.c.level < depth, person.id != root_id)
    )


def level_counts(root: User, depth: int) -> dict[int, int]:
    below = _downline(root.id, depth)
    rows = db.session.execute(select(below.c.level, func.count()).group_by(below.c.level))
    return {level: count for level, count in rows}


def level_rewards(root: User, depth: int) -> dict[int, list[LevelReward]]:
    """The root's referrer entries per level, per currency and kind: the statuses the ledger
    sums into its balances (on hold, available, requested, paid), reversing entries
    included so a refund nets out."""
    rows = db.session.execute(
        select(Reward.level, Reward.currency, Reward.kind, func.sum(Reward.amount))
        .where(
            Reward.beneficiary_id == root.id,
            Reward.role == LEVEL_ROLE,
            Reward.status.in_(BALANCE_STATUSES),
            Reward.level <= depth,
        )
        .group_by(Reward.level, Reward.currency, Reward.kind)
        .order_by(Reward.level, Reward.kind, Reward.currency)
    )
    earned: dict[int, list[LevelReward]] = {}
    for level, currency, kind, amount in rows:
        earned.setdefault(level, []).append(LevelReward(currency, kind, int(amount)))
    return earned


def level_summary(root: User, depth: int) -> list[Level]:
    """Every level from 1 to `depth`: how many people, and what they earned the root."""
    counts = level_counts(root, depth)
    earned = level_rewards(root, depth)
    return [
        Level(level, counts.get(level, 0), earned.get(level, [])) for level in range(1, depth + 1)
    ]


def tree(root: User, depth: int, per_page: int) -> Tree:
    """The summary, with the first page of members of each level that has any."""
    levels = [
        Level(
            level.level,
            level.count,
            level.rewards,
            level_members(root, level.level, 1, per_page, total=level.count)
            if level.count
            else None,
        )
        for level in level_summary(root, depth)
    ]
    return Tree(root, depth, levels)


def _page_number(page: int, total: int, per_page: int) -> int:
    """Past the end shows the last page (and keeps OFFSET small on a made-up page number)."""
    last = max(ceil(total / per_page), 1)
    return min(max(page, 1), last)


def level_members(
    root: User, level: int, page: int, per_page: int, *, depth: int | None = None, total=None
) -> MemberPage:
    """A page of the people at `level` below the root, newest first. `depth` (the program's
    when left out) bounds the levels one may ask for; `total`, when known, saves a count."""
    depth = program_depth() if depth is None else depth
    if not 1 <= level <= depth:
        raise UnknownLevel(level)
    below = _downline(root.id, level)
    at_level = select(below.c.id).where(below.c.level == level)
    if total is None:
        total = db.session.scalar(select(func.count()).select_from(at_level.subquery()))
    page = _page_number(page, total, per_page)
    if not total:
        return MemberPage([], level, page, per_page, 0)
    people = db.session.scalars(
        select(User)
        .join(below, User.id == below.c.id)
        .where(below.c.level == level)
        .order_by(User.created_at.desc(), User.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return MemberPage(_members(list(people), level), level, page, per_page, total)


def _members(people: list[User], level: int) -> list[Member]:
    """Each person with the number they invited (one grouped count for the whole page) and,
    below level 1, who invited them (one query for the page's inviters)."""
    ids = [person.id for person in people]
    counts = {}
    if ids:
        counts = dict(
            db.session.execute(
                select(User.referred_by_id, func.count())
                .where(User.referred_by_id.in_(ids))
                .group_by(User.referred_by_id)
            ).all()
        )
    inviters = {}
    inviter_ids = {person.referred_by_id for person in people if person.referred_by_id}
    if level > 1 and inviter_ids:
        found = db.session.scalars(select(User).where(User.id.in_(inviter_ids)))
        inviters = {inviter.id: inviter for inviter in found}
    return [
        Member(person, level, counts.get(person.id, 0), inviters.get(person.referred_by_id))
        for person in people
    ]


def level_of(root: User, node_id: int, depth: int) -> int | None:
    """How many levels below `root` the person `node_id` sits (0 for the root itself), or
    None when they are not within `depth` levels of the root's tree. Walks up from the node,
    at most `depth` steps."""
    chain = (
        select(User.id.label("id"), User.referred_by_id.label("up_id"))
        .add_columns(literal_column("0", Integer).label("up"))
        .where(User.id == node_id)
        .cte("inviters_of_node", recursive=True)
    )
    person = aliased(User)
    chain = chain.union_all(
        select(person.id, person.referred_by_id, cast(chain.c.up + 1, Integer))
        .join(chain, person.id == chain.c.up_id)
        .where(chain.c.up < depth)
    )
    return db.session.scalar(select(func.min(chain.c.up)).where(chain.c.id == root.id))


def branch(root: User, node_id: int, page: int, per_page: int, depth: int) -> Branch:
    """The people `node_id` invited, a page at a time, when `node_id` is in the root's tree
    and those people are within `depth`; else NotInTree (404), whoever `node_id` is."""
    level = level_of(root, node_id, depth)
    if level is None or level >= depth:
        raise NotInTree()
    node = db.session.get(User, node_id)
    invited = select(User).where(User.referred_by_id == node_id, User.id != root.id)
    total = db.session.scalar(select(func.count()).select_from(invited.subquery()))
    page = _page_number(page, total, per_page)
    people = db.session.scalars(
        invited.order_by(User.created_at.desc(), User.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    members = MemberPage(_members(list(people), level + 1), level + 1, page, per_page, total)
    return Branch(node, level, members)


# --- what a tree request asks for, and the links its pages carry ----------------------------


@dataclass(frozen=True)
class TreeRequest:
    """`?node=<id>`: that person's invitees; `?level=<n>`: one level; neither: the summary.
    `page` pages the list; `partial=1` asks for the HTML fragment the page script loads."""

    node: int | None
    level: int | None
    page: int
    partial: bool

    @classmethod
    def from_args(cls, args) -> "TreeRequest":
        return cls(
            node=_whole(args.get("node"), NotInTree),
            level=_whole(args.get("level"), UnknownLevel),
            page=parse_page(args.get("page")),
            partial=args.get("partial") == "1",
        )


def _whole(raw: str | None, refusal: type[DomainError]) -> int | None:
    """A positive whole number, None when absent; anything else is `refusal`."""
    if raw is None or raw == "":
        return None
    if raw.isascii() and raw.isdigit() and len(raw) <= 12 and int(raw) > 0:
        return int(raw)
    raise refusal()


def answer(root: User, asked: TreeRequest, depth: int, per_page: int) -> dict:
    """What the request names, as the one template variable to show: `branch`, `members`
    (one level's page) or `tree`."""
    if asked.node is not None:
        return {"branch": branch(root, asked.node, asked.page, per_page, depth)}
    if asked.level is not None:
        return {"members": level_members(root, asked.level, asked.page, per_page, depth=depth)}
    return {"tree": tree(root, depth, per_page)}


@dataclass(frozen=True)
class TreeLinks:
    """Where a tree's expand and page links lead: the participant's own route, or the staff
    route for someone's tree (`values` carries its user_id). Staff see names and emails in
    full, with a link to each person's page."""

    endpoint: str
    values: dict
    staff: bool = False

    def url(self, **query) -> str:
        return url_for(self.endpoint, **self.values, **query)

    def person_url(self, user: User) -> str | None:
        return url_for("admin.people.show_participant", user_id=user.id) if self.staff else None
