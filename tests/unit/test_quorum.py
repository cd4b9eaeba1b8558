"""The voters' quorum and the leader's local deadline, without a server: the pure verdict, and
the session's rule that it stops acting before its lease can have expired at etcd."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from failover.health import voters_verdict
from failover.model import RegionHealth, Status
from failover.store._etcd_session import Session
from failover.store.etcd_client import EtcdLeaseNotFound, KeyValue, LeaseGrant, TxnResult

VOTERS = ["east", "west", "witness"]


def seen(status: Status) -> RegionHealth:
    return RegionHealth("east", status, 2 if status is Status.UP else 0, 2, 1.0, f"east is {status}")


def test_one_observer_alone_cannot_take_a_region_down() -> None:
    views = {"west": seen(Status.DOWN), "east": seen(Status.UP), "witness": seen(Status.UP)}
    verdict = voters_verdict(views, VOTERS, "east")
    assert verdict.status is Status.UP and "1/3 see it down: west" in verdict.reason


def test_a_strict_majority_of_the_configured_voters_takes_it_down() -> None:
    views = {"west": seen(Status.DOWN), "witness": seen(Status.DOWN), "east": seen(Status.UP)}
    verdict = voters_verdict(views, VOTERS, "east")
    assert verdict.status is Status.DOWN and "seen by 2/3: west, witness" in verdict.reason


def test_fewer_reports_than_a_majority_is_no_quorum_whatever_they_say() -> None:
    verdict = voters_verdict({"west": seen(Status.DOWN)}, VOTERS, "east")
    assert verdict.status is Status.UNKNOWN
    assert verdict.reason.startswith("no quorum: 1/3 observers reporting, 2 needed (silent: east, witness)")
    assert voters_verdict({}, VOTERS, "east").status is Status.UNKNOWN


def test_a_name_that_is_not_a_voter_does_not_vote() -> None:
    views = {"west": seen(Status.DOWN), "intruder": seen(Status.DOWN), "east": seen(Status.UP)}
    assert voters_verdict(views, VOTERS, "east").status is Status.UP


@given(st.dictionaries(st.sampled_from([*VOTERS, "other"]), st.sampled_from(list(Status))))
def test_down_exactly_when_a_majority_of_voters_says_so(votes: dict[str, Status]) -> None:
    verdict = voters_verdict({o: seen(s) for o, s in votes.items()}, VOTERS, "east")
    down = sum(1 for o, s in votes.items() if o in VOTERS and s is Status.DOWN)
    reporting = sum(1 for o in votes if o in VOTERS)
    assert (verdict.status is Status.DOWN) == (down >= 2)
    if reporting < 2:
        assert verdict.status is Status.UNKNOWN


class FakeEtcd:
    """Just what the session calls; the clock decides when etcd would expire the lease."""

    def __init__(self) -> None:
        self.leader: KeyValue | None = None
        self.revision = 100
        self.lease_gone = False
        self.sent: list[str] = []

    def lease_grant(self, ttl: int) -> LeaseGrant:
        self.sent.append("grant")
        self.lease_gone = False
        return LeaseGrant(7, ttl)

    def lease_keepalive(self, lease_id: int) -> int:
        self.sent.append("keepalive")
        if self.lease_gone:
            raise EtcdLeaseNotFound("gone")
        return 6

    def put(self, key: bytes, value: bytes, lease: int = 0) -> None:
        self.sent.append("put")

    def get(self, key: bytes) -> KeyValue | None:
        return self.leader

    def txn(self, compare: Any, success: Any, failure: Any = ()) -> TxnResult:
        self.sent.append("txn")
        if not compare:  # the member keys: unconditional
            if self.lease_gone:
                raise EtcdLeaseNotFound("gone")
            return TxnResult(True, self.revision, ())
        if self.leader is not None:
            return TxnResult(False, self.revision, ())
        self.revision += 1
        self.leader = KeyValue(b"/p/leader", b"east", self.revision, self.revision, 1, 7)
        return TxnResult(True, self.revision, ())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def session(etcd: FakeEtcd, clock: Clock) -> Session:
    return Session(etcd, b"/p", "east", ttl=6, retry_timeout=2, monotonic=clock)  # type: ignore[arg-type]


def test_the_leader_stops_acting_before_its_lease_can_expire_at_the_server() -> None:
    etcd, clock = FakeEtcd(), Clock()
    me = session(etcd, clock)
    assert me.campaign() == 101  # the leader key's create revision is the fencing token
    clock.now += 3.9  # renewals fail from here on (etcd unreachable): the deadline is send time + 6 - 2
    assert me.leading() == 101
    clock.now += 0.1
    assert me.leading() is None  # 4 s after the last send: etcd would still hold it for 2 s more


def test_the_deadline_counts_from_when_the_keepalive_was_sent() -> None:
    etcd, clock = FakeEtcd(), Clock()
    me = session(etcd, clock)
    me.campaign()

    slow = etcd.lease_keepalive

    def keepalive_answered_late(lease_id: int) -> int:
        answer = slow(lease_id)
        clock.now += 3.0  # the answer took 3 s to come back
        return answer

    etcd.lease_keepalive = keepalive_answered_late  # type: ignore[method-assign]
    sent_at = clock.now
    assert me.campaign() == 101
    assert me.leading() == 101 and clock.now == sent_at + 3.0
    clock.now = sent_at + 4.0
    assert me.leading() is None  # not 4 s after the answer: 4 s after the send


def test_a_lost_lease_is_a_lost_leadership_and_a_key_not_ours_is_not_ours() -> None:
    etcd, clock = FakeEtcd(), Clock()
    me = session(etcd, clock)
    assert me.campaign() == 101
    etcd.lease_gone = True
    etcd.leader = KeyValue(b"/p/leader", b"west", 102, 102, 1, 9)  # someone else took over meanwhile
    assert me.campaign() is None and me.leading() is None
    assert etcd.sent[-3:] == ["keepalive", "grant", "txn"]  # a new lease, then the member keys under it
