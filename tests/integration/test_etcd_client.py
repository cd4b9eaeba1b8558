"""The etcd client against real etcd servers (tests/support/etcd.py): one member for the
key, lease, transaction, watch, auth and TLS behaviour; three members for what a cluster
does when members stop, die or hang."""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from failover.errors import StoreError
from failover.store.etcd_client import (
    Compare,
    EtcdAuthFailed,
    EtcdClient,
    EtcdCompacted,
    EtcdLeaseNotFound,
    EtcdOutcomeUnknown,
    PutOp,
    RangeOp,
    RangeResult,
    WatchEvent,
)
from tests.conftest import wait_for

if TYPE_CHECKING:  # imported at run time by pytest_plugins, which rewrites its asserts
    from tests.support.etcd import EtcdCluster

pytest_plugins = ["tests.support.etcd"]  # etcd_server, etcd_cluster, etcd_factory

StartEtcd = Callable[..., "EtcdCluster"]


@pytest.fixture
def client(etcd_server: EtcdCluster, request: pytest.FixtureRequest) -> Any:
    with etcd_server.client(timeout=2.0) as c:
        c.delete_range(request.node.name.encode() + b"/", prefix=True)
        yield c


def key(request: pytest.FixtureRequest, name: str) -> bytes:
    return f"{request.node.name}/{name}".encode()


# -- keys and transactions ----------------------------------------------------------------------
def test_put_range_and_delete(client: EtcdClient, request: pytest.FixtureRequest) -> None:
    first = client.put(key(request, "a"), b"1")
    second = client.put(key(request, "a"), b"2", prev_kv=True)
    client.put(key(request, "b"), b"\x00\xff")
    assert second.revision == first.revision + 1
    assert second.prev_kv is not None and second.prev_kv.value == b"1"
    a = client.get(key(request, "a"))
    assert a is not None and (a.value, a.version, a.create_revision, a.mod_revision) == (
        b"2", 2, first.revision, second.revision)

    everything = client.range(key(request, ""), prefix=True, sort_order="DESCEND", sort_target="KEY")
    assert [kv.key for kv in everything.kvs] == [key(request, "b"), key(request, "a")]
    assert everything.kvs[0].value == b"\x00\xff"
    limited = client.range(key(request, ""), prefix=True, limit=1, keys_only=True)
    assert (len(limited.kvs), limited.count, limited.more, limited.kvs[0].value) == (1, 2, True, b"")
    assert client.range(key(request, ""), prefix=True, count_only=True).count == 2
    assert client.range(key(request, "a"), revision=first.revision).kvs[0].value == b"1"

    deleted = client.delete_range(key(request, ""), prefix=True, prev_kv=True)
    assert deleted.deleted == 2 and {kv.key for kv in deleted.prev_kvs} == {key(request, "a"), key(request, "b")}
    assert client.get(key(request, "a")) is None
    assert client.delete_range(key(request, "a")).deleted == 0


def test_create_revision_zero_lets_exactly_one_of_two_racers_win(etcd_server: EtcdCluster,
                                                                 request: pytest.FixtureRequest) -> None:
    clients = [etcd_server.client(), etcd_server.client()]
    for round_ in range(20):
        leader = key(request, f"leader-{round_}")
        barrier = threading.Barrier(2)
        results: dict[str, Any] = {}

        def race(name: str, c: EtcdClient, leader: bytes = leader, barrier: threading.Barrier = barrier,
                 results: dict[str, Any] = results) -> None:
            barrier.wait()
            results[name] = c.txn([Compare.create(leader, "==", 0)], [PutOp(leader, name.encode())],
                                  [RangeOp(leader)])

        threads = [threading.Thread(target=race, args=(name, c)) for name, c in zip(("east", "west"), clients,
                                                                                      strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        winners = [name for name, r in results.items() if r.succeeded]
        assert len(results) == 2 and len(winners) == 1, results
        loser = results["west" if winners == ["east"] else "east"]
        seen = loser.responses[0]
        assert isinstance(seen, RangeResult) and seen.kvs[0].value == winners[0].encode()
        # The winner's write created the key: its create revision is the fencing token.
        assert seen.kvs[0].create_revision == results[winners[0]].revision
    for c in clients:
        c.close()


def test_a_failed_compare_runs_the_failure_branch(client: EtcdClient, request: pytest.FixtureRequest) -> None:
    k = key(request, "k")
    put = client.put(k, b"v1")
    stale = client.txn([Compare.mod(k, "==", put.revision - 1)], [PutOp(k, b"stale")], [RangeOp(k)])
    assert not stale.succeeded
    fresh = client.txn([Compare.mod(k, "==", put.revision), Compare.value(k, "==", b"v1")], [PutOp(k, b"v2")])
    assert fresh.succeeded and fresh.revision == put.revision + 1
    assert client.txn([Compare.value(key(request, "missing"), "!=", b"x")]).succeeded is False


# -- leases ---------------------------------------------------------------------------------------
def test_a_lease_keeps_its_key_while_renewed_and_its_expiry_deletes_it(client: EtcdClient,
                                                                      request: pytest.FixtureRequest) -> None:
    k = key(request, "observer")
    lease = client.lease_grant(2)
    assert lease.ttl >= 2
    client.put(k, b"up", lease=lease.id)
    assert client.get(k) is not None and client.get(k).lease == lease.id  # type: ignore[union-attr]
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # outlive the TTL by renewing
        assert client.lease_keepalive(lease.id) >= 2
        time.sleep(0.3)  # the pace of a holder's keepalives, not a wait for a condition
    info = client.lease_time_to_live(lease.id, keys=True)
    assert info.keys == (k,) and 0 < info.ttl <= info.granted_ttl
    assert client.get(k) is not None

    wait_for(lambda: client.get(k) is None, 10, "the leased key deleted after the lease expired")
    with pytest.raises(EtcdLeaseNotFound):
        client.lease_keepalive(lease.id)
    with pytest.raises(EtcdLeaseNotFound):
        client.lease_time_to_live(lease.id)
    with pytest.raises(EtcdLeaseNotFound):
        client.put(k, b"again", lease=lease.id)


def test_revoking_a_lease_deletes_its_keys_at_once(client: EtcdClient, request: pytest.FixtureRequest) -> None:
    lease = client.lease_grant(60)
    client.put(key(request, "k"), b"v", lease=lease.id)
    client.lease_revoke(lease.id)
    assert client.get(key(request, "k")) is None
    with pytest.raises(EtcdLeaseNotFound):
        client.lease_revoke(lease.id)


# -- watches --------------------------------------------------------------------------------------
def collect(watch: Any, count: int) -> list[WatchEvent]:
    events: list[WatchEvent] = []
    for event in watch:
        events.append(event)
        if len(events) == count:
            break
    return events


def test_a_watch_sees_a_put_and_a_delete_and_resumes_without_loss(client: EtcdClient,
                                                                   request: pytest.FixtureRequest) -> None:
    prefix = key(request, "")
    with client.watch(prefix, prefix=True, prev_kv=True, timeout=5) as watch:
        put = client.put(key(request, "a"), b"1")
        client.delete_range(key(request, "a"))
        events = collect(watch, 2)
    assert [(e.type, e.kv.key) for e in events] == [("PUT", key(request, "a")), ("DELETE", key(request, "a"))]
    assert events[0].kv.value == b"1" and events[0].kv.mod_revision == put.revision
    assert events[1].prev_kv is not None and events[1].prev_kv.value == b"1"

    client.put(key(request, "b"), b"2")  # while nobody watches
    with client.watch(prefix, prefix=True, start_revision=watch.next_revision, timeout=5) as again:
        assert [(e.type, e.kv.key, e.kv.value) for e in collect(again, 1)] == [("PUT", key(request, "b"), b"2")]


def test_an_idle_watch_outlives_the_call_deadline(etcd_server: EtcdCluster, request: pytest.FixtureRequest) -> None:
    k = key(request, "late")
    with etcd_server.client(timeout=0.5) as quick, quick.watch(k, timeout=5) as watch:
        writer = threading.Timer(1.5, lambda: quick.put(k, b"late"))  # three deadlines later
        writer.start()
        events = collect(watch, 1)
        writer.join()
    assert [e.kv.value for e in events] == [b"late"] and not watch.timed_out


def test_a_watch_times_out_and_closes_from_another_thread(client: EtcdClient, request: pytest.FixtureRequest) -> None:
    start = time.monotonic()
    quiet = client.watch(key(request, "quiet"), timeout=0.3)
    assert list(quiet) == [] and quiet.timed_out
    assert time.monotonic() - start < 2

    endless = client.watch(key(request, "quiet"), timeout=None)
    threading.Timer(0.3, endless.close).start()
    start = time.monotonic()
    assert list(endless) == [] and not endless.timed_out
    assert time.monotonic() - start < 2


def test_compacted_revisions_raise_compacted(etcd_server: EtcdCluster, client: EtcdClient,
                                            request: pytest.FixtureRequest) -> None:
    k = key(request, "k")
    first = client.put(k, b"1")
    last = client.put(k, b"2")
    response = etcd_server.members[0].http("POST", "/v3/kv/compaction", json={"revision": str(last.revision),
                                                                             "physical": True})
    assert response.status_code == 200, response.text
    with pytest.raises(EtcdCompacted):
        client.range(k, revision=first.revision)
    with pytest.raises(EtcdCompacted) as caught, client.watch(k, start_revision=first.revision, timeout=5) as watch:
        list(watch)
    assert caught.value.compact_revision == last.revision


# -- auth and TLS ---------------------------------------------------------------------------------
def gateway_call(cluster: EtcdCluster, path: str, body: dict[str, Any], token: str | None = None) -> Any:
    headers = {"Authorization": token} if token else {}
    response = cluster.members[0].http("POST", "/v3" + path, json=body, headers=headers)
    return response.json()


def test_auth_tokens_are_fetched_and_renewed_and_secrets_stay_out(etcd_factory: StartEtcd) -> None:
    password = "pw-" + base64.b32encode(b"failover-etcd").decode()
    cluster = etcd_factory(extra_args=("--auth-token-ttl", "1"))
    gateway_call(cluster, "/auth/user/add", {"name": "root", "password": password})
    gateway_call(cluster, "/auth/role/add", {"name": "root"})
    gateway_call(cluster, "/auth/user/grant", {"user": "root", "role": "root"})
    gateway_call(cluster, "/auth/enable", {})
    with cluster.client(user="root", password=password) as c:
        c.put(b"k", b"v")
        token = c._conn._token  # the client's current token, to see it expire at the server
        assert token
        # Each use renews a simple token, so look less often than its 1 s TTL.
        wait_for(lambda: "error" in gateway_call(cluster, "/kv/range", {"key": "aw=="}, token), 15,
                 "the token expired at the server", interval=2.5)
        got = c.get(b"k")  # authenticates again by itself
        assert got is not None and got.value == b"v" and c._conn._token != token
        with c.watch(b"k", timeout=5) as watch:
            c.put(b"k", b"w")
            assert [e.kv.value for e in collect(watch, 1)] == [b"w"]
    failures: list[str] = []
    for user, secret in (("root", "wrong-" + password), (None, None)):
        with pytest.raises(EtcdAuthFailed) as caught, cluster.client(user=user, password=secret) as c:
            c.get(b"k")
        failures.append(str(caught.value))
    assert "user 'root' was refused" in failures[0] and "user name is empty" in failures[1]
    assert all(password not in f for f in failures)


def test_tls_with_a_client_certificate(etcd_factory: StartEtcd) -> None:
    cluster = etcd_factory(tls=True)
    assert cluster.tls is not None and cluster.endpoints[0].startswith("https://")
    with cluster.client() as c:
        c.put(b"k", b"v")
        assert c.get(b"k") is not None
    with pytest.raises(StoreError, match="TLS refused"), EtcdClient(
            cluster.endpoints, ca_file=str(cluster.tls.ca_file), timeout=1) as c:
        c.get(b"k")  # no client certificate
    with pytest.raises(StoreError, match="certificate verify failed"), EtcdClient(
            cluster.endpoints, timeout=1) as c:
        c.get(b"k")  # the system CAs do not know this one


# -- a three-member cluster -----------------------------------------------------------------------
def exercise(c: EtcdClient, name: bytes) -> None:
    """A bit of everything the coordinators do."""
    lease = c.lease_grant(5)
    assert c.txn([Compare.create(name, "==", 0)], [PutOp(name, b"me", lease=lease.id)]).succeeded
    assert c.lease_keepalive(lease.id) >= 5
    kv = c.get(name)
    assert kv is not None and kv.lease == lease.id
    c.lease_revoke(lease.id)
    assert c.get(name) is None


def test_the_cluster_keeps_answering_with_one_member_stopped(etcd_cluster: EtcdCluster) -> None:
    with etcd_cluster.client(timeout=2.0) as c:
        exercise(c, b"before")
        # The first endpoint, which the client prefers, dies; then the leader is stopped too
        # (after the first comes back) and a new one is elected.
        etcd_cluster.members[0].kill()
        etcd_cluster.wait_healthy()
        exercise(c, b"member-0-dead")
        etcd_cluster.heal()
        etcd_cluster.leader().stop()
        etcd_cluster.wait_healthy()
        exercise(c, b"leader-stopped")
        with c.watch(b"w", timeout=5) as watch:
            c.put(b"w", b"1")
            assert [e.kv.value for e in collect(watch, 1)] == [b"1"]


def test_a_hung_member_costs_reads_nothing_and_a_write_at_most_once(etcd_cluster: EtcdCluster) -> None:
    # A follower: a hung leader is another story (no reads or writes until the next election).
    leader = etcd_cluster.leader()
    hung = next(m for m in etcd_cluster.members if m is not leader)
    endpoints = [hung.endpoint, *(e for e in etcd_cluster.endpoints if e != hung.endpoint)]
    with EtcdClient(endpoints, timeout=1.0) as reader, EtcdClient(endpoints, timeout=1.0) as writer:
        reader.get(b"k")
        writer.get(b"k")  # both now prefer the member about to hang and know its API prefix
        hung.pause()
        start = time.monotonic()
        assert reader.get(b"k") is None  # asked of the next member within the deadline
        assert time.monotonic() - start < 1.2
        with pytest.raises(EtcdOutcomeUnknown, match=re.escape(hung.endpoint)):
            writer.put(b"k", b"v")  # sent, unanswered: not sent again elsewhere
        writer.put(b"k", b"v")  # the next call starts with the next member
        kv = reader.get(b"k")
        assert kv is not None and kv.value == b"v"


def test_without_quorum_every_call_fails_within_its_deadline(etcd_cluster: EtcdCluster) -> None:
    timeout = 1.0
    with etcd_cluster.client(timeout=timeout) as c:
        lease = c.lease_grant(30)
        c.put(b"q", b"before")
        survivor = etcd_cluster.members[2]
        with EtcdClient([survivor.endpoint]) as local:  # a quorum has it; the survivor may lag
            wait_for(lambda: local.get(b"q", serializable=True) is not None, 10, "the survivor has the write")
        for member in etcd_cluster.members[:2]:
            member.pause()
        calls: list[tuple[str, Callable[[], object]]] = [
            ("get", lambda: c.get(b"q")),
            ("put", lambda: c.put(b"q", b"during")),
            ("txn", lambda: c.txn([Compare.create(b"L", "==", 0)], [PutOp(b"L", b"me")])),
            ("lease_grant", lambda: c.lease_grant(5)),
            ("delete_range", lambda: c.delete_range(b"q")),
            ("lease_keepalive", lambda: c.lease_keepalive(lease.id)),
        ]
        for name, call in calls:
            start = time.monotonic()
            with pytest.raises(StoreError) as caught:
                call()
            elapsed = time.monotonic() - start
            assert elapsed < timeout + 0.3, f"{name} took {elapsed:.2f}s"
            assert str(caught.value).startswith("etcd"), caught.value
        # A serializable read is answered from the survivor's own copy, quorum or not.
        kv = c.get(b"q", serializable=True)
        assert kv is not None and kv.value == b"before"
        for member in etcd_cluster.members[:2]:
            member.resume()
        etcd_cluster.wait_healthy()
        wait_for(lambda: _answers(c), 10, "the cluster answers again")
        # The writes that went unanswered were "unknown", not "failed": a paused member still
        # held them and may have applied them once it ran again.
        kv = c.get(b"q")
        assert kv is None or kv.value in (b"before", b"during")


def _answers(c: EtcdClient) -> bool:
    try:
        c.put(b"after", b"1")
    except StoreError:
        return False
    return True


def test_a_watch_on_a_killed_member_breaks_and_reopens_elsewhere(etcd_cluster: EtcdCluster) -> None:
    with etcd_cluster.client(timeout=2.0) as c:
        watch = c.watch(b"w", timeout=10)
        member = next(m for m in etcd_cluster.members if m.endpoint == watch.endpoint)
        member.kill()
        with pytest.raises(StoreError, match=re.escape(member.endpoint)):
            list(watch)
        etcd_cluster.wait_healthy()  # it may have been the leader: writes wait for the next one
        with c.watch(b"w", start_revision=watch.next_revision, timeout=10) as again:
            assert again.endpoint != member.endpoint
            c.put(b"w", b"after")
            assert [e.kv.value for e in collect(again, 1)] == [b"after"]
