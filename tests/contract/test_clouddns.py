"""Cloud DNS beyond the shared contract: the exact change, pending → done, retries, credentials,
permissions, CNAME targets. Against the local Cloud DNS v1 stand-in."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from failover.adapters import build_adapter
from failover.adapters.clouddns import CloudDnsAdapter
from failover.errors import AdapterError, LostRace
from failover.policy import parse_policy
from tests.contract.conftest import EAST, EAST_ADDRS, WEST, WEST_ADDRS, CloudDnsStand, desired, reconcile
from tests.support.clouddns_server import CloudDnsServer


@pytest.fixture
def stand(clouddns: CloudDnsServer) -> CloudDnsStand:
    return CloudDnsStand(clouddns)


def test_first_publish_is_additions_only(stand: CloudDnsStand) -> None:
    reconcile(stand.adapter(), desired(stand.domain))
    change = stand.server.changes_received[-1]
    assert change["deletions"] == []
    assert [(r["name"], r["type"]) for r in change["additions"]] == [
        (stand.domain + ".", "A"), (stand.domain + ".", "AAAA"), (f"_failover.{stand.domain}.", "TXT")]


def test_change_deletes_exactly_what_was_read(stand: CloudDnsStand) -> None:
    adapter = stand.adapter()
    reconcile(adapter, desired(stand.domain))
    reconcile(adapter, desired(stand.domain, WEST, 2, WEST_ADDRS, ttl=60, by=WEST, at=1_700_000_100))
    change = stand.server.changes_received[-1]
    assert change["deletions"] == [
        {"name": stand.domain + ".", "type": "A", "ttl": "30", "rrdatas": ["192.0.2.10", "192.0.2.11"]},
        {"name": stand.domain + ".", "type": "AAAA", "ttl": "30", "rrdatas": ["2001:db8::10"]},
        {"name": f"_failover.{stand.domain}.", "type": "TXT", "ttl": "30",
         "rrdatas": [f'"epoch=1 primary={EAST} by={EAST} at=1700000000"']},
    ]
    assert change["additions"][-1]["rrdatas"] == [f'"epoch=2 primary={WEST} by={WEST} at=1700000100"']


def test_a_marker_deleted_meanwhile_is_a_lost_race_too(stand: CloudDnsStand) -> None:
    adapter = stand.adapter()
    reconcile(adapter, desired(stand.domain))
    stale = adapter.read()
    stand.server.drop_rrset(stand.zone, f"_failover.{stand.domain}", "TXT")
    with pytest.raises(LostRace, match="404"):
        adapter.apply(adapter.plan(stale, desired(stand.domain, WEST, 2, WEST_ADDRS)))
    assert stand.published().addresses == EAST_ADDRS


def test_polls_the_change_until_done(stand: CloudDnsStand) -> None:
    stand.server.pending_polls = 3
    naps: list[float] = []
    before = stand.server.requests["GET change"]
    reconcile(stand.adapter(sleep=naps.append), desired(stand.domain))
    assert stand.server.requests["GET change"] - before == 3 and len(naps) == 3


def test_waiting_for_done_has_a_deadline(stand: CloudDnsStand) -> None:
    stand.server.pending_polls = 10**9
    started = time.monotonic()
    with pytest.raises(AdapterError, match=r"still pending after 0\.3s"):
        reconcile(stand.adapter(wait=0.3, sleep=time.sleep), desired(stand.domain))
    assert time.monotonic() - started < 5


def test_transient_errors_are_retried(stand: CloudDnsStand) -> None:
    stand.server.fail_next = [503, 429]
    reconcile(stand.adapter(), desired(stand.domain))
    assert stand.published().addresses == EAST_ADDRS


def test_retry_after_a_lost_answer_is_recognised_as_our_own_change(stand: CloudDnsStand) -> None:
    adapter = stand.adapter()
    reconcile(adapter, desired(stand.domain))
    stand.server.lose_next_answers = 1  # the change lands, its answer is a 503; the retry gets 412
    before = stand.change_requests()
    reconcile(adapter, desired(stand.domain, WEST, 2, WEST_ADDRS, by=WEST))
    assert stand.change_requests() - before == 2
    assert stand.published().addresses == WEST_ADDRS


def test_endpoint_means_anonymous_credentials(stand: CloudDnsStand) -> None:
    stand.adapter().read()
    assert stand.server.authorization and set(stand.server.authorization) == {None}


def test_explicit_credentials_are_sent(stand: CloudDnsStand) -> None:
    from google.oauth2.credentials import Credentials

    stand.server.required_token = "ya29.test-token"
    adapter = stand.adapter(credentials=Credentials(token="ya29.test-token"))  # type: ignore[no-untyped-call]
    reconcile(adapter, desired(stand.domain))
    assert stand.server.authorization[-1] == "Bearer ya29.test-token"


def test_no_application_default_credentials_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud login either
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # and not on GCE
    adapter = CloudDnsAdapter("api.example.com", "failover-test", "example-com")
    with pytest.raises(AdapterError, match="no Google credentials"):
        adapter.read()


def test_read_without_permission_names_it(stand: CloudDnsStand) -> None:
    stand.server.denied = {"dns.resourceRecordSets.list"}
    with pytest.raises(AdapterError, match=r"missing permission dns\.resourceRecordSets\.list"):
        stand.adapter().read()


def test_check_access_names_a_missing_write_permission(stand: CloudDnsStand) -> None:
    before = stand.change_requests()
    assert "granted" in stand.adapter().check_access()
    stand.server.denied = {"dns.changes.create", "dns.resourceRecordSets.delete"}
    with pytest.raises(AdapterError, match=r"lacks dns\.changes\.create, dns\.resourceRecordSets\.delete"):
        stand.adapter().check_access()
    assert stand.change_requests() == before  # found out without trying a change


def test_check_access_refuses_a_domain_outside_the_zone(stand: CloudDnsStand) -> None:
    adapter = CloudDnsAdapter("api.example.org", stand.server.project, stand.zone, endpoint=stand.server.endpoint)
    with pytest.raises(AdapterError, match=r"not inside managed zone example\.com\."):
        adapter.check_access()


def test_unknown_zone_is_named(stand: CloudDnsStand) -> None:
    adapter = CloudDnsAdapter("api.example.com", stand.server.project, "nope", endpoint=stand.server.endpoint)
    with pytest.raises(AdapterError, match="'nope' does not exist"):
        adapter.check_access()


def test_cname_target_follows_the_primary(stand: CloudDnsStand) -> None:
    reconcile(stand.adapter(), desired(stand.domain))
    adapter = stand.adapter(cname={EAST: "use1.gw.example.net", WEST: "euw1.gw.example.net."})
    reconcile(adapter, desired(stand.domain))  # A/AAAA give way to the CNAME in one change
    assert stand.server.rrset(stand.zone, stand.domain, "A") is None
    assert (stand.server.rrset(stand.zone, stand.domain, "CNAME") or {}).get("rrdatas") == ["use1.gw.example.net."]
    reconcile(adapter, desired(stand.domain, WEST, 2, WEST_ADDRS, by=WEST))
    assert (stand.server.rrset(stand.zone, stand.domain, "CNAME") or {}).get("rrdatas") == ["euw1.gw.example.net."]
    assert adapter.plan(adapter.read(), desired(stand.domain, WEST, 2, WEST_ADDRS, by=WEST)).noop


def test_built_from_a_policy_block(stand: CloudDnsStand) -> None:
    policy = parse_policy({
        "service": "s", "observer": EAST,
        "regions": [{"name": EAST, "gateways": [{"name": "a", "address": "192.0.2.10"}]}],
        "domains": [{"name": stand.domain, "checks": [{"kind": "tcp", "port": 80}], "traffic": [{
            "kind": "clouddns", "project": stand.server.project, "managed_zone": stand.zone,
            "endpoint": stand.server.endpoint + "/", "ttl": 45, "timeout": "2s"}]}],
    })
    adapter = build_adapter(policy.domains[0].traffic[0], stand.domain, policy)
    assert isinstance(adapter, CloudDnsAdapter) and adapter.endpoint == stand.server.endpoint and adapter.ttl == 45
    assert "example.com." in adapter.check_access()
