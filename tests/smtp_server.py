"""A real SMTP server on 127.0.0.1 whose behaviour a test switches while it runs:

- `accept`: greets, takes every message, answers 250;
- `hang`: takes the connection and never says a word (a mail server that hangs);
- `hang_after_data`: takes the whole message, then never confirms it (a sender killed or
  timed out there does not know the message arrived).

A port where nothing listens stands for a server refusing connections: pass that port to
`SmtpServer(port=...)` later to bring it up. `drops=N` hangs up on the first N connections
(a server that fails, then recovers).
"""

import contextlib
import socket
import threading


class SmtpServer:
    def __init__(self, mode: str = "accept", port: int = 0, drops: int = 0):
        self.mode = mode
        self.drops = drops
        self.connections = 0
        self.messages: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            handler = threading.Thread(
                target=self._handle, args=(connection, self.mode, self.connections), daemon=True
            )
            handler.start()

    def _handle(self, connection: socket.socket, mode: str, number: int) -> None:
        with connection:
            if number <= self.drops:
                return  # hung up at once
            if mode == "hang":
                self._stopping.wait()
                return
            connection.settimeout(10)
            with contextlib.suppress(OSError):
                self._converse(connection, confirm=mode == "accept")

    def _converse(self, connection: socket.socket, confirm: bool) -> None:
        with connection.makefile("rb") as lines:
            connection.sendall(b"220 localhost ESMTP\r\n")
            for line in lines:
                verb = line[:4].upper()
                if verb == b"DATA":
                    connection.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    self.messages.append(b"".join(iter(lines.readline, b".\r\n")))
                    if not confirm:
                        self._stopping.wait()
                        return
                    connection.sendall(b"250 Queued\r\n")
                elif verb == b"QUIT":
                    connection.sendall(b"221 Bye\r\n")
                    return
                else:
                    connection.sendall(b"250 OK\r\n")

    def messages_to(self, address: str) -> list[bytes]:
        return [message for message in self.messages if f"To: {address}".encode() in message]
