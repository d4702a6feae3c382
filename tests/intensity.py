"""How hard the suite's races and generated inputs push.

Races and property tests find bugs by repetition: more rounds, more chances to hit the bad
interleaving. `make test` on a developer's machine runs them `quick` (a few rounds each, so the
edit-test loop stays short); CI (.ci/run) runs them `full`, the strength the guarantees in
docs/guarantees.md were proven at, on every change before it lands. Every test runs either
way, with the same assertions; only the number of repetitions differs.
INVITELOOP_TEST_INTENSITY=full|quick (default quick).
"""

import os

LEVELS = ("quick", "full")
LEVEL = os.environ.get("INVITELOOP_TEST_INTENSITY") or "quick"
if LEVEL not in LEVELS:
    raise RuntimeError(f"INVITELOOP_TEST_INTENSITY must be quick or full, not {LEVEL!r}")
FULL = LEVEL == "full"


def repetitions(full: int, quick: int) -> int:
    """`full` in CI, `quick` in `make test`."""
    return full if FULL else quick
