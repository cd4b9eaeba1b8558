"""The etcd client against ``httpx.MockTransport``: the wire encoding, the API prefix, the
deadline shared by endpoints, which failures move on to the next endpoint, the error
mapping, auth tokens, and that no secret reaches a message or a log line. The same client
against a real etcd: tests/integration/test_etcd_client.py."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from failover.errors import StoreError
from failover.store.etcd_client import (
    Compare,
    DeleteOp,
    EtcdAuthFailed,
    EtcdClient,
    EtcdCompacted,
    EtcdError,
    EtcdLeaseNotFound,
    EtcdOutcomeUnknown,
    EtcdUnavailable,
    KeyValue,
    PutOp,
    PutResult,
    RangeOp,
    RangeResult,
    prefix_range_end,
)

A, B, C = "http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://10.0.0.3:2379"
V34 = {"etcdserver": "3.4.23", "etcdcluster": "3.4.0"}
HEADER = {"header": {"cluster_id": "1", "member_id": "2", "revision": "7", "raft_term": "3"}}
PASSWORD, TOKEN = "s3cret-Pa55", "tOkEn.XyZ.42"

Handler = Callable[[httpx.Request], Any]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Gateway:
    """A scripted etcd gateway per endpoint: ``routes[endpoint][path]`` answers a request
    (a Response, a JSON-able dict, or an exception to raise), ``/version`` says 3.4 unless
    told otherwise, an endpoint without routes refuses connections; every request is recorded."""

    def __init__(self) -> None:
        self.routes: dict[str, dict[str, Handler]] = {}
        self.requests: list[tuple[str, str, Any, httpx.Request]] = []

    def on(self, endpoint: str, path: str, answer: Any) -> None:
        self.routes.setdefault(endpoint, {})[path] = answer if callable(answer) else (lambda request: answer)

    def handle(self, request: httpx.Request) -> httpx.Response:
        endpoint = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        body = json.loads(request.content) if request.content else None
        self.requests.append((endpoint, request.url.path, body, request))
        routes = self.routes.get(endpoint, {})
        answer = routes.get(request.url.path)
        if answer is None and routes and request.url.path == "/version":
            answer = lambda request: V34  # noqa: E731
        if answer is None:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        result = answer(request)
        if isinstance(result, BaseException):
            raise result
        return result if isinstance(result, httpx.Response) else httpx.Response(200, json=result)

    def paths(self, endpoint: str | None = None) -> list[str]:
        return [path for e, path, _, _ in self.requests if endpoint in (None, e)]

    def client(self, endpoints: list[str], **kwargs: Any) -> EtcdClient:
        return EtcdClient(endpoints, transport=httpx.MockTransport(self.handle), **kwargs)


def hang(request: httpx.Request) -> Exception:
    """A member that accepts the connection and never answers: it uses up the read timeout
    the client gave this request, as a paused etcd does."""
    time.sleep(request.extensions["timeout"]["read"])
    return httpx.ReadTimeout("timed out", request=request)


def refuse(request: httpx.Request) -> Exception:
    return httpx.ConnectError("[Errno 111] Connection refused", request=request)


@pytest.fixture
def gw() -> Gateway:
    return Gateway()


# -- encoding -------------------------------------------------------------------------------------
def test_put_and_range_speak_base64_and_int64_strings(gw: Gateway) -> None:
    gw.on(A, "/v3/kv/put", {**HEADER, "prev_kv": {"key": b64(b"k"), "value": b64(b"old"), "create_revision": "5",
                                                  "mod_revision": "6", "version": "2", "lease": "99"}})
    gw.on(A, "/v3/kv/range", {**HEADER, "count": "2", "more": True, "kvs": [
        {"key": b64(b"k/\x00\xff"), "value": b64(b"\x01v"), "create_revision": "9223372036854775807",
         "mod_revision": "6", "version": "1"},
        {"key": b64(b"k/empty"), "create_revision": "3", "mod_revision": "3", "version": "1"},
    ]})
    client = gw.client([A])
    put = client.put(b"k", b"\x00new", lease=7_000_000_000_000_000_001, prev_kv=True)
    assert gw.requests[-1][2] == {"key": b64(b"k"), "value": b64(b"\x00new"), "lease": "7000000000000000001",
                                  "prev_kv": True}
    assert put == PutResult(7, KeyValue(b"k", b"old", 5, 6, 2, 99))

    result = client.range(b"k/", prefix=True, limit=1, sort_order="DESCEND", sort_target="MOD", keys_only=True)
    assert gw.requests[-1][2] == {"key": b64(b"k/"), "range_end": b64(b"k0"), "limit": "1",
                                  "sort_order": "DESCEND", "sort_target": "MOD", "keys_only": True}
    assert result == RangeResult((KeyValue(b"k/\x00\xff", b"\x01v", 2**63 - 1, 6, 1, 0),
                                  KeyValue(b"k/empty", b"", 3, 3, 1, 0)), 7, 2, True)


@pytest.mark.parametrize(("prefix", "end"), [
    (b"a/", b"a0"), (b"a\xff", b"b"), (b"a\xff\xff", b"b"), (b"\xff\xff", b"\0"), (b"", b"\0"),
])
def test_prefix_range_end(prefix: bytes, end: bytes) -> None:
    assert prefix_range_end(prefix) == end


def test_txn_encodes_every_compare_and_decodes_the_branch_that_ran(gw: Gateway) -> None:
    gw.on(A, "/v3/kv/txn", {**HEADER, "responses": [
        {"response_range": {"header": {"revision": "7"}, "kvs": [
            {"key": b64(b"L"), "value": b64(b"west"), "create_revision": "4", "mod_revision": "4", "version": "1",
             "lease": "12"}], "count": "1"}},
        {"response_delete_range": {"header": {"revision": "7"}}},
    ]})
    compare = [Compare.create(b"L", "==", 0), Compare.version(b"L", "<", 3), Compare.mod(b"L", ">", 10),
               Compare.value(b"L", "!=", b"east"), Compare.lease(b"L", "==", 12)]
    result = gw.client([A]).txn(compare, [PutOp(b"L", b"east", lease=12)], [RangeOp(b"L"), DeleteOp(b"x", b"y")])
    body = gw.requests[-1][2]
    assert body["compare"] == [
        {"key": b64(b"L"), "target": "CREATE", "result": "EQUAL", "create_revision": "0"},
        {"key": b64(b"L"), "target": "VERSION", "result": "LESS", "version": "3"},
        {"key": b64(b"L"), "target": "MOD", "result": "GREATER", "mod_revision": "10"},
        {"key": b64(b"L"), "target": "VALUE", "result": "NOT_EQUAL", "value": b64(b"east")},
        {"key": b64(b"L"), "target": "LEASE", "result": "EQUAL", "lease": "12"},
    ]
    assert body["success"] == [{"request_put": {"key": b64(b"L"), "value": b64(b"east"), "lease": "12"}}]
    assert body["failure"] == [{"request_range": {"key": b64(b"L")}},
                               {"request_delete_range": {"key": b64(b"x"), "range_end": b64(b"y")}}]
    assert not result.succeeded and result.revision == 7
    assert result.responses[0] == RangeResult((KeyValue(b"L", b"west", 4, 4, 1, 12),), 7, 1, False)
    assert result.responses[1].deleted == 0  # type: ignore[union-attr]


def test_compare_refuses_an_operand_of_the_wrong_kind() -> None:
    with pytest.raises(TypeError):
        Compare(b"k", "VALUE", "==", 1)
    with pytest.raises(TypeError):
        Compare(b"k", "CREATE", "==", b"0")
    with pytest.raises(ValueError, match="bad compare"):
        Compare(b"k", "CREATE", "=~", 0)  # type: ignore[arg-type]


# -- the API prefix ---------------------------------------------------------------------------
@pytest.mark.parametrize(("cluster", "prefix"), [("3.5.0", "/v3"), ("3.4.0", "/v3"), ("3.3.0", "/v3beta"),
                                                 ("3.2.0", "/v3alpha"), ("3.0.0", "/v3alpha")])
def test_the_api_prefix_follows_the_cluster_version_and_is_asked_once(gw: Gateway, cluster: str,
                                                                      prefix: str) -> None:
    gw.on(A, "/version", {"etcdserver": "3.5.9", "etcdcluster": cluster})
    gw.on(A, f"{prefix}/kv/range", HEADER)
    client = gw.client([A])
    assert client.get(b"k") is None
    assert client.get(b"k") is None
    assert gw.paths() == ["/version", f"{prefix}/kv/range", f"{prefix}/kv/range"]


def test_an_undecided_cluster_version_uses_the_server_version_and_asks_again(gw: Gateway) -> None:
    gw.on(A, "/version", {"etcdserver": "3.4.23", "etcdcluster": "not_decided"})
    gw.on(A, "/v3/kv/range", HEADER)
    client = gw.client([A])
    client.get(b"k")
    client.get(b"k")
    assert gw.paths().count("/version") == 2


@pytest.mark.parametrize("answer", [{"etcdserver": "2.3.8", "etcdcluster": "2.3.0"}, {"something": "else"}])
def test_what_is_not_etcd_3_is_refused(gw: Gateway, answer: dict[str, str]) -> None:
    gw.on(A, "/version", answer)
    with pytest.raises(EtcdError, match=f"etcd {A}: version .* not supported"):
        gw.client([A]).get(b"k")


# -- endpoints and the deadline -----------------------------------------------------------------
def test_a_refused_endpoint_moves_on_and_the_last_good_one_goes_first(gw: Gateway) -> None:
    gw.on(B, "/v3/kv/range", HEADER)
    gw.on(B, "/v3/kv/put", HEADER)
    client = gw.client([A, B, C])
    client.get(b"k")
    assert [e for e, *_ in gw.requests] == [A, B, B]  # A refused /version, B answered
    gw.requests.clear()
    client.put(b"k", b"v")  # a write that never reached A may go elsewhere; here B is first anyway
    assert [e for e, *_ in gw.requests] == [B]


def test_the_deadline_is_shared_and_never_exceeded(gw: Gateway) -> None:
    for endpoint in (A, B):
        gw.on(endpoint, "/version", hang)
    gw.on(C, "/v3/kv/range", HEADER)
    client = gw.client([A, B, C], timeout=0.6)
    start = time.monotonic()
    assert client.get(b"k") is None
    assert time.monotonic() - start < 0.6
    shares = [r.extensions["timeout"]["read"] for e, _, _, r in gw.requests if e in (A, B)]
    assert shares[0] == pytest.approx(0.2, abs=0.05)  # a third of 0.6 s for each of three
    assert shares[1] == pytest.approx(0.2, abs=0.05)  # half of the 0.4 s left

    gw.on(C, "/v3/kv/range", hang)
    start = time.monotonic()
    with pytest.raises(EtcdUnavailable) as caught:
        client.get(b"k")
    assert time.monotonic() - start < 0.6 + 0.1
    assert all(e in str(caught.value) for e in (A, B, C)), caught.value
    assert "within 0.6s" in str(caught.value)


def test_a_write_that_got_no_answer_is_not_sent_again(gw: Gateway) -> None:
    gw.on(A, "/v3/kv/txn", hang)
    gw.on(B, "/v3/kv/txn", {**HEADER, "succeeded": True, "responses": [{"response_put": HEADER}]})
    client = gw.client([A, B], timeout=0.4)
    with pytest.raises(EtcdOutcomeUnknown, match=f"etcd {A}: txn .* may or may not have been applied"):
        client.txn([Compare.create(b"L", "==", 0)], [PutOp(b"L", b"me")])
    assert "/v3/kv/txn" not in gw.paths(B)
    # The next call starts with B rather than the endpoint that hung.
    assert client.txn([Compare.create(b"L", "==", 0)], [PutOp(b"L", b"me")]).succeeded
    assert gw.requests[-1][0] == B


def test_a_read_that_got_no_answer_is_asked_elsewhere(gw: Gateway) -> None:
    gw.on(A, "/v3/kv/range", hang)
    gw.on(B, "/v3/kv/range", HEADER)
    assert gw.client([A, B], timeout=0.4).get(b"k") is None
    assert gw.paths(B) == ["/version", "/v3/kv/range"]


@pytest.mark.parametrize(("status", "body"), [
    (503, {"error": "etcdserver: no leader", "message": "etcdserver: no leader", "code": 14}),
    (503, {"error": "etcdserver: request timed out", "message": "etcdserver: request timed out", "code": 14}),
    (502, "<html>bad gateway</html>"),
])
def test_a_member_without_quorum_sends_reads_elsewhere_and_writes_to_unknown(gw: Gateway, status: int,
                                                                             body: Any) -> None:
    answer = httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=body)
    gw.on(A, "/v3/kv/range", answer)
    gw.on(A, "/v3/kv/put", answer)
    gw.on(B, "/v3/kv/range", HEADER)
    assert gw.client([A, B]).get(b"k") is None
    with pytest.raises(EtcdOutcomeUnknown):
        gw.client([A, B]).put(b"k", b"v")


# -- error mapping ------------------------------------------------------------------------------
def grpc(status: int, message: str, code: int) -> httpx.Response:
    return httpx.Response(status, json={"error": message, "message": message, "code": code})


@pytest.mark.parametrize(("answer", "error", "words"), [
    (grpc(404, "etcdserver: requested lease not found", 5), EtcdLeaseNotFound, "requested lease not found"),
    (grpc(400, "etcdserver: mvcc: required revision has been compacted", 11), EtcdCompacted, "compacted"),
    (grpc(400, "etcdserver: mvcc: required revision is a future revision", 11), EtcdError, "OutOfRange"),
    (grpc(500, "etcdserver: something new", 2), EtcdError, "something new (gRPC Unknown)"),
    (grpc(400, "etcdserver: user name is empty", 3), EtcdAuthFailed, "user name is empty"),
    (grpc(403, "etcdserver: permission denied", 7), EtcdAuthFailed, "permission denied"),
    (httpx.Response(404, text="Not Found"), EtcdError, "HTTP 404 (is this etcd 3 with its JSON gateway?)"),
    (httpx.Response(418, text="teapot"), EtcdError, "unexpected HTTP 418"),
    (httpx.Response(200, text="{not json"), EtcdError, "malformed JSON"),
    (httpx.Response(200, json=["a", "list"]), EtcdError, "unexpected JSON"),
    (httpx.Response(200, json={"kvs": []}), EtcdError, "malformed answer"),  # no header
    (httpx.Response(200, json={**HEADER, "kvs": [{"key": "!!not base64"}]}), EtcdError, "malformed answer"),
    (httpx.Response(200, json={**HEADER, "count": {"x": 1}}), EtcdError, "malformed answer"),
])
def test_every_failure_is_a_store_error_naming_the_endpoint(gw: Gateway, answer: httpx.Response,
                                                            error: type[Exception], words: str) -> None:
    gw.on(A, "/v3/kv/range", answer)
    with pytest.raises(StoreError) as caught:
        gw.client([A]).range(b"k")
    assert type(caught.value) is error
    assert f"etcd {A}: " in str(caught.value) and words in str(caught.value), caught.value


def test_definite_refusals_are_not_asked_of_the_next_endpoint(gw: Gateway) -> None:
    gw.on(A, "/v3/kv/range", grpc(400, "etcdserver: mvcc: required revision has been compacted", 11))
    gw.on(B, "/v3/kv/range", HEADER)
    with pytest.raises(EtcdCompacted):
        gw.client([A, B]).range(b"k", revision=2)
    assert gw.paths(B) == []


def test_a_lease_that_is_gone_raises_lease_not_found(gw: Gateway) -> None:
    # Over the gateway, keepalive is a stream: one {"result": ...} line; a gone lease has no TTL.
    gw.on(A, "/v3/lease/keepalive", httpx.Response(200, text=json.dumps({"result": {**HEADER, "ID": "9"}}) + "\n"))
    gw.on(A, "/v3/lease/timetolive", {**HEADER, "ID": "9", "TTL": "-1"})
    client = gw.client([A])
    with pytest.raises(EtcdLeaseNotFound, match=f"etcd {A}: lease keepalive 9: the lease has expired"):
        client.lease_keepalive(9)
    with pytest.raises(EtcdLeaseNotFound):
        client.lease_time_to_live(9)
    gw.on(A, "/v3/lease/keepalive", httpx.Response(200, text=json.dumps({"result": {**HEADER, "TTL": "5"}})))
    gw.on(A, "/v3/lease/timetolive", {**HEADER, "ID": "9", "TTL": "4", "grantedTTL": "5", "keys": [b64(b"L")]})
    assert client.lease_keepalive(9) == 5
    info = client.lease_time_to_live(9, keys=True)
    assert (info.ttl, info.granted_ttl, info.keys) == (4, 5, (b"L",))


def test_an_error_inside_a_stream_after_200_is_mapped(gw: Gateway) -> None:
    line = {"error": {"grpc_code": 5, "http_code": 404, "message": "etcdserver: requested lease not found"}}
    gw.on(A, "/v3/lease/keepalive", httpx.Response(200, text=json.dumps(line) + "\n"))
    with pytest.raises(EtcdLeaseNotFound):
        gw.client([A]).lease_keepalive(9)


@pytest.mark.parametrize("endpoint", ["10.0.0.1:2379", "ftp://10.0.0.1:21", "http://10.0.0.1:2379/v3", "http://"])
def test_malformed_endpoints_are_refused(endpoint: str) -> None:
    with pytest.raises(EtcdError, match="endpoint"):
        EtcdClient([endpoint])


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"endpoints": []}, "no endpoint"),
    ({"timeout": 0}, "timeout must be positive"),
    ({"user": "root"}, "both a user and a password"),
    ({"ca_file": "/nonexistent/ca.pem"}, "TLS files"),
])
def test_bad_settings_are_store_errors(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(EtcdError, match=words):
        EtcdClient(**{"endpoints": [A], **kwargs})


def test_a_call_on_a_closed_client_is_a_store_error(gw: Gateway) -> None:
    gw.on(A, "/v3/kv/range", HEADER)
    client = gw.client([A])
    client.get(b"k")
    client.close()
    with pytest.raises(EtcdError, match="closed"):
        client.get(b"k")


# -- auth -------------------------------------------------------------------------------------------
class Auth:
    """etcd with auth on: tokens are handed out by /auth/authenticate and can be revoked."""

    def __init__(self, gw: Gateway) -> None:
        self.valid: set[str] = set()
        self.issued = 0
        gw.on(A, "/v3/auth/authenticate", self.authenticate)
        gw.on(A, "/v3/kv/range", self.range)

    def authenticate(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if (body["name"], body["password"]) != ("root", PASSWORD):
            return grpc(400, "etcdserver: authentication failed, invalid user ID or password", 3)
        self.issued += 1
        token = f"{TOKEN}.{self.issued}"
        self.valid.add(token)
        return httpx.Response(200, json={**HEADER, "token": token})

    def range(self, request: httpx.Request) -> httpx.Response:
        token = request.headers.get("Authorization")
        if token is None:
            return grpc(400, "etcdserver: user name is empty", 3)
        if token not in self.valid:
            return grpc(401, "etcdserver: invalid auth token", 16)
        return httpx.Response(200, json=HEADER)


def test_a_token_is_fetched_once_sent_in_the_header_and_renewed_when_invalid(gw: Gateway) -> None:
    auth = Auth(gw)
    client = gw.client([A], user="root", password=PASSWORD)
    client.get(b"k")
    client.get(b"k")
    assert auth.issued == 1
    assert [r.headers.get("Authorization") for _, p, _, r in gw.requests if p == "/v3/kv/range"] == [
        f"{TOKEN}.1", f"{TOKEN}.1"]
    auth.valid.clear()  # the token expired at the server
    client.get(b"k")
    assert auth.issued == 2
    assert gw.paths()[-3:] == ["/v3/kv/range", "/v3/auth/authenticate", "/v3/kv/range"]


def test_auth_that_is_not_enabled_is_asked_about_once(gw: Gateway) -> None:
    gw.on(A, "/v3/auth/authenticate", grpc(400, "etcdserver: authentication is not enabled", 9))
    gw.on(A, "/v3/kv/range", HEADER)
    client = gw.client([A], user="root", password=PASSWORD)
    client.get(b"k")
    client.get(b"k")
    assert gw.paths().count("/v3/auth/authenticate") == 1
    assert all("Authorization" not in r.headers for *_, r in gw.requests)


def test_no_secret_reaches_a_message_a_repr_or_a_log(gw: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []

    def failing(call: Callable[[], object]) -> None:
        with pytest.raises(StoreError) as caught:
            call()
        messages.append(str(caught.value))

    auth = Auth(gw)
    failing(lambda: gw.client([A], user="root", password="wrong-" + PASSWORD).get(b"k"))
    assert "'root'" in messages[-1] and "wrong user or password" in messages[-1]
    client = gw.client([A, B], user="root", password=PASSWORD)
    client.get(b"k")
    auth.valid.clear()
    auth.authenticate = lambda request: httpx.Response(200, text=f"garbage {TOKEN} {PASSWORD}")  # type: ignore[method-assign]
    gw.on(A, "/v3/auth/authenticate", auth.authenticate)
    failing(lambda: client.get(b"k"))
    gw.on(A, "/v3/kv/range", hang)
    failing(lambda: EtcdClient([A], timeout=0.2, user="root", password=PASSWORD,
                               transport=httpx.MockTransport(gw.handle)).get(b"k"))
    failing(lambda: EtcdClient([f"http://root:{PASSWORD}@10.0.0.9:2379"], user="root", password=PASSWORD))
    messages.append(repr(client))
    messages.extend(record.getMessage() for record in caplog.records)
    for text in messages:
        assert PASSWORD not in text and TOKEN not in text, text


# -- watch ----------------------------------------------------------------------------------------
def stream(*messages: dict[str, Any], end: bool = True) -> httpx.Response:
    def body() -> Iterator[bytes]:
        for message in messages:
            yield (json.dumps(message) + "\n").encode()
        if not end:
            raise httpx.ReadTimeout("timed out")

    return httpx.Response(200, content=body())


def event(kind: str | None, key: bytes, mod: int, value: bytes = b"") -> dict[str, Any]:
    kv = {"key": b64(key), "mod_revision": str(mod)}
    if kind != "DELETE":
        kv.update(value=b64(value), create_revision=str(mod), version="1")
    return {"kv": kv} if kind is None else {"type": kind, "kv": kv}


def test_watch_yields_puts_and_deletes_and_tracks_the_next_revision(gw: Gateway) -> None:
    created = {"result": {**HEADER, "created": True}}
    gw.on(A, "/v3/watch", lambda request: stream(
        created,
        {"result": {"header": {"revision": "8"}, "events": [event(None, b"w/a", 8, b"1")]}},
        {"result": {"header": {"revision": "9"}, "events": [event("DELETE", b"w/a", 9), event("DELETE", b"w/b", 9)]}},
        {"result": {"header": {"revision": "12"}}},  # a progress notice
        end=False,
    ))
    watch = gw.client([A]).watch(b"w/", prefix=True, prev_kv=True, timeout=1)
    assert gw.requests[-1][2] == {"create_request": {"key": b64(b"w/"), "range_end": b64(b"w0"), "prev_kv": True}}
    assert watch.next_revision == 8  # created at 7
    seen = []
    for item in watch:
        seen.append((item.type, item.kv.key, item.kv.mod_revision, item.kv.value))
        if item.kv.key == b"w/a" and item.type == "DELETE":
            assert watch.next_revision == 9  # w/b at revision 9 is still to come
    assert seen == [("PUT", b"w/a", 8, b"1"), ("DELETE", b"w/a", 9, b""), ("DELETE", b"w/b", 9, b"")]
    assert watch.timed_out and watch.closed and watch.next_revision == 13


def test_a_watch_from_a_compacted_revision_says_where_to_resume(gw: Gateway) -> None:
    gw.on(A, "/v3/watch", lambda request: stream(
        {"result": {**HEADER, "created": True}},
        {"result": {"header": {"raft_term": "2"}, "canceled": True, "compact_revision": "5"}},
    ))
    watch = gw.client([A]).watch(b"w", start_revision=2)
    assert gw.requests[-1][2]["create_request"]["start_revision"] == "2"
    with pytest.raises(EtcdCompacted) as caught:
        list(watch)
    assert caught.value.compact_revision == 5 and "revision 2 is compacted" in str(caught.value)


def test_a_watch_stream_that_ends_or_is_canceled_by_etcd_raises(gw: Gateway) -> None:
    gw.on(A, "/v3/watch", lambda request: stream({"result": {**HEADER, "created": True}}))
    with pytest.raises(EtcdUnavailable, match="the stream ended"):
        list(gw.client([A]).watch(b"w"))
    gw.on(A, "/v3/watch", lambda request: stream({"result": {**HEADER, "created": True}},
                                                 {"result": {**HEADER, "canceled": True, "cancel_reason": "x"}}))
    with pytest.raises(EtcdError, match="canceled by etcd: x"):
        list(gw.client([A]).watch(b"w"))


def test_a_closed_watch_ends_quietly(gw: Gateway) -> None:
    gw.on(A, "/v3/watch", lambda request: stream({"result": {**HEADER, "created": True}},
                                                 {"result": {**HEADER, "events": [event(None, b"w", 8)]}}))
    with gw.client([A]).watch(b"w") as watch:
        watch.close()
        assert list(watch) == [] and not watch.timed_out


def test_a_watch_refused_for_its_token_authenticates_again(gw: Gateway) -> None:
    auth = Auth(gw)

    def watch(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") not in auth.valid:
            return stream({"result": {**HEADER, "watch_id": "-1", "created": True, "canceled": True,
                                      "cancel_reason": "rpc error: code = Unauthenticated desc = "
                                                       "etcdserver: invalid auth token"}})
        return stream({"result": {**HEADER, "created": True}}, end=False)

    gw.on(A, "/v3/watch", watch)
    client = gw.client([A], user="root", password=PASSWORD)
    client.get(b"k")
    auth.valid.clear()
    assert list(client.watch(b"w", timeout=0.1)) == []
    assert auth.issued == 2


def test_a_watch_opens_on_the_next_endpoint_when_one_is_down(gw: Gateway) -> None:
    gw.on(A, "/version", refuse)
    gw.on(B, "/v3/watch", lambda request: stream({"result": {**HEADER, "created": True}}, end=False))
    watch = gw.client([A, B]).watch(b"w", timeout=0.1)
    assert watch.endpoint == B and list(watch) == [] and watch.timed_out
