"""A real HTTP server on 127.0.0.1 standing in for another system (a webhook receiver, an SMS
provider): it answers scripted statuses and keeps every request it got."""

import contextlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Answers the scripted `statuses` in turn, then `status`, after `delay` seconds; keeps
    each POST's headers and raw body in `requests`. Use it as a context manager."""

    def __init__(self, statuses=(), *, status=200, delay=0.0, path="/"):
        self.statuses, self.status, self.delay = list(statuses), status, delay
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                time.sleep(receiver.delay)
                answer = receiver.statuses.pop(0) if receiver.statuses else receiver.status
                # A sender that gave up waiting (its timeout) has gone: nothing to answer.
                with contextlib.suppress(ConnectionError):
                    self.send_response(answer)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")

            def log_message(self, *_):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
