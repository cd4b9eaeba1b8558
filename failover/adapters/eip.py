"""Elastic IP (boto3 EC2): keep one address on a healthy gateway replica of ONE region.

An Elastic IP is regional: it can move between instances or network interfaces of its own
region, never to another region. Moving traffic across regions is the DNS adapters' job
(route53, clouddns, rfc2136); the policy check refuses an ``eip`` block whose gateways span
regions. A service that fronts each region with an Elastic IP has one ``eip`` block per
region.

What the adapter wants. ``Desired.addresses`` are the healthy gateways of the primary region.
When the primary is this block's region, the address must sit on one of them: the current
holder if it is healthy (no needless move), else the first healthy gateway in the block's
order. When another region is primary, the coordinator tells us nothing about this region's
gateways, so the address stays where it is (see docs/permissions.md; a per-region health map
in ``Desired`` would let a standby region keep its address on a live replica too).

How a move is fenced. ``read()`` returns the ``AssociationId`` of the address as found.
``apply`` disassociates exactly that association (``InvalidAssociationID.NotFound`` when it
has changed meanwhile), then associates the new target with ``AllowReassociation=False``,
which fails with ``Resource.AlreadyAssociated`` if anyone associated the address in between.
Either failure is a lost race and nothing of the other writer's is overwritten. Between the
two calls the address is briefly unassociated: that is the price of the fence (a single
``AllowReassociation=True`` call would be atomic but would overwrite anyone). If the second
call fails for another reason, the address stays unassociated and the next cycle associates
it. ``verify`` reads DescribeAddresses back until it shows the move, within ``wait``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from failover.adapters._aws import call, make_client
from failover.adapters._poll import poll_until
from failover.adapters.abc import Adapter, Desired, Live, LiveExtra, Plan, block_of
from failover.errors import AdapterError, AwsError, LostRace, UsageError, VerifyError
from failover.policy import EipTraffic, Policy, Traffic


@dataclass(frozen=True)
class Target:
    """One gateway replica the address may sit on."""

    gateway: str
    address: str  # the gateway's address in the policy (what Desired.addresses lists)
    resource: str  # i-... (instance) or eni-... (network interface)

    @property
    def is_instance(self) -> bool:
        return self.resource.startswith("i-")

    def params(self) -> dict[str, str]:
        return {"InstanceId": self.resource} if self.is_instance else {"NetworkInterfaceId": self.resource}

    def label(self) -> str:
        return f"{self.gateway} ({self.resource})"


@dataclass(frozen=True)
class EipExtra(LiveExtra):
    """The address as DescribeAddresses showed it; ``association_id`` is the fence."""

    public_ip: str | None
    association_id: str | None
    instance_id: str | None
    network_interface_id: str | None
    holder: Target | None  # the mapped replica it sits on (None: unassociated or unmapped)


class EipAdapter(Adapter):
    kind = "eip"

    def __init__(
        self,
        domain: str,
        allocation_id: str,
        region: str,
        targets: list[Target],
        *,
        aws_region: str | None = None,
        wait: float = 30.0,
        timeout: float = 10.0,
        retry_mode: str = "standard",
        max_attempts: int = 5,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # an address move is not cached by resolvers: there is no TTL to publish
        super().__init__(domain, ttl=0)
        if not targets:
            raise UsageError("eip: map at least one gateway to an instance or network interface")
        self.allocation_id = allocation_id
        self.region = region
        self.targets = list(targets)
        self.aws_region = aws_region or region
        self.wait = wait
        self._sleep = sleep
        self.client = client or make_client(
            "ec2", region=self.aws_region, retry_mode=retry_mode, max_attempts=max_attempts, timeout=timeout
        )

    @classmethod
    def from_policy(cls, block: Traffic, domain: str, policy: Policy) -> Self:
        block = block_of(block, EipTraffic)
        where = {gw.name: (region.name, gw.address) for region in policy.regions for gw in region.gateways}
        targets = [Target(name, where[name][1], resource) for name, resource in block.gateways.items()]
        region = where[next(iter(block.gateways))][0]  # the policy check keeps them in one region
        return cls(
            domain,
            block.allocation_id,
            region,
            targets,
            aws_region=block.aws_region,
            wait=block.wait,
            timeout=block.timeout,
            retry_mode=block.retry_mode,
            max_attempts=block.max_attempts,
        )

    @property
    def name(self) -> str:
        return f"eip {self.allocation_id} ({self.aws_region})"

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        return call(self.name, self.client, operation, **params)

    # -- what is where ----------------------------------------------------------------------------

    def _holder(self, address: Mapping[str, Any]) -> Target | None:
        for target in self.targets:
            if target.is_instance and address.get("InstanceId") == target.resource:
                return target
            if not target.is_instance and address.get("NetworkInterfaceId") == target.resource:
                return target
        return None

    def healthy(self, desired: Desired) -> list[Target] | None:
        """This region's healthy replicas in the block's order; None: not known (another
        region is primary and the caller did not say how ours is doing)."""
        if self.region in desired.healthy:
            return [t for t in self.targets if t.address in desired.healthy[self.region]]
        if desired.primary != self.region:
            return None
        return [t for t in self.targets if t.address in desired.addresses]

    def choose(self, live: Live, desired: Desired) -> Target | None:
        """Where the address should be; None: leave it where it is.

        Without a shared store only the coordinator of the address's own region moves it: an EIP
        move has no marker to fence on, so a distant observer with a broken view must not fight
        over it. With one (a fencing token), the elected leader acts on a quorum's view and
        moves every region's address."""
        if desired.by and desired.by != self.region and desired.token == 0:
            return None
        healthy = self.healthy(desired)
        if not healthy:
            return None
        holder = live.extra_as(EipExtra).holder
        if holder is not None and holder in healthy:
            return None
        return healthy[0]

    # -- contract ---------------------------------------------------------------------------------

    def read(self) -> Live:
        answer = self._call("DescribeAddresses", AllocationIds=[self.allocation_id])
        addresses = answer.get("Addresses", [])
        if not addresses:
            raise AdapterError(f"{self.name}: DescribeAddresses does not list {self.allocation_id}")
        found = addresses[0]
        holder = self._holder(found)
        return Live(
            self.domain,
            (holder.address,) if holder else (),
            None,
            None,  # no DNS marker: the fence is the AssociationId below
            EipExtra(
                public_ip=found.get("PublicIp"),
                association_id=found.get("AssociationId"),
                instance_id=found.get("InstanceId"),
                network_interface_id=found.get("NetworkInterfaceId"),
                holder=holder,
            ),
        )

    def _where(self, live: Live) -> str:
        found = live.extra_as(EipExtra)
        if found.holder is not None:
            return found.holder.label()
        other = found.network_interface_id or found.instance_id
        return f"unmapped {other}" if other else "unassociated"

    def plan(self, live: Live, desired: Desired) -> Plan:
        target = self.choose(live, desired)
        changes: tuple[str, ...] = ()
        if target is not None:
            changes = (f"{self.name} {live.extra_as(EipExtra).public_ip}: {self._where(live)} -> {target.label()}",)
        return Plan(self.name, live, desired, changes)

    def apply(self, plan: Plan) -> None:
        target = self.choose(plan.live, plan.desired)
        if target is None:
            return
        association = plan.live.extra_as(EipExtra).association_id
        if association:
            try:
                self._call("DisassociateAddress", AssociationId=association)
            except AwsError as exc:
                if exc.code != "InvalidAssociationID.NotFound":
                    raise
                now = self.read()
                if now.extra_as(EipExtra).association_id:  # someone moved it: theirs stands
                    raise LostRace(
                        f"{self.name}: the address moved to {self._where(now)} since we read it "
                        f"(association {association} is gone); nothing was changed"
                    ) from None
                # unassociated now (our own retried call, or another writer mid-move): the
                # associate below is conditional on exactly that
        try:
            self._call("AssociateAddress", AllocationId=self.allocation_id, AllowReassociation=False, **target.params())
        except AwsError as exc:
            if exc.code == "Resource.AlreadyAssociated":
                now = self.read()
                if now.extra_as(EipExtra).holder == target:
                    return  # a retried call of ours: the first attempt went through
                raise LostRace(
                    f"{self.name}: another writer associated the address with {self._where(now)} "
                    "between our read and our move; nothing of theirs was overwritten"
                ) from None
            left = " and the address is left unassociated until the next cycle" if association else ""
            raise AdapterError(f"{exc}{left}") from None

    def verify(self, desired: Desired) -> None:
        healthy = self.healthy(desired)
        if not healthy:
            return  # nothing was asked of this region

        def elsewhere(live: Live) -> VerifyError:
            names = ", ".join(t.label() for t in healthy)
            return VerifyError(
                f"{self.name}: after {self.wait:g}s DescribeAddresses still shows {self._where(live)}, "
                f"not one of {names}"
            )

        poll_until(
            self.read(), self.read, lambda live: live.extra_as(EipExtra).holder in healthy,
            wait=self.wait, sleep=self._sleep, first_delay=0.25, max_delay=2.0, timed_out=elsewhere,
        )

    def check_access(self) -> str:
        live = self.read()
        found = live.extra_as(EipExtra)
        association = found.association_id
        instances = [t.resource for t in self.targets if t.is_instance]
        enis = [t.resource for t in self.targets if not t.is_instance]
        if instances:
            self._call("DescribeInstances", InstanceIds=instances)
        if enis:
            self._call("DescribeNetworkInterfaces", NetworkInterfaceIds=enis)
        granted = (
            ["ec2:DescribeAddresses"]
            + (["ec2:DescribeInstances"] if instances else [])
            + (["ec2:DescribeNetworkInterfaces"] if enis else [])
        )
        trials: list[tuple[str, dict[str, Any]]] = [
            (
                "AssociateAddress",
                {"AllocationId": self.allocation_id, "AllowReassociation": False, **self.targets[0].params()},
            ),
        ]
        if association:
            trials.append(("DisassociateAddress", {"AssociationId": association}))
        for operation, params in trials:
            try:  # DryRun: EC2 checks the permission and answers DryRunOperation, changing nothing
                self._call(operation, DryRun=True, **params)
            except AwsError as exc:
                if exc.code != "DryRunOperation":
                    raise
            granted.append(f"ec2:{operation}")
        untried = "" if association else " (ec2:DisassociateAddress untried: not associated)"
        return (
            f"{self.name}: {found.public_ip} on {self._where(live)}; granted {', '.join(granted)}{untried}"
        )
