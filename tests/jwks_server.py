"""A stand-in Saleor instance on 127.0.0.1 that serves a JWKS and counts the requests it gets.

with JwksServer([key.public_jwk()]) as shop:
    config SALEOR_API_URL = shop.api_url
    ... shop.requests  # the paths fetched, in order
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JWKS_PATH = "/.well-known/jwks.json"


class JwksServer:
    def __init__(self, keys=()):
        self.keys = list(keys)  # public JWKs; tests may add one to simulate a key rotation
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.origin}/graphql/"

    @property
    def jwks_requests(self) -> int:
        return self.requests.count(JWKS_PATH)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _handler_for(shop: JwksServer):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name http.server calls
            shop.requests.append(self.path)
            if self.path != JWKS_PATH:
                self.send_error(404)
                return
            body = json.dumps({"keys": shop.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # keep the test output quiet
            pass

    return Handler
