"""The Elastic IP adapter against moto's EC2: the same contract, shaped for one address.

The address must sit on a healthy replica of its own region; a second pass with the same
health sends nothing; a failed holder gives way to the next healthy replica; a hand move to
an unmapped instance is repaired; a hand move to another healthy replica is kept; a writer
who loses a race overwrites nothing; bad credentials and an unreachable endpoint change
nothing. Requests are counted at moto (AssociateAddress, DisassociateAddress).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
import yaml
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError

from failover.adapters import build_adapter
from failover.adapters.abc import Desired
from failover.adapters.eip import EipAdapter, EipExtra, Target
from failover.errors import AdapterError, LostRace, PolicyError
from failover.policy import parse_policy
from tests.contract.conftest import EAST, WEST, closed_port, desired, reconcile
from tests.support.moto import Moto

ADDRS = {"a": "10.0.1.10", "b": "10.0.1.11", "c": "10.0.1.12"}
ALL_UP = tuple(sorted(ADDRS.values()))


@dataclass
class Fleet:
    moto: Moto
    ec2: Any
    allocation: str
    instances: list[str]  # a, b, and a spare the map does not know
    eni: str  # c

    def targets(self) -> list[Target]:
        return [Target("a", ADDRS["a"], self.instances[0]), Target("b", ADDRS["b"], self.instances[1]),
                Target("c", ADDRS["c"], self.eni)]

    def adapter(self, **kwargs: Any) -> EipAdapter:
        kwargs.setdefault("max_attempts", 2)
        return EipAdapter("api.example.com", self.allocation, EAST, self.targets(), **kwargs)

    def where(self) -> tuple[str | None, str | None]:
        address = self.ec2.describe_addresses(AllocationIds=[self.allocation])["Addresses"][0]
        return address.get("InstanceId") or None, address.get("NetworkInterfaceId") or None

    def holder(self) -> str | None:
        instance, eni = self.where()
        if instance in self.instances[:2]:
            return "ab"[self.instances.index(instance)]
        if instance == self.instances[2]:
            return "spare"
        return "c" if eni == self.eni else None

    def hand_move(self, resource: str) -> None:
        key = "InstanceId" if resource.startswith("i-") else "NetworkInterfaceId"
        self.ec2.associate_address(AllocationId=self.allocation, AllowReassociation=True, **{key: resource})

    def moves(self) -> tuple[int, int]:
        return self.moto.calls["DisassociateAddress"], self.moto.calls["AssociateAddress"]


@pytest.fixture
def fleet(aws_env: Moto) -> Fleet:
    ec2 = aws_env.client("ec2")
    instances = [i["InstanceId"] for i in ec2.run_instances(  # an AMI moto ships (listing them all is slow)
        ImageId="ami-12c6146b", MinCount=3, MaxCount=3, InstanceType="t3.micro")["Instances"]]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    eni = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    aws_env.reset_counts()
    return Fleet(aws_env, ec2, allocation, instances, eni)


def healthy(*names: str, primary: str = EAST) -> Desired:
    return desired("api.example.com", primary, 1, tuple(sorted(ADDRS[n] for n in names)))


def test_first_association_goes_to_the_first_healthy_replica(fleet: Fleet) -> None:
    adapter = fleet.adapter()
    live = adapter.read()
    assert live.addresses == () and live.extra_as(EipExtra).association_id is None
    changes = reconcile(adapter, healthy("a", "b", "c"))
    assert changes and "unassociated -> a" in changes[0]
    assert fleet.holder() == "a" and fleet.moves() == (0, 1)
    assert adapter.read().addresses == (ADDRS["a"],)


def test_second_pass_with_the_same_health_sends_nothing(fleet: Fleet) -> None:
    adapter = fleet.adapter()
    reconcile(adapter, healthy("a", "b", "c"))
    before = fleet.moves()
    assert reconcile(adapter, healthy("a", "b", "c")) == ()
    assert reconcile(adapter, healthy("a", "c")) == ()  # the holder is still healthy: no needless move
    assert fleet.moves() == before


def test_failed_holder_gives_way_to_the_next_healthy_replica(fleet: Fleet) -> None:
    adapter = fleet.adapter()
    reconcile(adapter, healthy("a", "b", "c"))
    reconcile(adapter, healthy("b", "c"))
    assert fleet.holder() == "b" and fleet.moves() == (1, 2)
    reconcile(adapter, healthy("c"))  # a network interface target
    assert fleet.holder() == "c" and fleet.where()[1] == fleet.eni


def test_hand_move_to_an_unmapped_instance_is_repaired(fleet: Fleet) -> None:
    adapter = fleet.adapter()
    reconcile(adapter, healthy("a", "b"))
    fleet.hand_move(fleet.instances[2])
    assert adapter.plan(adapter.read(), healthy("a", "b")).changes[0].endswith(f"-> a ({fleet.instances[0]})")
    reconcile(adapter, healthy("a", "b"))
    assert fleet.holder() == "a"


def test_hand_move_to_another_healthy_replica_is_kept(fleet: Fleet) -> None:
    adapter = fleet.adapter()
    reconcile(adapter, healthy("a", "b"))
    fleet.hand_move(fleet.instances[1])
    before = fleet.moves()
    assert reconcile(adapter, healthy("a", "b")) == ()
    assert fleet.holder() == "b" and fleet.moves() == before


def test_another_region_primary_leaves_the_address_alone(fleet: Fleet) -> None:
    adapter = fleet.adapter()
    reconcile(adapter, healthy("a"))
    before = fleet.moves()
    # the primary is elsewhere: Desired lists that region's gateways, which say nothing about ours
    assert reconcile(adapter, desired("api.example.com", WEST, 2, ("198.51.100.10",))) == ()
    assert fleet.holder() == "a" and fleet.moves() == before


def test_standby_region_keeps_its_address_on_a_live_replica(fleet: Fleet) -> None:
    adapter = fleet.adapter()
    reconcile(adapter, healthy("a", "b"))
    # west is primary, but the coordinator also says how east's own replicas are doing: a died
    standby = desired("api.example.com", WEST, 2, ("198.51.100.10",))
    standby = dataclasses.replace(standby, healthy={EAST: (ADDRS["b"],), WEST: ("198.51.100.10",)})
    reconcile(adapter, standby)
    assert fleet.holder() == "b"


def test_only_its_own_region_moves_it_unless_a_fenced_leader_acts(fleet: Fleet) -> None:
    adapter = fleet.adapter()
    reconcile(adapter, healthy("a", "b"))
    before = fleet.moves()
    # a coordinator of another region, sharing no store (no fencing token): hands off
    distant = dataclasses.replace(healthy("b"), by=WEST)
    assert reconcile(adapter, distant) == ()
    assert fleet.holder() == "a" and fleet.moves() == before
    # the elected leader of a shared store (token > 0) acts on the quorum's view, wherever it runs
    leader = dataclasses.replace(healthy("b"), by=WEST, token=7)
    assert reconcile(adapter, leader) != ()
    assert fleet.holder() == "b"


def test_lost_race_on_disassociate_overwrites_nothing(fleet: Fleet) -> None:
    adapter = fleet.adapter()
    reconcile(adapter, healthy("a", "b"))
    stale = adapter.read()
    fleet.hand_move(fleet.instances[2])  # someone else moved it after our read
    with pytest.raises(LostRace, match="is gone"):
        adapter.apply(adapter.plan(stale, healthy("b")))
    assert fleet.holder() == "spare"


def test_lost_race_on_associate_overwrites_nothing(fleet: Fleet) -> None:
    adapter = fleet.adapter()
    stale = adapter.read()  # unassociated
    fleet.hand_move(fleet.instances[2])
    with pytest.raises(LostRace, match="another writer associated"):
        adapter.apply(adapter.plan(stale, healthy("a")))
    assert fleet.holder() == "spare"


def test_retry_after_a_lost_answer_completes_the_move(fleet: Fleet) -> None:
    """DisassociateAddress lands but its answer is lost; botocore retries and gets
    InvalidAssociationID.NotFound. The address is unassociated, so the (conditional)
    associate goes ahead."""
    adapter = fleet.adapter(max_attempts=3)
    reconcile(adapter, healthy("a", "b"))
    lost: list[int] = []

    def deliver_then_lose(request: Any, **_: Any) -> None:
        if lost:
            return
        lost.append(1)
        requests.request(request.method, request.url, headers=dict(request.headers), data=request.body, timeout=5)
        raise ReadTimeoutError(endpoint_url=request.url)

    adapter.client.meta.events.register("before-send.ec2.DisassociateAddress", deliver_then_lose)
    reconcile(adapter, healthy("b"))
    assert fleet.holder() == "b"


def test_wrong_credentials_change_nothing(fleet: Fleet) -> None:
    reconcile(fleet.adapter(), healthy("a"))
    live = fleet.adapter().read()
    client = boto3.session.Session(aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="wrong").client(
        "ec2", endpoint_url=fleet.moto.endpoint, region_name="us-east-1")
    bad = fleet.adapter(client=client)
    with fleet.moto.iam_enforced():
        with pytest.raises(AdapterError, match="rejected the credentials"):
            bad.read()
        with pytest.raises(AdapterError, match="rejected the credentials") as error:
            bad.apply(bad.plan(live, healthy("b")))
        assert not isinstance(error.value, LostRace)
    assert fleet.holder() == "a"


def test_unreachable_endpoint_is_a_clear_error(fleet: Fleet) -> None:
    client = boto3.session.Session().client(
        "ec2", endpoint_url=f"http://127.0.0.1:{closed_port()}", region_name="us-east-1",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=1, read_timeout=1))
    with pytest.raises(AdapterError, match="cannot reach"):
        fleet.adapter(client=client).read()


def test_check_access_dry_runs_the_moves(fleet: Fleet) -> None:
    adapter = fleet.adapter()
    report = adapter.check_access()
    assert "ec2:AssociateAddress" in report and "ec2:DescribeNetworkInterfaces" in report
    reconcile(adapter, healthy("a"))
    assert "ec2:DisassociateAddress" in adapter.check_access()
    assert fleet.holder() == "a" and fleet.moves() == (0, 1)  # dry runs moved nothing


def test_check_access_names_the_missing_permission(fleet: Fleet) -> None:
    iam = fleet.moto.client("iam")
    user = f"eip-reader-{fleet.allocation[-6:]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="describe", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
            "ec2:DescribeAddresses", "ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces"]}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    client = boto3.session.Session(
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"]
    ).client("ec2", endpoint_url=fleet.moto.endpoint, region_name="us-east-1")
    with fleet.moto.iam_enforced(), pytest.raises(AdapterError, match="missing permission ec2:AssociateAddress"):
        fleet.adapter(client=client).check_access()


def test_check_access_names_an_unknown_instance(fleet: Fleet) -> None:
    adapter = EipAdapter("api.example.com", fleet.allocation, EAST,
                         [Target("a", ADDRS["a"], "i-0123456789abcdef0")], max_attempts=1)
    with pytest.raises(AdapterError, match="InvalidInstanceID"):
        adapter.check_access()


# -- from the policy file ------------------------------------------------------------------------------


def _policy_data(gateways: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "service": "s", "observer": EAST,
        "regions": [
            {"name": EAST, "gateways": [{"name": n, "address": a} for n, a in ADDRS.items()]},
            {"name": WEST, "gateways": [{"name": "w", "address": "198.51.100.10"}]},
        ],
        "domains": [{"name": "api.example.com", "checks": [{"kind": "tcp", "port": 80}], "traffic": [
            {"kind": "route53", "hosted_zone_id": "Z0123"},
            {"kind": "eip", "allocation_id": "eipalloc-0123456789abcdef0", "gateways": gateways, **extra}]}],
    }


def test_built_from_the_policy_file(fleet: Fleet, tmp_path: Path) -> None:
    data = _policy_data({"b": fleet.instances[1], "a": fleet.instances[0]}, max_attempts=2)
    data["domains"][0]["traffic"][1]["allocation_id"] = fleet.allocation
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    from failover.policy import load_policy

    policy = load_policy(path)
    path.unlink()  # the adapter takes the gateway map from the loaded policy, not from the file again
    adapter = build_adapter(policy.domains[0].traffic[1], "api.example.com", policy)
    assert isinstance(adapter, EipAdapter) and adapter.region == EAST and adapter.aws_region == EAST
    assert [(t.gateway, t.address) for t in adapter.targets] == [("b", ADDRS["b"]), ("a", ADDRS["a"])]
    reconcile(adapter, healthy("a", "b"))
    assert fleet.holder() == "b"  # the block's order is the preference order


def test_policy_refuses_an_eip_spanning_regions() -> None:
    with pytest.raises(PolicyError) as error:
        parse_policy(_policy_data({"a": "i-0123456789abcdef0", "w": "i-0123456789abcdef1"}))
    (path, message), = error.value.problems
    assert path == "domains[0].traffic[1].gateways"
    assert "more than one region" in message and "DNS adapter" in message


def test_policy_names_an_unknown_gateway_and_a_missing_aws_region() -> None:
    with pytest.raises(PolicyError) as error:
        parse_policy(_policy_data({"aa": "i-0123456789abcdef0"}))
    assert error.value.problems[0][0] == "domains[0].traffic[1].gateways.aa"
    assert "did you mean 'a'" in error.value.problems[0][1]
    data = _policy_data({"a": "i-0123456789abcdef0"})
    data["regions"][0]["name"] = "east"
    data["observer"] = "east"
    with pytest.raises(PolicyError) as error:
        parse_policy(data)
    assert error.value.problems == [(
        "domains[0].traffic[1].aws_region",
        "required: region 'east' is not an AWS region name, so set the AWS region where the Elastic IP lives "
        "(e.g. us-east-1)",
    )]
