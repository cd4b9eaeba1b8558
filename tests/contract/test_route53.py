"""Route 53 beyond the shared contract: the exact change batch, Route 53's batch rules, botocore
retries, INSYNC waiting, alias and CNAME targets, IAM.

Why the lost race is proven against Route 53's semantics and not moto's. moto accepts a DELETE
that does not match the stored RRset and checks CREATE against its change journal, so under
plain moto a stale batch overwrites a newer marker (``test_plain_moto_would_let_a_stale_batch_
overwrite``). The proof has three parts:

1. the batch is captured on the wire (a botocore ``before-send`` hook, and again as moto
   parsed it) and must DELETE the marker exactly as read (value and TTL), CREATE the new one,
   and never UPSERT (``test_failover_batch_deletes_exactly_what_was_read``);
2. Route 53's documented batch rules (exact-match DELETE, CREATE refuses an existing RRset,
   transactional, evaluated change by change) are enforced in front of moto by
   tests/support/moto.py; ``test_route53_rules_*`` pin those rules one by one;
3. under those rules the stale batch fails whole and the adapter reports ``LostRace`` (the
   contract suite's lost-race tests, and ``test_stale_batch_fails_under_route53_rules``).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest
import requests
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, ReadTimeoutError

from failover.adapters import build_adapter
from failover.adapters.route53 import Route53Adapter
from failover.errors import AdapterError, LostRace
from failover.policy import AliasTarget, parse_policy
from tests.contract.conftest import EAST, EAST_ADDRS, WEST, WEST_ADDRS, Route53Stand, desired, reconcile
from tests.support.moto import Moto


@pytest.fixture
def stand(aws_env: Moto, route53_zone: str) -> Route53Stand:
    return Route53Stand(aws_env, route53_zone)


class Wire:
    """Every ChangeResourceRecordSets request a client puts on the wire, as sent."""

    def __init__(self, client: Any) -> None:
        self.bodies: list[bytes] = []
        self.params: list[dict[str, Any]] = []
        client.meta.events.register("before-send.route53.ChangeResourceRecordSets", self._send)
        client.meta.events.register("before-parameter-build.route53.ChangeResourceRecordSets", self._params)

    def _send(self, request: Any, **_: Any) -> None:
        self.bodies.append(bytes(request.body))

    def _params(self, params: dict[str, Any], **_: Any) -> None:
        self.params.append(json.loads(json.dumps(params)))

    def actions(self, i: int = -1) -> list[tuple[str, str, str]]:
        return [(c["Action"], c["ResourceRecordSet"]["Type"], c["ResourceRecordSet"]["Name"])
                for c in self.params[i]["ChangeBatch"]["Changes"]]


def test_first_publish_batch_only_creates(stand: Route53Stand) -> None:
    adapter = stand.adapter()
    wire = Wire(adapter.client)
    reconcile(adapter, desired(stand.domain))
    name, marker = stand.domain + ".", f"_failover.{stand.domain}."
    assert wire.actions() == [("CREATE", "A", name), ("CREATE", "AAAA", name), ("CREATE", "TXT", marker)]
    assert b"<Action>CREATE</Action>" in wire.bodies[-1] and b"UPSERT" not in wire.bodies[-1]


def test_failover_batch_deletes_exactly_what_was_read(stand: Route53Stand) -> None:
    adapter = stand.adapter()
    reconcile(adapter, desired(stand.domain))
    wire = Wire(adapter.client)
    reconcile(adapter, desired(stand.domain, WEST, 2, WEST_ADDRS, ttl=60, by=WEST, at=1_700_000_100))

    changes = wire.params[-1]["ChangeBatch"]["Changes"]
    name, marker = stand.domain + ".", f"_failover.{stand.domain}."
    assert wire.actions() == [
        ("DELETE", "A", name), ("DELETE", "AAAA", name), ("DELETE", "TXT", marker),
        ("CREATE", "A", name), ("CREATE", "TXT", marker),
    ]
    old_marker = changes[2]["ResourceRecordSet"]
    assert old_marker["TTL"] == 30
    assert old_marker["ResourceRecords"] == [{"Value": f'"epoch=1 primary={EAST} by={EAST} at=1700000000"'}]
    assert changes[0]["ResourceRecordSet"]["ResourceRecords"] == [{"Value": "192.0.2.10"}, {"Value": "192.0.2.11"}]
    assert changes[4]["ResourceRecordSet"]["ResourceRecords"] == [
        {"Value": f'"epoch=2 primary={WEST} by={WEST} at=1700000100"'}]
    assert b"UPSERT" not in wire.bodies[-1]
    assert stand.moto.batches[-1] == changes  # what moto parsed off the wire is what we built


def test_drift_repair_batch_is_fenced_by_the_marker_too(stand: Route53Stand) -> None:
    adapter = stand.adapter()
    reconcile(adapter, desired(stand.domain))
    stand.hand_edit(("203.0.113.9",))
    wire = Wire(adapter.client)
    reconcile(adapter, desired(stand.domain, at=1_700_000_500))  # same decision, a later cycle
    assert ("DELETE", "TXT", f"_failover.{stand.domain}.") in wire.actions()
    # the marker keeps the time the decision was first published (the hold-down counts from it)
    assert stand.published().marker == f"epoch=1 primary={EAST} by={EAST} at=1700000000"


def test_stale_batch_fails_under_route53_rules(stand: Route53Stand) -> None:
    adapter = stand.adapter()
    reconcile(adapter, desired(stand.domain))
    stale = adapter.read()
    stand.hand_marker(f"epoch=2 primary={WEST} by={WEST} at=1700000200")
    plan = adapter.plan(stale, desired(stand.domain, EAST, 2, ("192.0.2.77",)))
    with pytest.raises(LostRace, match="Tried to delete resource record set"):
        adapter.apply(plan)
    assert stand.published().addresses == EAST_ADDRS


def test_plain_moto_would_let_a_stale_batch_overwrite(stand: Route53Stand) -> None:
    """Why the strict rules are on: without them the emulator proves nothing about races."""
    adapter = stand.adapter()
    reconcile(adapter, desired(stand.domain))
    stale = adapter.read()
    stand.hand_marker(f"epoch=2 primary={WEST} by={WEST} at=1700000200")
    stand.moto.strict_route53 = False
    adapter.apply(adapter.plan(stale, desired(stand.domain, EAST, 2, ("192.0.2.77",))))
    assert stand.published().marker == f"epoch=2 primary={EAST} by={EAST} at=1700000000"  # overwritten


# -- Route 53's change-batch rules, as enforced in front of moto -------------------------------------


def _rr(name: str, rtype: str, values: list[str], ttl: int = 30) -> dict[str, Any]:
    return {"Name": name, "Type": rtype, "TTL": ttl, "ResourceRecords": [{"Value": v} for v in values]}


def _batch(stand: Route53Stand, *changes: tuple[str, dict[str, Any]]) -> None:
    stand.r53.change_resource_record_sets(
        HostedZoneId=stand.zone_id, ChangeBatch={"Changes": [{"Action": a, "ResourceRecordSet": r} for a, r in changes]}
    )


def _refused(stand: Route53Stand, *changes: tuple[str, dict[str, Any]]) -> str:
    with pytest.raises(ClientError) as error:
        _batch(stand, *changes)
    assert error.value.response["Error"]["Code"] == "InvalidChangeBatch"
    return str(error.value.response["Error"]["Message"])


def test_route53_rules_delete_must_match_exactly(stand: Route53Stand) -> None:
    name = stand.domain
    _batch(stand, ("CREATE", _rr(name, "TXT", ['"a"'])))
    assert "do not match the current values" in _refused(stand, ("DELETE", _rr(name, "TXT", ['"b"'])))
    assert "do not match the current values" in _refused(stand, ("DELETE", _rr(name, "TXT", ['"a"'], ttl=60)))
    assert "was not found" in _refused(stand, ("DELETE", _rr(name, "A", ["192.0.2.1"])))
    _batch(stand, ("DELETE", _rr(name, "TXT", ['"a"'])))  # the exact RRset: accepted
    assert stand.rrsets(name) == {}


def test_route53_rules_create_refuses_an_existing_rrset_and_batches_are_atomic(stand: Route53Stand) -> None:
    name = stand.domain
    _batch(stand, ("CREATE", _rr(name, "A", ["192.0.2.1"])))
    assert "already exists" in _refused(stand, ("CREATE", _rr(name, "A", ["192.0.2.2"])))
    assert "was not found" in _refused(
        stand, ("CREATE", _rr("other." + name, "A", ["192.0.2.3"])), ("DELETE", _rr(name, "AAAA", ["::1"]))
    )
    assert stand.rrsets("other." + name) == {}  # the valid first change was not applied either
    # changes are evaluated in order: DELETE then CREATE of the same RRset is one atomic replace
    _batch(stand, ("DELETE", _rr(name, "A", ["192.0.2.1"])), ("CREATE", _rr(name, "A", ["192.0.2.1"])))
    assert "RRSet of type CNAME" in _refused(stand, ("CREATE", _rr(name, "CNAME", ["x.example.net."])))


# -- retries and waiting --------------------------------------------------------------------------------


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def test_throttled_change_is_retried_by_botocore_not_lost(stand: Route53Stand) -> None:
    adapter = stand.adapter(max_attempts=3)
    attempts: list[str] = []

    def throttle_once(request: Any, **_: Any) -> AWSResponse | None:
        attempts.append(request.url)
        if len(attempts) > 1:
            return None
        body = (b'<?xml version="1.0"?><ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
                b"<Error><Type>Sender</Type><Code>PriorRequestNotComplete</Code><Message>The request was "
                b"rejected because Route 53 was still processing a prior request.</Message></Error>"
                b"<RequestId>r</RequestId></ErrorResponse>")
        return AWSResponse(request.url, 400, {}, _Raw(body))

    adapter.client.meta.events.register("before-send.route53.ChangeResourceRecordSets", throttle_once)
    reconcile(adapter, desired(stand.domain))
    assert len(attempts) == 2 and stand.change_requests() == 1  # the throttled attempt never reached Route 53
    assert stand.published().addresses == EAST_ADDRS


def test_retry_after_a_lost_response_is_recognised_as_our_own_change(stand: Route53Stand) -> None:
    """The batch lands but its answer is lost; botocore retries; the retry's DELETEs no longer
    match (InvalidChangeBatch). The marker read back is exactly ours: success, not a lost race."""
    adapter = stand.adapter(max_attempts=3)
    reconcile(adapter, desired(stand.domain))
    lost: list[int] = []

    def deliver_then_lose_the_answer(request: Any, **_: Any) -> None:
        if lost:
            return
        lost.append(1)
        requests.request(request.method, request.url, headers=dict(request.headers), data=request.body, timeout=5)
        raise ReadTimeoutError(endpoint_url=request.url)

    adapter.client.meta.events.register("before-send.route53.ChangeResourceRecordSets", deliver_then_lose_the_answer)
    want = desired(stand.domain, WEST, 2, WEST_ADDRS, by=WEST, at=1_700_000_100)
    reconcile(adapter, want)
    assert stand.change_requests() == 3  # first publish, the delivered attempt, the refused retry
    assert stand.published().addresses == WEST_ADDRS


def test_waits_for_insync(stand: Route53Stand) -> None:
    stand.moto.route53_pending_polls = 3
    naps: list[float] = []
    adapter = stand.adapter(sleep=naps.append)
    reconcile(adapter, desired(stand.domain))
    assert stand.moto.calls["GetChange"] == 3 and len(naps) == 3


def test_insync_wait_has_a_deadline(stand: Route53Stand) -> None:
    stand.moto.route53_pending_polls = 10**9
    adapter = stand.adapter(wait=0.3)
    started = time.monotonic()
    with pytest.raises(AdapterError, match=r"still PENDING after 0\.3s") as error:
        reconcile(adapter, desired(stand.domain))
    assert not isinstance(error.value, LostRace)
    assert time.monotonic() - started < 5
    assert stand.published().addresses == EAST_ADDRS  # accepted; the next cycle finds it in place


# -- targets: alias and CNAME per region ------------------------------------------------------------


ALIASES = {
    EAST: AliasTarget(dns_name="east-alb-1.us-east-1.elb.amazonaws.com", hosted_zone_id="Z35SXDOTRQ7X7K"),
    WEST: AliasTarget(dns_name="west-alb-1.eu-west-1.elb.amazonaws.com", hosted_zone_id="Z32O12XQLNTSW2",
                      dualstack=True),
}


def test_alias_target_follows_the_primary(stand: Route53Stand) -> None:
    adapter = stand.adapter(alias=ALIASES)
    reconcile(adapter, desired(stand.domain))
    here = stand.rrsets(stand.domain)
    assert set(here) == {"A"}
    assert here["A"]["AliasTarget"]["DNSName"].rstrip(".") == "east-alb-1.us-east-1.elb.amazonaws.com"
    assert adapter.plan(adapter.read(), desired(stand.domain)).noop

    wire = Wire(adapter.client)
    reconcile(adapter, desired(stand.domain, WEST, 2, WEST_ADDRS, by=WEST))
    here = stand.rrsets(stand.domain)
    assert set(here) == {"A", "AAAA"} and here["AAAA"]["AliasTarget"]["HostedZoneId"] == "Z32O12XQLNTSW2"
    deleted = wire.params[-1]["ChangeBatch"]["Changes"][0]
    assert deleted["Action"] == "DELETE"
    assert deleted["ResourceRecordSet"]["AliasTarget"]["HostedZoneId"] == "Z35SXDOTRQ7X7K"


def test_cname_target_replaces_addresses_in_one_batch(stand: Route53Stand) -> None:
    reconcile(stand.adapter(), desired(stand.domain))
    adapter = stand.adapter(cname={EAST: "use1.gw.example.net", WEST: "euw1.gw.example.net"})
    reconcile(adapter, desired(stand.domain))
    here = stand.rrsets(stand.domain)
    assert set(here) == {"CNAME"} and here["CNAME"]["ResourceRecords"] == [{"Value": "use1.gw.example.net."}]
    assert adapter.plan(adapter.read(), desired(stand.domain)).noop


# -- configuration, credentials, permissions ----------------------------------------------------------


def _policy(traffic: dict[str, Any]) -> Any:
    return parse_policy({
        "service": "s", "observer": EAST,
        "regions": [{"name": EAST, "gateways": [{"name": "a", "address": "192.0.2.10"}]},
                    {"name": WEST, "gateways": [{"name": "b", "address": "198.51.100.10"}]}],
        "domains": [{"name": "api.example.com", "checks": [{"kind": "tcp", "port": 80}], "traffic": [traffic]}],
    })


def test_policy_block_sets_retry_mode_and_endpoint_comes_from_the_environment(aws_env: Moto) -> None:
    policy = _policy({"kind": "route53", "hosted_zone_id": "/hostedzone/Z0123", "retry_mode": "adaptive",
                      "max_attempts": 3, "timeout": "4s"})
    adapter = build_adapter(policy.domains[0].traffic[0], "api.example.com", policy)
    assert isinstance(adapter, Route53Adapter) and adapter.zone_id == "Z0123"
    config = adapter.client.meta.config
    assert config.retries["mode"] == "adaptive" and config.retries["total_max_attempts"] == 3
    assert config.connect_timeout == 4 and config.read_timeout == 4
    assert adapter.client.meta.endpoint_url == aws_env.endpoint  # AWS_ENDPOINT_URL


def test_check_access_names_the_missing_permission(stand: Route53Stand) -> None:
    iam = stand.moto.client("iam")
    user = f"r53-reader-{stand.domain.split('.')[0]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="zone-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["route53:GetHostedZone"], "Resource": "*"}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    client = boto3.session.Session(
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"]
    ).client("route53", endpoint_url=stand.moto.endpoint, region_name="us-east-1")
    missing = "missing permission route53:ListResourceRecordSets"
    with stand.moto.iam_enforced(), pytest.raises(AdapterError, match=missing):
        stand.adapter(client=client).check_access()


def test_check_access_refuses_a_domain_outside_the_zone(stand: Route53Stand) -> None:
    adapter = Route53Adapter("api.example.org", stand.zone_id, max_attempts=1)
    with pytest.raises(AdapterError, match=r"not inside hosted zone example\.com\."):
        adapter.check_access()


def test_routing_policy_records_at_the_name_are_refused(stand: Route53Stand) -> None:
    record = {**_rr(stand.domain, "A", ["192.0.2.1"]), "SetIdentifier": "blue", "Weight": 10}
    _batch(stand, ("CREATE", record))
    with pytest.raises(AdapterError, match="routing-policy record"):
        stand.adapter().read()


def test_unknown_hosted_zone_is_named(aws_env: Moto) -> None:
    with pytest.raises(AdapterError, match="hosted zone ZNOSUCHZONE does not exist"):
        Route53Adapter("api.example.com", "ZNOSUCHZONE", max_attempts=1).check_access()


def test_concurrent_coordinators_exactly_one_wins(stand: Route53Stand) -> None:
    """Two coordinators read the same state and race to publish different decisions."""
    east, west = stand.adapter(), stand.adapter()
    reconcile(east, desired(stand.domain))
    plans = [
        (east, east.plan(east.read(), desired(stand.domain, EAST, 2, ("192.0.2.50",), at=1_700_000_300))),
        (west, west.plan(west.read(), desired(stand.domain, WEST, 2, WEST_ADDRS, by=WEST, at=1_700_000_301))),
    ]
    results: list[str] = []
    barrier = threading.Barrier(2)

    def go(adapter: Any, plan: Any) -> None:
        barrier.wait()
        try:
            adapter.apply(plan)
            results.append("won")
        except LostRace:
            results.append("lost")

    threads = [threading.Thread(target=go, args=pair) for pair in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == ["lost", "won"]
    now = stand.published()
    winner = "192.0.2.50" in now.addresses
    assert now.marker is not None and (EAST if winner else WEST) in now.marker
