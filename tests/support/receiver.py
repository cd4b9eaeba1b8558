"""A real local HTTP receiver for Slack and webhook alerts, which can also misbehave.

It records every request (time, path, headers, body) and answers by a script: a list of
answers consumed one per request, then ``default``. An answer is a status code (with an
optional ``Retry-After``) or ``"hang"``: accept and never answer until ``close()``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.conftest import wait_for


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up is part of the tests, not news


@dataclass
class Received:
    at: float  # time.monotonic()
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: str = "ok"
    retry_after: str | None = None
    hang: bool = False


@dataclass
class Receiver:
    default: Answer = field(default_factory=Answer)
    script: list[Answer] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _port: int = 0
    _release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.received.append(
                        Received(time.monotonic(), self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    answer = receiver.script.pop(0) if receiver.script else receiver.default
                if answer.hang:
                    receiver._release.wait(60)
                    return
                payload = answer.body.encode()
                self.send_response(answer.status)
                if answer.retry_after is not None:
                    self.send_header("Retry-After", answer.retry_after)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client gave up (its timeout): fine
                    self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True, name="receiver").start()
        return self

    @property
    def url(self) -> str:
        assert self._port, "start() first"
        return f"http://127.0.0.1:{self._port}/hook"

    def bodies(self) -> list[Any]:
        with self._lock:
            return [r.json() for r in self.received]

    def raw(self) -> list[bytes]:
        with self._lock:
            return [r.body for r in self.received]

    def wait_count(self, count: int, deadline: float = 10.0) -> list[Received]:
        wait_for(lambda: len(self.received) >= count, deadline, f"{count} request(s) at the receiver")
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
