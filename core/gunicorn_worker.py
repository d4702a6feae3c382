"""gunicorn's threaded worker that takes a new connection only while one of its threads is free.

gunicorn's own (`gthread`) accepts every connection it is woken for, busy or not, and all
workers are woken for each (gunicorn issues #908, #3433). Whichever is quickest takes it, and
a kept-alive connection stays where it landed. A proxy or client that opens a few connections
at once and keeps them (wrk, a load balancer's upstream pool) can so land every one of them on
one worker, which then serves them on one CPU while the others idle: the benchmark's rounds
fell from ~2,900 to ~1,050 requests a second whenever that happened (~1 round in 5), with one
worker at 0 % CPU (docs/guarantees.md #34).

This worker stops listening while all its threads have a request, and listens again as soon as
one is done: a new connection goes to a worker that can start on it now, or waits in the
kernel's queue until one can. Requests on connections it holds are served as before.
"""

from gunicorn.workers.gthread import ThreadWorker


class FreeThreadWorker(ThreadWorker):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.requests_in_flight = 0  # changed on the worker's main thread only

    def has_a_free_thread(self) -> bool:
        return self.requests_in_flight < self.cfg.threads

    def set_accept_enabled(self, enabled: bool) -> None:
        # gunicorn's loop asks to listen whenever it holds fewer connections than its limit.
        super().set_accept_enabled(enabled and self.has_a_free_thread())

    def enqueue_req(self, conn) -> None:
        self.requests_in_flight += 1
        super().enqueue_req(conn)

    def accept(self, listener) -> None:
        super().accept(listener)
        if not self.has_a_free_thread():
            self.set_accept_enabled(False)

    def finish_request(self, conn, fs) -> None:
        # Run on the main thread between two turns of gunicorn's loop, whose next turn
        # listens again (set_accept_enabled) now that a thread is free.
        self.requests_in_flight -= 1
        super().finish_request(conn, fs)
