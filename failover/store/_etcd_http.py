"""How the etcd client reaches a cluster: endpoints, the deadline, TLS, auth, the API prefix.

One call has one deadline (``timeout``) shared by the endpoints: the last endpoint that
answered is tried first, then the others in their configured order, each with an equal share
of what is left (one that refuses at once leaves its share to the next). A request that never
reached a member (connection refused, connect timeout) is always tried on the next one. A
request that reached one and got no answer is tried elsewhere only if repeating it is
harmless (reads, keepalives, grants); a write then fails with ``EtcdOutcomeUnknown``,
because it may have been applied and a second copy could, for instance, lose a
compare-and-set that the first one won.

The API prefix comes from ``GET /version`` once per endpoint (cluster 3.4+ ``/v3``, 3.3
``/v3beta``, 3.2 and older ``/v3alpha``). With a user, a token from ``/auth/authenticate``
goes in the ``Authorization`` header; when etcd says it is invalid or missing, the client
authenticates again and repeats the request once (etcd refused it, so nothing was applied).
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from failover.store._etcd_errors import (
    AUTH_FAILED,
    AUTH_NOT_ENABLED,
    DEADLINE_EXCEEDED,
    TOKEN_ERRORS,
    UNAVAILABLE,
    EtcdAuthFailed,
    EtcdError,
    EtcdOutcomeUnknown,
    EtcdUnavailable,
    describe,
    error_for,
    grpc_error,
)

log = logging.getLogger("failover.store.etcd")


class Failed(Exception):
    """One endpoint failed in a way another endpoint may not: ``sent`` says whether the
    request may have reached etcd."""

    def __init__(self, reason: str, sent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent


def check_endpoint(endpoint: str) -> str:
    try:
        url = httpx.URL(endpoint)
    except httpx.InvalidURL:
        raise EtcdError(f"etcd endpoint {endpoint!r} is not a URL (expected http(s)://host:port)") from None
    if url.userinfo:  # never echo it: it may hold a password
        raise EtcdError(f"etcd endpoint {url.host}:{url.port}: put no credentials in the URL; pass user and password")
    if url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/") or url.query:
        raise EtcdError(f"etcd endpoint {endpoint!r}: expected http(s)://host:port")
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


def tls_context(ca_file: str | None, cert_file: str | None, key_file: str | None) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=ca_file)
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise EtcdError(f"etcd TLS files (ca {ca_file}, cert {cert_file}, key {key_file}): {exc}") from None
    return context


def parse_version(text: Any) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in str(text).split(".")[:3])
    except ValueError:  # "not_decided" while a new cluster agrees on its version
        return None


class Connection:
    """The endpoints of one cluster and everything needed to call them; safe to share
    between threads."""

    def __init__(
        self,
        endpoints: Sequence[str],
        timeout: float,
        ca_file: str | None,
        cert_file: str | None,
        key_file: str | None,
        user: str | None,
        password: str | None,
        transport: httpx.BaseTransport | None,
    ) -> None:
        if not endpoints:
            raise EtcdError("etcd: no endpoint given")
        if timeout <= 0:
            raise EtcdError(f"etcd: timeout must be positive, not {timeout}")
        if (user is None) != (password is None):
            raise EtcdError("etcd: give both a user and a password, or neither")
        self.endpoints = tuple(dict.fromkeys(check_endpoint(e) for e in endpoints))
        self.timeout = timeout
        self.user = user
        self._password = password
        verify: ssl.SSLContext | bool = True
        if ca_file or cert_file or any(e.startswith("https:") for e in self.endpoints):
            verify = tls_context(ca_file, cert_file, key_file)
        self.http = httpx.Client(transport=transport, verify=verify, trust_env=False)
        self._lock = threading.Lock()
        self._preferred = self.endpoints[0]
        self._prefixes: dict[str, str] = {}
        self._token: str | None = None  # "" once etcd said auth is not enabled

    def close(self) -> None:
        self.http.close()

    # -- endpoints and the deadline ---------------------------------------------------------
    def order(self) -> list[str]:
        with self._lock:
            start = self.endpoints.index(self._preferred)
        return [*self.endpoints[start:], *self.endpoints[:start]]

    def answered(self, endpoint: str) -> None:
        with self._lock:
            if self._preferred != endpoint:
                log.info("etcd: now using %s", endpoint)
            self._preferred = endpoint

    def failed(self, endpoint: str) -> None:
        with self._lock:  # the next call starts with the next endpoint, not this one again
            if self._preferred == endpoint:
                index = self.endpoints.index(endpoint)
                self._preferred = self.endpoints[(index + 1) % len(self.endpoints)]

    def shares(self, order: list[str]) -> Iterator[tuple[str, float]]:
        """``(endpoint, until)`` for each endpoint in turn while the call's deadline lasts."""
        deadline = time.monotonic() + self.timeout
        for index, endpoint in enumerate(order):
            now = time.monotonic()
            if now >= deadline:
                return
            yield endpoint, now + (deadline - now) / (len(order) - index)

    def unavailable(self, what: str, order: list[str], failures: list[str]) -> EtcdUnavailable:
        untried = [f"{e}: not tried, deadline passed" for e in order[len(failures) :]]
        return EtcdUnavailable(
            f"etcd: {what} failed on every endpoint within {self.timeout:g}s: " + "; ".join(failures + untried)
        )

    def call(
        self, path: str, body: dict[str, Any], what: str, *, write: bool, streamed: bool = False
    ) -> tuple[str, dict[str, Any]]:
        """POST ``body`` to ``<prefix><path>``; the endpoint that answered and its JSON answer
        (the first message's ``result`` when the gateway streams it). Raises ``EtcdError``."""
        order, failures = self.order(), []
        for endpoint, until in self.shares(order):
            try:
                return endpoint, self.answer(endpoint, self.send(endpoint, path, body, what, until), what, streamed)
            except Failed as failed:
                self.failed(endpoint)
                log.debug("etcd %s: %s: %s", endpoint, what, failed.reason)
                if failed.sent and write:
                    raise EtcdOutcomeUnknown(
                        f"etcd {endpoint}: {what} was sent but {failed.reason}; it may or may not have been applied",
                        endpoint,
                    ) from None
                failures.append(f"{endpoint}: {failed.reason}")
        raise self.unavailable(what, order, failures)

    def answer(self, endpoint: str, response: httpx.Response, what: str, streamed: bool) -> dict[str, Any]:
        text = response.text.split("\n", 1)[0] if streamed else response.text
        try:
            data = json.loads(text)
        except ValueError:
            raise EtcdError(f"etcd {endpoint}: {what} answered with malformed JSON", endpoint) from None
        error = grpc_error(data)
        if error is not None:  # a stream's error comes after a 200
            code, message = error
            if code in (UNAVAILABLE, DEADLINE_EXCEEDED):
                raise Failed(describe(code, message), sent=True)
            raise error_for(what, endpoint, code, message)
        if streamed:
            data = data.get("result") if isinstance(data, dict) else None
        if not isinstance(data, dict):
            raise EtcdError(f"etcd {endpoint}: {what} answered with unexpected JSON", endpoint)
        self.answered(endpoint)
        return data

    # -- one request to one endpoint --------------------------------------------------------
    def send(
        self,
        endpoint: str,
        path: str,
        body: dict[str, Any],
        what: str,
        until: float,
        *,
        stream: bool = False,
        stream_read_timeout: float | None = None,
    ) -> httpx.Response:
        """The 200 answer of one endpoint (with ``stream``, its body not yet read and read with
        ``stream_read_timeout`` once the headers are in); raises ``Failed`` when another
        endpoint may do better, ``EtcdError`` when etcd refused."""
        prefix = self.prefix(endpoint, until)
        for last_try in (False, True):
            token = self.token(endpoint, prefix, until)
            headers = {"Authorization": token} if token else {}
            request = self.http.build_request(
                "POST", endpoint + prefix + path, json=body, headers=headers, timeout=remaining(until)
            )
            response = self.transmit(request, sent=True, stream=stream)
            if response.status_code == 200:
                if stream:
                    set_read_timeout(request, stream_read_timeout)
                return response
            response.read()
            error = grpc_error(json_or_none(response))
            if error is None:
                raise self.bad_status(endpoint, response, what)
            code, message = error
            if message in TOKEN_ERRORS and self.user is not None and not last_try:
                self.forget_token(token)
                continue
            if code in (UNAVAILABLE, DEADLINE_EXCEEDED):
                raise Failed(describe(code, message), sent=True)
            raise error_for(what, endpoint, code, message)
        raise AssertionError("unreachable")  # pragma: no cover

    def transmit(self, request: httpx.Request, sent: bool, stream: bool = False) -> httpx.Response:
        """Send with the request's own timeouts; ``sent`` says whether a failure after
        connecting may have let the request reach etcd."""
        timeout = request.extensions["timeout"]["read"]
        try:
            return self.http.send(request, stream=stream)
        except RuntimeError:
            if self.http.is_closed:  # a call racing close(): the caller's StoreError, not httpx's
                raise EtcdError("etcd client is closed") from None
            raise
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise Failed(f"cannot connect ({exc or type(exc).__name__})", sent=False) from None
        except httpx.TimeoutException:
            raise Failed(f"no answer within {timeout:.2f}s", sent) from None
        except httpx.TransportError as exc:
            # A TLS alert (e.g. our certificate refused) stops a request before etcd sees it.
            refused = caused_by(exc, ssl.SSLError)
            raise Failed(f"{'TLS refused' if refused else type(exc).__name__}: {exc}", sent and not refused) from None

    def bad_status(self, endpoint: str, response: httpx.Response, what: str, quote: bool = True) -> Exception:
        status = response.status_code
        if status >= 500:
            return Failed(f"HTTP {status}", sent=True)
        hint = " (is this etcd 3 with its JSON gateway?)" if status == 404 else ""
        body = f": {response.text[:100]!r}" if quote else ""
        return EtcdError(f"etcd {endpoint}: {what} got an unexpected HTTP {status}{hint}{body}", endpoint)

    def prefix(self, endpoint: str, until: float) -> str:
        with self._lock:
            known = self._prefixes.get(endpoint)
        if known:
            return known
        request = self.http.build_request("GET", endpoint + "/version", timeout=remaining(until))
        response = self.transmit(request, sent=False)  # GET: the call itself was not sent yet
        data = json_or_none(response) if response.status_code == 200 else None
        if not isinstance(data, dict):
            raise self.bad_status(endpoint, response, "GET /version")
        cluster = parse_version(data.get("etcdcluster"))
        version = cluster or parse_version(data.get("etcdserver"))
        if version is None or version < (3, 0):
            raise EtcdError(
                f"etcd {endpoint}: version {data.get('etcdserver')!r} is not supported (3.0 or later)", endpoint
            )
        prefix = "/v3" if version >= (3, 4) else "/v3beta" if version >= (3, 3) else "/v3alpha"
        if cluster:  # until the cluster has agreed on a version, ask again next time
            with self._lock:
                self._prefixes[endpoint] = prefix
        return prefix

    # -- auth -------------------------------------------------------------------------------
    def token(self, endpoint: str, prefix: str, until: float) -> str | None:
        if self.user is None:
            return None
        with self._lock:
            token = self._token
        if token is not None:
            return token or None
        body = {"name": self.user, "password": self._password}
        request = self.http.build_request(
            "POST", endpoint + prefix + "/auth/authenticate", json=body, timeout=remaining(until)
        )
        response = self.transmit(request, sent=False)  # refused or lost, the call was not sent
        data = json_or_none(response)
        error = grpc_error(data)
        if response.status_code == 200 and isinstance(data, dict) and isinstance(data.get("token"), str):
            token = data["token"]
        elif error is not None and error[1] == AUTH_NOT_ENABLED:
            token = ""
        elif error is not None and error[1] == AUTH_FAILED:
            raise EtcdAuthFailed(
                f"etcd {endpoint}: user {self.user!r} was refused: wrong user or password", endpoint, error[0]
            )
        elif error is not None and error[0] in (UNAVAILABLE, DEADLINE_EXCEEDED):
            raise Failed(f"authenticate: {describe(*error)}", sent=False)
        elif error is not None:
            raise error_for("authenticate", endpoint, *error)
        elif response.status_code == 200:  # never quote this body: it may hold a token
            raise EtcdError(f"etcd {endpoint}: authenticate answered without a token", endpoint)
        else:
            raise self.bad_status(endpoint, response, "authenticate", quote=False)
        with self._lock:
            self._token = token
        return token or None

    def forget_token(self, token: str | None) -> None:
        with self._lock:
            if self._token == token or not token:
                self._token = None


def caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):  # httpx error <- httpcore error <- the original
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def remaining(until: float) -> float:
    left = until - time.monotonic()
    if left <= 0:
        raise Failed("its share of the deadline had passed", sent=False)
    return left


def json_or_none(response: httpx.Response) -> Any:
    try:
        return json.loads(response.text)
    except ValueError:
        return None


def set_read_timeout(request: httpx.Request, read_timeout: float | None) -> None:
    """Change a streamed request's read timeout once its headers are in. httpx has one read
    timeout per request; httpcore reads it from this dict when the body starts, so the
    header wait keeps the call's share of the deadline and the body waits ``read_timeout``
    (tests/integration/test_etcd_client.py pins this: an idle watch outlives the deadline)."""
    request.extensions["timeout"]["read"] = read_timeout
