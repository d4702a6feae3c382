"""SQLite's one write lock, taken in turn (docs/guarantees.md #52).

Writers that meet at SQLite's lock wait in its busy handler, which sleeps 1, 2, 5 ... up to
100 ms between tries while the lock may already be free: under contention most of a writer's
wait is sleep, and the slowest waits reach seconds. So every transaction that will write
takes its turn first: the threads of a process on a lock, then the processes on an exclusive
lock of a file beside the database (`<database>-write.lock`), and only then BEGIN IMMEDIATE,
which finds SQLite's lock free. The turn ends right after COMMIT or ROLLBACK.

The clicks of referral links take no turn: they are written by single statements, each its
own transaction (a journal's batch, or the clicks arriving together), which hold SQLite's
lock only while SQLite runs them (referral/clicks.py).

A process waits for another's turn in the kernel, woken the moment it is let go, and gives up
after the busy timeout as SQLite would ("database is locked", a 503). A thread that already
holds a turn and begins a second writing transaction on another connection is let through to
SQLite's own lock, as before: waiting for itself would never end.
"""

import fcntl
import os
import sqlite3
import threading
import time

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

_HOLDS_TURN = "holds_sqlite_write_turn"  # on a pooled connection's info


class WriteTurns:
    """The turns of one database file in this process."""

    def __init__(self, database: str, timeout_seconds: float):
        self.lock_path = f"{database}-write.lock"
        self.timeout_seconds = timeout_seconds
        self._threads = threading.Lock()
        self._owner: int | None = None  # the thread holding the turn
        self._descriptor: tuple[int, int] | None = None  # (process id, open file)
        self._file_waiter: _FileWaiter | None = None

    def take(self) -> bool:
        """Wait for this process's and then this database's turn; False when this thread
        holds the turn already (it goes on to SQLite's own lock)."""
        me = threading.get_ident()
        if self._owner == me:
            return False
        deadline = time.monotonic() + self.timeout_seconds
        if not self._threads.acquire(timeout=self.timeout_seconds):
            raise _locked()
        try:
            self._take_file(deadline)
        except BaseException:
            self._threads.release()
            raise
        self._owner = me
        return True

    def give_back(self) -> None:
        self._owner = None
        try:
            fcntl.flock(self._file(), fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _take_file(self, deadline: float) -> None:
        descriptor = self._file()
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if not self._waiter().take(descriptor, deadline - time.monotonic()):
            raise _locked()

    def _waiter(self) -> "_FileWaiter":
        if self._file_waiter is None or self._file_waiter.pid != os.getpid():
            self._file_waiter = _FileWaiter()
        return self._file_waiter

    def _file(self) -> int:
        # Opened once per process: a descriptor inherited through fork would share its lock.
        if self._descriptor is None or self._descriptor[0] != os.getpid():
            self._descriptor = (
                os.getpid(),
                os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600),
            )
        return self._descriptor[1]


class _FileWaiter:
    """Waits for the lock file in the kernel, which wakes it the moment the holder lets go,
    on a thread of its own, so that a wait can end at a deadline (flock itself has none).
    Each request has a ticket; a lock taken for a ticket whose asker gave up is let go."""

    def __init__(self):
        self.pid = os.getpid()
        self._changed = threading.Condition()
        self._ticket = 0
        self._wanted: tuple[int, int] | None = None  # (ticket, descriptor) to take
        self._granted = 0  # the last ticket taken
        threading.Thread(target=self._loop, name="sqlite-write-turn", daemon=True).start()

    def take(self, descriptor: int, seconds: float) -> bool:
        with self._changed:
            self._ticket += 1
            ticket = self._ticket
            self._wanted = (ticket, descriptor)
            self._changed.notify_all()
            if self._changed.wait_for(lambda: self._granted == ticket, max(seconds, 0)):
                return True
            self._wanted = None  # given up: the waiting thread lets it go if it comes
            return False

    def _loop(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._wanted is not None)
                ticket, descriptor = self._wanted
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            with self._changed:
                if self._wanted == (ticket, descriptor):
                    self._wanted, self._granted = None, ticket
                    self._changed.notify_all()
                    continue
            fcntl.flock(descriptor, fcntl.LOCK_UN)


def _locked() -> OperationalError:
    return OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked"))


def take_turns(engine: Engine, timeout_seconds: float) -> WriteTurns | None:
    """Make `engine`'s writing transactions take turns (a file database only); returns the
    turns, or None for an in-memory database."""
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    turns = WriteTurns(os.path.abspath(database), timeout_seconds)

    # SQLAlchemy announces COMMIT and ROLLBACK before it sends them: the listeners send them
    # themselves, then end the turn, and the driver's own call finds nothing left to end.
    @event.listens_for(engine, "commit")
    def _commit_then_give_back(connection):
        if connection.info.get(_HOLDS_TURN):
            connection.connection.dbapi_connection.commit()
            _give_back(connection.info)

    @event.listens_for(engine, "rollback")
    def _roll_back_then_give_back(connection):
        if connection.info.get(_HOLDS_TURN):
            try:
                connection.connection.dbapi_connection.rollback()
            finally:
                _give_back(connection.info)

    # A connection that leaves without either (invalidated, closed) ends its turn too.
    for name in ("checkin", "invalidate", "close"):

        @event.listens_for(engine.pool, name)
        def _leaving(_dbapi_connection, record, *_args):
            if record is not None and record.info.get(_HOLDS_TURN):
                _give_back(record.info)

    def _give_back(info) -> None:
        info[_HOLDS_TURN] = False
        turns.give_back()

    return turns


def begin_writing(connection, turns: WriteTurns | None) -> None:
    """BEGIN IMMEDIATE on `connection`, in its turn."""
    took = turns.take() if turns is not None else False
    connection.info[_HOLDS_TURN] = took
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        if took:
            connection.info[_HOLDS_TURN] = False
            turns.give_back()
        raise
