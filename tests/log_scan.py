"""A pytest plugin: no log line any test run writes may hold a password, token, API key or
reset link (docs/guarantees.md #36). Registered for the whole suite in tests/conftest.py.

For the session a handler on the root logger sees every record that reaches it and formats
the record as each of the other handlers on its way would write it (the app's handler, which
redacts, or any handler someone adds without redacting), then asks core/logs.py whether a
secret is left in that text. A test that logs a secret on purpose to prove it is redacted
therefore passes; a handler that would write it does not. pytest's own capture handlers
(the "Captured log" of a failing test) are not output and are not judged.

Any finding fails the session (exit status 1) and is listed with the test that logged it.
Under pytest-xdist each worker scans its own records and hands its findings to the
controller, which reports them."""

import logging

import pytest

from core.logs import shows_a_secret

FINDINGS_KEY = "log_scan_findings"
_KEPT = 50  # findings kept for the report (the count is always exact)
_LINE_CHARS = 300
_OUTSIDE_TESTS = "(outside any test)"


class SecretScanHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.NOTSET)
        self.test_id = _OUTSIDE_TESTS
        self.count = 0
        self.findings: list[list[str]] = []  # [test id, handler, line]: plain, for xdist

    def emit(self, record: logging.LogRecord) -> None:
        for handler in _output_handlers(record, self):
            if record.levelno < handler.level or not handler.filter(record):
                continue
            try:
                written = handler.format(record)
            except Exception:  # noqa: BLE001, S112 - the handler itself reports what it cannot format
                continue
            if shows_a_secret(written):
                self.add(self.test_id, type(handler).__name__, written)

    def add(self, test_id: str, handler: str, line: str) -> None:
        self.count += 1
        if len(self.findings) < _KEPT:
            self.findings.append([test_id, handler, line[:_LINE_CHARS]])


def _output_handlers(record: logging.LogRecord, scanner: logging.Handler):
    """The handlers that write `record`: those of its logger and of each parent it
    propagates to, except this scanner and pytest's capture handlers."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        for handler in logger.handlers:
            if handler is not scanner and not type(handler).__module__.startswith("_pytest"):
                yield handler
        logger = logger.parent if logger.propagate else None


class LogScan:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.scanner = SecretScanHandler()
        self.from_workers: list[list[str]] = []
        self.count_from_workers = 0

    def pytest_sessionstart(self) -> None:
        logging.getLogger().addHandler(self.scanner)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.scanner.test_id = nodeid
        root = logging.getLogger()
        if self.scanner not in root.handlers:  # something replaced the root's handlers
            root.addHandler(self.scanner)

    def pytest_runtest_logfinish(self) -> None:
        self.scanner.test_id = _OUTSIDE_TESTS

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node) -> None:
        """The controller under xdist: take what a worker found."""
        found = getattr(node, "workeroutput", {}).get(FINDINGS_KEY)
        if found:
            self.count_from_workers += found["count"]
            self.from_workers.extend(found["lines"])

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        logging.getLogger().removeHandler(self.scanner)
        if hasattr(self.config, "workeroutput"):  # an xdist worker: the controller reports
            self.config.workeroutput[FINDINGS_KEY] = {
                "count": self.scanner.count,
                "lines": self.scanner.findings,
            }
            return
        if self.total():
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def total(self) -> int:
        return self.scanner.count + self.count_from_workers

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if hasattr(self.config, "workeroutput") or not self.total():
            return
        terminalreporter.section("secrets in the log (tests/log_scan.py)", sep="=", red=True)
        for test_id, handler, line in self.scanner.findings + self.from_workers:
            terminalreporter.line(f"{test_id} [{handler}]: {line}")
        terminalreporter.line(
            f"{self.total()} log line(s) would have written a secret: the session fails."
        )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(LogScan(config), "inviteloop_log_scan")
