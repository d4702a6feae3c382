"""Records journaled by a process (core/journal.py): handed on once, in order and in batches;
what a process killed mid-way left is claimed by another once its lock is free, never while
its owner runs; a failed hand-over loses nothing; a full file is started afresh."""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import journal as journal_module
from core.journal import Journal

ROOT = Path(__file__).resolve().parents[1]


class Received:
    """A `move` that keeps what it was handed, batch by batch; it fails while `failing`."""

    def __init__(self):
        self.batches: list[list[bytes]] = []
        self.failing = False

    def __call__(self, lines: list[bytes]) -> None:
        if self.failing:
            raise RuntimeError("the database is down")
        self.batches.append(list(lines))

    @property
    def lines(self) -> list[bytes]:
        return [line for batch in self.batches for line in batch]


@contextlib.contextmanager
def _owner(directory: Path, lines: int, then: str) -> Iterator[subprocess.Popen]:
    """Another process journaling `lines` records ("r0", "r1", ...) into `directory`; then it
    writes half a record and is killed ("killed"), or waits until killed ("waits")."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys, time
        from core.journal import Journal
        journal = Journal({str(directory)!r}, lambda lines: None, 100)
        for number in range({lines}):
            journal.append(b"r%d" % number)
        print("appended", flush=True)
        if {then!r} == "killed":
            os.write(journal._current.fd, b"half a rec")  # cut short, as a kill mid-write
            os.kill(os.getpid(), signal.SIGKILL)
        sys.stdin.read()
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as owner:
        try:
            assert owner.stdout.readline() == "appended\n"
            yield owner
        finally:
            owner.kill()


def test_lines_are_handed_on_once_in_order_and_in_batches(tmp_path):
    received = Received()
    journal = Journal(tmp_path, received, batch=3)
    for number in range(7):
        journal.append(b"click %d" % number)

    assert journal.move_now() == 7
    assert received.batches == [
        [b"click 0", b"click 1", b"click 2"],
        [b"click 3", b"click 4", b"click 5"],
        [b"click 6"],
    ]
    journal.append(b"click 7")
    assert journal.move_now() == 1
    assert journal.move_now() == 0
    assert received.lines == [b"click %d" % number for number in range(8)]


def test_a_failed_hand_over_loses_nothing_and_hands_on_the_rest_next_time(tmp_path):
    received = Received()
    journal = Journal(tmp_path, received, batch=10)
    journal.append(b"first")
    received.failing = True

    with pytest.raises(RuntimeError):
        journal.move_now()
    journal.append(b"second")
    received.failing = False
    journal.move_now()

    assert received.lines == [b"first", b"second"]


def test_a_killed_process_file_is_claimed_whole_and_deleted_its_cut_line_dropped(tmp_path):
    with _owner(tmp_path, lines=250, then="killed") as owner:
        assert owner.wait(10) == -signal.SIGKILL
    [left] = tmp_path.glob("*.journal")

    received = Received()
    moved = Journal(tmp_path, received, batch=100).move_now()

    assert moved == 250
    assert received.lines == [b"r%d" % number for number in range(250)]
    assert [len(batch) for batch in received.batches] == [100, 100, 50]
    assert not left.exists()


def test_the_file_of_a_running_process_is_left_to_it(tmp_path):
    received = Received()
    journal = Journal(tmp_path, received, batch=100)
    with _owner(tmp_path, lines=5, then="waits"):
        assert journal.move_now() == 0
        assert len(list(tmp_path.glob("*.journal"))) == 1
    assert journal.move_now() == 5  # its owner is gone: claimed now
    assert received.lines == [b"r%d" % number for number in range(5)]


def test_two_journals_of_one_process_leave_each_other_alone(tmp_path):
    mine, theirs = Received(), Received()
    first, second = Journal(tmp_path, mine, 10), Journal(tmp_path, theirs, 10)
    first.append(b"of the first")
    second.append(b"of the second")

    first.move_now()
    second.move_now()

    assert mine.lines == [b"of the first"] and theirs.lines == [b"of the second"]


def test_a_file_all_moved_past_its_size_is_deleted_and_the_next_append_starts_another(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(journal_module, "ROTATE_BYTES", 64)
    received = Received()
    journal = Journal(tmp_path, received, batch=100)
    for number in range(10):
        journal.append(b"a click of ten bytes %d" % number)
    [first] = tmp_path.glob("*.journal")

    journal.move_now()
    assert not first.exists()
    journal.append(b"the next one")
    [second] = tmp_path.glob("*.journal")

    assert second != first
    journal.move_now()
    assert received.lines[-1] == b"the next one" and len(received.lines) == 11


def test_a_failed_append_retires_the_file_and_the_next_append_starts_another(tmp_path):
    received = Received()
    journal = Journal(tmp_path, received, batch=100)
    journal.append(b"before")
    broken = journal._current
    os.close(broken.fd)
    broken.fd = os.open(os.devnull, os.O_RDONLY)  # a write to it fails, as on a full disk

    with pytest.raises(OSError):
        journal.append(b"lost, and said so")
    os.close(broken.fd)
    broken.fd = os.open(broken.path, os.O_RDWR)  # the mover reads it again
    journal.append(b"after")
    journal.move_now()

    assert received.lines == [b"before", b"after"]
    assert not broken.path.exists()


def test_a_file_being_born_is_never_claimed_and_one_left_unborn_is_deleted(tmp_path):
    """A file its owner has not locked yet has a name no mover takes; one left so by a
    process killed right then is empty, and is deleted once it is old."""
    being_born = tmp_path / f"1-new{journal_module.STARTING_SUFFIX}"
    left_unborn = tmp_path / f"2-old{journal_module.STARTING_SUFFIX}"
    for path in (being_born, left_unborn):
        path.write_bytes(b"")
    long_ago = left_unborn.stat().st_mtime - journal_module.UNBORN_SECONDS - 1
    os.utime(left_unborn, (long_ago, long_ago))
    received = Received()

    assert Journal(tmp_path, received, 10).move_now() == 0
    assert being_born.exists() and not left_unborn.exists()
    assert received.lines == []
