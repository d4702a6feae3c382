"""Durations in buckets, so a range's median time is read from a few hundred rows per day
instead of sorting every referral of the range.

Whole seconds below 32 each have a bucket of their own. From 32 s on, each power of two is
split into 16 equal buckets: [2^e, 2^(e+1)) in steps of 2^(e-4). A bucket's middle is therefore
within 1/32 (3.125 %) of any duration in it, and so is a median taken from the middles
(both middle values of an even count move by less than that share). Buckets are integers
that grow with the duration, so ordering buckets orders durations.
"""

from sqlalchemy import literal_column

SPLIT = 16  # buckets per power of two
EXACT_BELOW = 2 * SPLIT  # whole seconds below this are their own bucket
_LARGEST_POWER = 41  # 2^42 s is 139,000 years: no two stored times are further apart
RELATIVE_ERROR = 1 / (2 * SPLIT)


def bucket_of(seconds: int) -> int:
    """The bucket of a whole number of seconds (negative and small ones are themselves)."""
    if seconds < EXACT_BELOW:
        return seconds
    power = seconds.bit_length() - 1
    step = power - 4
    return SPLIT * step + (seconds >> step)


def bounds(bucket: int) -> tuple[int, int]:
    """The first and last whole second of a bucket."""
    if bucket < EXACT_BELOW:
        return bucket, bucket
    step = bucket // SPLIT - 1
    top = bucket - SPLIT * step
    return top << step, ((top + 1) << step) - 1


def middle(bucket: int) -> float:
    first, last = bounds(bucket)
    return (first + last) / 2


def _bucket_case(column: str) -> str:
    branches = [f"WHEN {column} < {EXACT_BELOW} THEN {column}"]
    for power in range(5, _LARGEST_POWER + 2):
        step = power - 4
        limit = f"WHEN {column} < {2 ** (power + 1)} " if power <= _LARGEST_POWER else "ELSE "
        branches.append(f"{limit}THEN {SPLIT * step} + {column} / {2**step}")
    return f"CASE {' '.join(branches)} END".replace("ELSE THEN", "ELSE")


# Written once, as text: built from expressions, its 38 branches cost more to put together on
# every request than the database takes to run it.
_SQL = _bucket_case("seconds")


def bucket_sql():
    """bucket_of in SQL, of the whole seconds in a column named `seconds` (an integer, from a
    materialized CTE, so the duration is worked out once per row)."""
    return literal_column(_SQL)


def median(counts: dict[int, int]) -> float | None:
    """The median duration of the referrals counted per bucket (None for none): the middle
    of the bucket holding the middle referral, or the mean of the two middles' buckets."""
    total = sum(counts.values())
    if not total:
        return None
    wanted = sorted({(total - 1) // 2, total // 2})
    found, seen = [], 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        while wanted and wanted[0] < seen:
            found.append(middle(bucket))
            wanted.pop(0)
    if len(found) == 1:  # an odd count: one middle referral
        return found[0]
    return sum(found) / 2
