"""Writes of concurrent requests gathered into one transaction (group commit).

On SQLite every transaction that writes takes its turn for the database's one write lock
(core/sqlite_turns.py). A write as small as a click costs less than handing that turn from
thread to thread and from process to process, so clicks arriving together are written
together: the first request to arrive writes whatever is waiting, each other one waits for
the transaction that carries its write, and is answered only once that has committed (or
failed: then every request of it gets the error, and nothing of it was stored).

No thread of its own: the request that finds nobody writing becomes the writer; when its
transaction ends it hands the next batch, if any arrived meanwhile, to the first request
of it, and returns.
"""

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class _Waiting(Generic[Item, Outcome]):
    __slots__ = ("item", "done", "outcome", "error", "writes_next")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.done = threading.Event()
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None
        self.writes_next = False  # set, with `done`, when it is this one's turn to write


class GroupCommit(Generic[Item, Outcome]):
    """`write(items)` stores a batch in one transaction and returns one outcome per item."""

    def __init__(self, write: Callable[[Sequence[Item]], Sequence[Outcome]]) -> None:
        self.write = write
        self._lock = threading.Lock()
        self._waiting: list[_Waiting[Item, Outcome]] = []
        self._writing = False

    def submit(self, item: Item) -> Outcome:
        """`item`'s outcome once the transaction carrying it has committed; raises what
        that transaction raised."""
        mine = _Waiting(item)
        with self._lock:
            self._waiting.append(mine)
            writes_now = not self._writing
            self._writing = True
        if not writes_now:
            mine.done.wait()
            if not mine.writes_next:
                return _outcome(mine)
        self._write_waiting()
        return _outcome(mine)

    def _write_waiting(self) -> None:
        with self._lock:
            batch, self._waiting = self._waiting, []
        try:
            outcomes = self.write([waiting.item for waiting in batch])
        except BaseException as error:
            for waiting in batch:
                waiting.error = error
        else:
            for waiting, outcome in zip(batch, outcomes, strict=True):
                waiting.outcome = outcome
        finally:
            with self._lock:
                # The next writer is the first request that arrived meanwhile, if any.
                if self._waiting:
                    self._waiting[0].writes_next = True
                    self._waiting[0].done.set()
                else:
                    self._writing = False
            for waiting in batch:
                waiting.done.set()


def _outcome(waiting: _Waiting):
    if waiting.error is not None:
        raise waiting.error
    return waiting.outcome
