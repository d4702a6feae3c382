"""Records acknowledged once appended to a file of their process, moved elsewhere in batches.

One file per process (and journal) in the journal's folder, one record per line (bytes
without a newline, the caller's encoding), each line one write() to a file opened for
appending: once it returns, the kernel holds the line,
so it survives the process being killed, as SQLite's WAL does with synchronous=NORMAL; a power
cut may lose the last lines of either.

The owner holds an exclusive flock on its file for as long as it runs. A mover (any process's)
finds a file whose lock it can take: its owner is gone, and it claims it, moving every line
and deleting the file. A file is born under a name no mover looks at and renamed once its
owner holds the lock, so no mover takes a file its owner has not locked yet.

`move(lines)` must be idempotent: a mover killed after `move` returned and before the file
was deleted leaves it to the next claimer, which hands the same lines again (the clicks'
`queue_id`, unique in the database, makes their insert so). A line cut short (its process
killed mid-write, or a full disk) never ends in a newline, is never handed on, and was never
acknowledged: a write that fails retires its file, so nothing is appended after such a line.
"""

import fcntl
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".journal"
STARTING_SUFFIX = ".starting"  # a file not yet locked by its owner: never claimed
ROTATE_BYTES = 4 * 2**20  # a file this long, all moved, is deleted; the next append starts one
READ_BYTES = 2**20
# A file left unborn this long (its process killed between creating and locking it, so it
# is empty) is deleted; a younger one may be locked by its owner any moment.
UNBORN_SECONDS = 60.0


@dataclass
class _File:
    path: Path
    fd: int
    pid: int
    moved: int = 0  # bytes handed to `move` so far


class Journal:
    """Appends records to this process's file; `move_now` hands them on in batches."""

    def __init__(self, directory: Path, move: Callable[[list[bytes]], object], batch: int) -> None:
        self.directory = Path(directory)
        self.move = move
        self.batch = batch
        self._lock = threading.Lock()  # appends, and the swap of the file appended to
        self._moving = threading.Lock()  # one mover at a time in this process
        self._current: _File | None = None
        self._retired: list[_File] = []  # no longer appended to; moved, then deleted

    def append(self, record: bytes) -> None:
        """`record` (no newline in it) on disk, as the kernel holds it, when this returns;
        OSError otherwise, and the file is retired: the next append starts another."""
        line = record + b"\n"
        with self._lock:
            current = self._file()
            try:
                written = os.write(current.fd, line)
            except OSError:
                self._retire(current)
                raise
            if written != len(line):  # a full disk: part of the line; the rest goes elsewhere
                self._retire(current)
                raise OSError(f"journal {current.path}: {written} of {len(line)} bytes written")

    def move_now(self) -> int:
        """Hand every complete line of this process's files, then of the files of processes
        gone, to `move`; returns how many lines were handed on."""
        with self._moving:
            moved = self._move_own()
            return moved + self._claim_orphans()

    def close(self) -> None:
        """This process's lines moved and its files deleted (a worker leaving). If the move
        fails, the files are left for the next mover to claim."""
        with self._lock:
            if self._current is not None and self._current.pid == os.getpid():
                self._retire(self._current)
        self.move_now()

    # -- this process's files

    def _file(self) -> _File:
        current = self._current
        if current is None or current.pid != os.getpid():  # none yet, or a forked parent's
            current = self._current = self._start_file()
        return current

    def _start_file(self) -> _File:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{secrets.token_hex(6)}"
        starting = self.directory / (name + STARTING_SUFFIX)
        fd = os.open(starting, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path = starting.with_suffix(SUFFIX)
            os.rename(starting, path)
        except OSError:
            os.close(fd)
            starting.unlink(missing_ok=True)
            raise
        return _File(path, fd, os.getpid())

    def _retire(self, file: _File) -> None:
        """Called under the append lock: nothing is appended to `file` from now on."""
        if self._current is file:
            self._current = None
        self._retired.append(file)

    def _move_own(self) -> int:
        with self._lock:
            current = self._current if self._current and self._current.pid == os.getpid() else None
            retired = [f for f in self._retired if f.pid == os.getpid()]
        moved = 0
        for file in retired:  # older than the current one: their lines first
            moved += self._move_lines(file)
            self._delete(file)
        if current is not None:
            moved += self._move_lines(current)
            with self._lock:
                # All moved and long enough: start afresh, so no file grows for ever.
                full = current.moved >= ROTATE_BYTES
                if full and os.fstat(current.fd).st_size == current.moved:
                    self._retire(current)
                else:
                    return moved
            self._delete(current)
        return moved

    def _delete(self, file: _File) -> None:
        """A retired file, all moved."""
        file.path.unlink(missing_ok=True)
        os.close(file.fd)  # and its lock
        with self._lock:
            self._retired.remove(file)

    # -- handing lines on

    def _move_lines(self, file: _File) -> int:
        """Every complete line of `file` after `file.moved`, handed on batch by batch; the
        offset moves on only once `move` has returned."""
        moved = 0
        while True:
            chunk = os.pread(file.fd, READ_BYTES, file.moved)
            end = chunk.rfind(b"\n") + 1
            if not end:
                if len(chunk) >= READ_BYTES:  # a line longer than a read: never written here
                    raise ValueError(f"journal {file.path}: a line of over {READ_BYTES} bytes")
                return moved
            lines = chunk[: end - 1].split(b"\n")
            for first in range(0, len(lines), self.batch):
                self.move(lines[first : first + self.batch])
                # Moved on batch by batch: a failure later in the chunk does not hand
                # these again (it would be harmless, only slower).
                file.moved += sum(len(line) + 1 for line in lines[first : first + self.batch])
            moved += len(lines)

    # -- the files of processes gone

    def _claim_orphans(self) -> int:
        if not self.directory.is_dir():
            return 0
        own = {f.path.name for f in (*self._retired, self._current) if f is not None}
        moved = 0
        for path in sorted(self.directory.iterdir()):
            if path.name in own or path.suffix not in (SUFFIX, STARTING_SUFFIX):
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue  # claimed and deleted meanwhile
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process runs
                status = os.fstat(fd)
                if status.st_nlink == 0:
                    continue  # another mover moved and deleted it after we opened it
                if path.suffix == STARTING_SUFFIX:
                    if time.time() - status.st_mtime < UNBORN_SECONDS:
                        continue
                else:
                    moved += self._move_lines(_File(path, fd, os.getpid()))
                    log.info("journal: moved the file of a process gone, %s", path.name)
                path.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return moved
