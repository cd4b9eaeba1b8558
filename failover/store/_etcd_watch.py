"""A watch over etcd's JSON gateway: ``POST <prefix>/watch`` answers with one JSON object per
line for as long as the connection stays open.

The first line says the watch is created; ``EtcdClient.watch`` returns only after it, so
every change made after that call returns is seen. Then each line carries events (PUT or
DELETE), a progress notice (no events), or a cancellation: a compacted start revision
(``EtcdCompacted``: re-read, then watch from its ``compact_revision``) or another reason
(``EtcdError``).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import httpx

from failover.store._etcd_errors import (
    TOKEN_ERRORS,
    UNAVAILABLE,
    EtcdCompacted,
    EtcdError,
    EtcdUnavailable,
    error_for,
    grpc_error,
)
from failover.store._etcd_http import Connection, Failed, log
from failover.store._etcd_types import WatchEvent, as_int, revision_of, watch_event


class Watch:
    """An open watch. Iterate over it for events; the iteration ends quietly after
    ``close()`` (callable from any thread) or when no message came for the watch's
    ``timeout`` (then ``timed_out`` is True), and raises ``EtcdError`` for anything else
    (``EtcdUnavailable`` when the stream breaks). To carry on, watch again from
    ``next_revision``: no event is lost, and the events of a revision you stopped in the
    middle of come again."""

    def __init__(self, endpoint: str, response: httpx.Response, what: str, start_revision: int) -> None:
        self.endpoint = endpoint
        self.next_revision = start_revision
        self.timed_out = False
        self._response = response
        self._lines = response.iter_lines()
        self._what = what
        self._closed = False
        self._lock = threading.Lock()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        # Shut the socket down first: a thread blocked reading it wakes up at once.
        stream = self._response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):  # already shut down by the peer
                sock.shutdown(socket.SHUT_RDWR)
        self._response.close()

    def __iter__(self) -> Iterator[WatchEvent]:
        try:
            while (result := self.next_result()) is not None:
                if result.get("canceled"):
                    raise self.canceled(result)
                events = [watch_event(e) for e in result.get("events", ())]
                if not events:  # a progress notice: everything up to its revision was sent
                    self.next_revision = max(self.next_revision, revision_of(result) + 1)
                for index, event in enumerate(events):
                    following = events[index + 1].kv.mod_revision if index + 1 < len(events) else None
                    if self._closed:
                        return
                    if following != event.kv.mod_revision:  # the last event of its revision
                        self.next_revision = max(self.next_revision, event.kv.mod_revision + 1)
                    yield event
        except (KeyError, ValueError, TypeError) as exc:
            raise EtcdError(f"etcd {self.endpoint}: {self._what}: malformed event ({exc})", self.endpoint) from None
        finally:
            self.close()

    def next_result(self) -> dict[str, Any] | None:
        """The next message's ``result``; None when closed or timed out."""
        if self._closed:
            return None
        try:
            line = ""
            while not line.strip():
                line = next(self._lines)
        except StopIteration:
            if self._closed:
                return None
            raise EtcdUnavailable(f"etcd {self.endpoint}: {self._what}: the stream ended", self.endpoint) from None
        except httpx.ReadTimeout:
            self.timed_out = not self._closed
            return None
        except (httpx.HTTPError, httpx.StreamError, OSError) as exc:
            if self._closed:
                return None
            raise EtcdUnavailable(
                f"etcd {self.endpoint}: {self._what}: the stream broke ({exc})", self.endpoint
            ) from None
        try:
            data = json.loads(line)
        except ValueError:
            raise EtcdError(
                f"etcd {self.endpoint}: {self._what}: malformed JSON in the stream", self.endpoint
            ) from None
        error = grpc_error(data)
        if error is not None:
            if error[0] == UNAVAILABLE:
                raise EtcdUnavailable(f"etcd {self.endpoint}: {self._what}: {error[1]}", self.endpoint, error[0])
            raise error_for(self._what, self.endpoint, *error)
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, dict):
            raise EtcdError(f"etcd {self.endpoint}: {self._what}: unexpected message in the stream", self.endpoint)
        return result

    def canceled(self, result: dict[str, Any]) -> EtcdError:
        reason = str(result.get("cancel_reason") or "no reason given")
        compacted = as_int(result, "compact_revision")
        if compacted:
            return EtcdCompacted(
                f"etcd {self.endpoint}: {self._what}: revision {self.next_revision} is compacted; "
                f"the oldest kept is {compacted}",
                self.endpoint,
                compact_revision=compacted,
            )
        return EtcdError(f"etcd {self.endpoint}: {self._what} canceled by etcd: {reason}", self.endpoint)


def open_watch(
    conn: Connection, create: dict[str, Any], what: str, timeout: float | None, start_revision: int
) -> Watch:
    """A created watch, from the first endpoint that creates one within the deadline."""
    order, failures = conn.order(), []
    for endpoint, until in conn.shares(order):
        try:
            return open_on(conn, endpoint, create, what, until, timeout, start_revision)
        except Failed as failed:
            conn.failed(endpoint)
            log.debug("etcd %s: %s: %s", endpoint, what, failed.reason)
            failures.append(f"{endpoint}: {failed.reason}")
    raise conn.unavailable(what, order, failures)


def open_on(
    conn: Connection,
    endpoint: str,
    create: dict[str, Any],
    what: str,
    until: float,
    timeout: float | None,
    start_revision: int,
) -> Watch:
    for last_try in (False, True):
        response = conn.send(
            endpoint, "/watch", {"create_request": create}, what, until, stream=True, stream_read_timeout=timeout
        )
        watch = Watch(endpoint, response, what, start_revision)
        try:
            first = watch.next_result()
            if first is None:
                raise Failed(f"not created within {timeout}s", sent=False)
            created_at = revision_of(first)
        except EtcdUnavailable as exc:
            watch.close()
            raise Failed(f"not created: {exc.args[0].split(': ', 2)[-1]}", sent=False) from None
        except (KeyError, ValueError, TypeError) as exc:
            watch.close()
            raise EtcdError(f"etcd {endpoint}: {what}: malformed answer ({exc})", endpoint) from None
        except BaseException:
            watch.close()
            raise
        if not first.get("canceled"):
            if not start_revision:  # from now on: the revision after the one it was created at
                watch.next_revision = created_at + 1
            conn.answered(endpoint)
            return watch
        watch.close()
        # etcd refuses a watch with a created-and-canceled message, even for a bad token
        reason = str(first.get("cancel_reason") or "")
        if conn.user is not None and not last_try and any(t in reason for t in TOKEN_ERRORS):
            conn.forget_token(None)
            continue
        raise watch.canceled(first)
    raise AssertionError("unreachable")  # pragma: no cover
