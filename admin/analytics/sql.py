"""SQL spellings with the same meaning in PostgreSQL and SQLite, for the analytics home and
its roll-up: days of stored UTC timestamps, day labels, whole seconds between two times."""

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from extensions import db


class utc_day(FunctionElement):  # noqa: N801 - reads like the SQL function it renders
    """'YYYY-MM-DD' of a stored UTC timestamp."""

    type = String()
    inherit_cache = True


@compiles(utc_day, "postgresql")
def _utc_day_pg(element, compiler, **kw):
    return f"to_char({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element, compiler, **kw):
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 10)"  # stored as UTC text


class utc_date(FunctionElement):  # noqa: N801
    """The UTC date of a stored UTC timestamp, as a DATE (what the roll-up stores)."""

    type = db.Date()
    inherit_cache = True


@compiles(utc_date, "postgresql")
def _utc_date_pg(element, compiler, **kw):
    return f"CAST({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC' AS date)"


@compiles(utc_date, "sqlite")
def _utc_date_sqlite(element, compiler, **kw):
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 10)"


class date_label(FunctionElement):  # noqa: N801
    """'YYYY-MM-DD' of a DATE column."""

    type = String()
    inherit_cache = True


@compiles(date_label, "postgresql")
def _date_label_pg(element, compiler, **kw):
    return f"to_char({compiler.process(element.clauses, **kw)}, 'YYYY-MM-DD')"


@compiles(date_label, "sqlite")
def _date_label_sqlite(element, compiler, **kw):
    return compiler.process(element.clauses, **kw)  # stored as 'YYYY-MM-DD'


class day_label(FunctionElement):  # noqa: N801
    """'YYYY-MM-DD' of the day `n` days after the ISO date `first`."""

    type = String()
    inherit_cache = True


@compiles(day_label, "postgresql")
def _day_label_pg(element, compiler, **kw):
    first, n = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"to_char(CAST({first} AS date) + CAST({n} AS integer), 'YYYY-MM-DD')"


@compiles(day_label, "sqlite")
def _day_label_sqlite(element, compiler, **kw):
    first, n = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"date({first}, '+' || {n} || ' days')"


class seconds_between(FunctionElement):  # noqa: N801
    """Whole seconds from `earlier` to `later`, both taken to the second (as SQLite's
    strftime('%s') does), so both databases give the same number."""

    type = db.Integer()
    inherit_cache = True


@compiles(seconds_between, "postgresql")
def _seconds_pg(element, compiler, **kw):
    later, earlier = (compiler.process(clause, **kw) for clause in element.clauses)
    return (
        f"date_part('epoch', date_trunc('second', {later} AT TIME ZONE 'UTC')"
        f" - date_trunc('second', {earlier} AT TIME ZONE 'UTC'))"
    )


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element, compiler, **kw):
    later, earlier = (compiler.process(clause, **kw) for clause in element.clauses)
    return (
        f"(CAST(strftime('%s', {later}) AS INTEGER) - CAST(strftime('%s', {earlier}) AS INTEGER))"
    )
