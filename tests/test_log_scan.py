"""The suite's secret scan (tests/log_scan.py) fails a session whose log handlers would write a
secret, and names the test; a secret logged on purpose through the redacting handler passes
(docs/guarantees.md #36)."""

import subprocess
import sys
import textwrap

import pytest

from tests.server import ROOT

INNER_TESTS = textwrap.dedent(
    """
    import logging
    import sys

    from core.logs import make_formatter

    def test_redacted_on_purpose():
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(make_formatter("json"))
        logging.getLogger().addHandler(handler)
        try:
            logging.getLogger("careful").warning("login password=%s", "hunter2-hunter2")
        finally:
            logging.getLogger().removeHandler(handler)

    def test_written_as_it_is():
        handler = logging.StreamHandler(sys.stdout)
        logging.getLogger().addHandler(handler)
        try:
            logging.getLogger("careless").warning("reset at /auth/reset/%s", "Zm9vYmFy.s3cr3t")
        finally:
            logging.getLogger().removeHandler(handler)
    """
)


def run_inner_session(tmp_path, tests: str, *options: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_inner.py").write_text(tests)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    # Only the plugins under test: the installed ones (Hypothesis, Schemathesis, ...) would
    # take a second of CPU in each of the session's processes, for nothing here.
    command = [sys.executable, "-m", "pytest", "-q", "-p", "xdist.plugin", "-p", "tests.log_scan"]
    command += ["-p", "no:cacheprovider", "--rootdir", str(tmp_path), *options, "test_inner.py"]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.server
def test_a_secret_a_handler_would_write_fails_the_session(tmp_path):
    """Under xdist (the suite's way): the worker's finding reaches the controller's report."""
    result = run_inner_session(tmp_path, INNER_TESTS, "-n", "1")
    report = result.stdout + result.stderr
    assert result.returncode == 1, report
    assert "2 passed" in report
    findings = report.split("secrets in the log")[1]
    assert "test_inner.py::test_written_as_it_is [StreamHandler]" in findings
    assert "reset at /auth/reset/Zm9vYmFy.s3cr3t" in findings
    assert "test_redacted_on_purpose" not in findings
    assert "1 log line(s) would have written a secret" in findings
