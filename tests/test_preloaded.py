"""The test servers, workers and commands are forked from a preloaded process
(tests/preloaded.py): each must still be a process of its own that sees exactly the command
line, environment and working directory it was given, like `python -m`, and answer for its
exit like a subprocess."""

import json
import os
import signal
import time

import pytest

from tests import preloaded

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(not preloaded.enabled(), reason="INVITELOOP_TEST_PRELOAD=0"),
]


def probe(arguments: list[str], cwd, **settings: str) -> preloaded.Command:
    return preloaded.Command("tests.preloaded_probe", arguments, cwd=cwd, env=settings)


def test_a_forked_command_sees_exactly_what_it_was_given_and_exits_with_its_status(tmp_path):
    with probe(["7"], tmp_path, GIVEN="only this", PATH=os.environ["PATH"]) as command:
        assert isinstance(command.process, preloaded.PreloadedProcess)  # forked, not a new Python
        facts = json.loads(command.finished(timeout=30))
    assert command.process.returncode == 7
    assert facts["argv"] == ["7"]
    assert facts["environment"] == {"GIVEN": "only this", "PATH": os.environ["PATH"]}
    assert facts["cwd"] == str(tmp_path)
    # Its own process, leading its own session (a kill of its group reaches only its own).
    assert facts["pid"] == command.process.pid != os.getpid()
    assert facts["session"] == facts["pid"]
    assert facts["stdin"] == ""


def test_a_killed_command_reports_the_signal_and_a_stop_waits_for_it(tmp_path):
    with probe(["sleep"], tmp_path, PATH=os.environ["PATH"]) as command:
        deadline = time.monotonic() + 30
        while "sleeping" not in command.output():
            assert time.monotonic() < deadline, command.output()
            time.sleep(0.05)
        assert command.process.poll() is None
        command.process.send_signal(signal.SIGTERM)
        assert command.process.wait(timeout=10) == -signal.SIGTERM


def test_a_setting_libraries_read_at_import_starts_a_new_python_instead(tmp_path):
    """prometheus_client reads PROMETHEUS_MULTIPROC_DIR when imported: the preloaded process
    imported it without one."""
    settings = {"PATH": os.environ["PATH"], "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    with probe(["0"], preloaded.ROOT, **settings) as command:
        assert not isinstance(command.process, preloaded.PreloadedProcess)
        environment = json.loads(command.finished(timeout=30))["environment"]
        assert settings.items() <= environment.items()
