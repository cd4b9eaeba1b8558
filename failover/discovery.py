"""Gateways found through DNS (``gateways_from``): a resolver loop per region that keeps the
region's current gateway set, which every reader gets from ``policy.region(name).gateways``.

The rules, and why:

* **Names.** A/AAAA answers give ``<region>-<address>`` (``east-10.0.0.5``; ``:`` becomes ``-``
  for IPv6): an address is all an A record says, and it is stable for the life of a pod or VM.
  SRV answers give the target host (``web-0.gw.east.svc.cluster.local``, Consul's
  ``<node>.node.<dc>.consul``), stable across restarts of a StatefulSet replica or a node, so its
  streaks, verdicts and metrics keep their key when its address changes; a target with several
  addresses gives ``<target>-<address>`` per address. Names over 63 characters are cut and end in
  a digest of the whole name (still unique, still stable). A listed gateway wins over a
  discovered one with the same name or address.
* **Adding is at once**: a new replica is probed from the next answer on, and published once its
  probes pass (``rise``), like any gateway.
* **Removing waits.** A gateway missing from the answers stays (probed, published while up)
  for ``grace`` (default three refreshes) and then leaves; if it is really gone its probes fail
  first and it leaves the published answer after ``fall`` probes, as a listed gateway would.
  A partial or flapping answer (one DNS server of several behind, a Consul agent restarting, a
  pod briefly not ready) therefore never drops a healthy gateway.
* **A failed answer keeps the last set.** A timeout, SERVFAIL, NXDOMAIN or an empty answer is a
  failure, never "zero gateways": nothing leaves, and ``DiscoveryFailed`` is told once (the
  audit log, the alerts, the metrics), ``DiscoveryRecovered`` when it answers again. A region
  whose gateways are really all gone goes down through its probes, not through DNS.
* **At start** the daemon waits up to ``startup_wait`` for each region's first answer. A
  region still without one starts empty: its verdict is UNKNOWN ("no gateway discovered yet":
  never elected, never "0/0 down"), ``DiscoveryFailed`` says so, and the loop keeps retrying.

``Discovery`` holds the loops; ``attach`` wires one to a daemon (probe schedule in step).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from failover import events as ev
from failover.policy import Gateway, Policy, Region
from failover.policy._discovery import GatewaysFrom

if TYPE_CHECKING:
    from failover.daemon import Daemon

log = logging.getLogger("failover.discovery")

NAME_MAX = 63  # the policy's gateway-name limit
RETRY_BEFORE_FIRST_ANSWER = 5.0  # seconds between tries while a region has no answer yet (if refresh is longer)

Resolve = Callable[[GatewaysFrom, str], Awaitable[list[Gateway]]]
Emit = Callable[..., object]  # the coordinator's ``emit(EventClass, **fields)``


class DiscoveryError(Exception):
    """No usable answer (timeout, SERVFAIL, NXDOMAIN, empty): the last known set stays."""


def gateway_name(region: str, address: str, target: str | None = None, several: bool = False) -> str:
    """The stable gateway name for a discovered address (see the module's rules): ``several``
    when the SRV target has more than one address."""
    flat = address.replace(":", "-")
    base = f"{region}-{flat}" if target is None else target.rstrip(".").lower() + (f"-{flat}" if several else "")
    base = re.sub(r"[^a-z0-9._-]", "-", base.lower()).lstrip(".-_")
    if len(base) > NAME_MAX:
        digest = hashlib.sha256(base.encode()).hexdigest()[:8]
        base = base[: NAME_MAX - 9].rstrip(".-") + "-" + digest
    return base


async def _server_address(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        infos = await asyncio.get_running_loop().getaddrinfo(host, 53, type=socket.SOCK_DGRAM)
        return str(infos[0][4][0])


async def resolve(source: GatewaysFrom, region: str) -> list[Gateway]:
    """One resolution of ``source``: the gateways it names now, in answer order. Raises
    ``DiscoveryError`` for anything that is not a non-empty answer."""
    try:
        resolver = dns.asyncresolver.Resolver(configure=source.host_port is None)  # no cache: every answer is fresh
        if source.host_port is not None:
            host, port = source.host_port
            resolver.nameservers = [await _server_address(host)]
            resolver.port = port
        resolver.lifetime = source.timeout_seconds
        resolver.timeout = source.timeout_seconds
        if source.type == "SRV":
            found = await _srv(resolver, source.dns, region)
        else:
            answer = await resolver.resolve(source.dns, source.type)
            found = [Gateway(name=gateway_name(region, r.address), address=r.address) for r in answer]
    except dns.resolver.NXDOMAIN:
        raise DiscoveryError(f"{source.dns} does not exist (NXDOMAIN)") from None
    except dns.resolver.NoAnswer:
        raise DiscoveryError(f"{source.dns} has no {source.type} records") from None
    except dns.exception.Timeout:
        raise DiscoveryError(f"no answer within {source.timeout_seconds:g}s") from None
    except (dns.exception.DNSException, OSError, ValueError) as exc:  # ValueError: a name no gateway can have
        raise DiscoveryError(str(exc) or type(exc).__name__) from None
    if not found:
        raise DiscoveryError(f"{source.dns} gave no usable {source.type} answer")
    return _unique(found)


async def _srv(resolver: dns.asyncresolver.Resolver, name: str, region: str) -> list[Gateway]:
    answer = await resolver.resolve(name, "SRV")
    targets = [r.target.to_text().rstrip(".").lower() for r in sorted(answer, key=lambda r: (r.priority, -r.weight))]
    targets = [t for t in dict.fromkeys(targets) if t]  # "." means "no service here"
    glue: dict[str, list[str]] = {}  # Kubernetes, Consul and BIND send the targets' addresses along
    for rrset in answer.response.additional:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            glue.setdefault(rrset.name.to_text().rstrip(".").lower(), []).extend(r.address for r in rrset)
    found: list[Gateway] = []
    for target in targets:
        addresses = glue.get(target) or await _addresses(resolver, target)
        for address in addresses:
            name = gateway_name(region, address, target, several=len(addresses) > 1)
            found.append(Gateway(name=name, address=address))
    return found


async def _addresses(resolver: dns.asyncresolver.Resolver, target: str) -> list[str]:
    """A target's addresses; none for a target that does not resolve (the others still count,
    and a gateway it named leaves only after the grace time). A timeout fails the whole answer."""
    for rdtype in ("A", "AAAA"):
        with contextlib.suppress(dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            return [r.address for r in await resolver.resolve(target, rdtype)]
    return []


def _unique(gateways: Iterable[Gateway]) -> list[Gateway]:
    """One gateway per name and per address: the first wins."""
    names: set[str] = set()
    addresses: set[str] = set()
    kept: list[Gateway] = []
    for gw in gateways:
        if gw.name not in names and gw.address not in addresses:
            kept.append(gw)
            names.add(gw.name)
            addresses.add(gw.address)
    return kept


@dataclass(frozen=True)
class Seen:
    gateway: Gateway
    at: float  # the last answer that held it


def merge(known: Mapping[str, Seen], answer: Sequence[Gateway], now: float, grace: float) -> dict[str, Seen]:
    """The set after a good answer: everything in it, plus what it lacks but was seen within
    ``grace`` (unless its address now belongs to a gateway of the answer)."""
    current = {gw.name: Seen(gw, now) for gw in answer}
    taken = {gw.address for gw in answer}
    for name, seen in known.items():
        if name not in current and now - seen.at < grace and seen.gateway.address not in taken:
            current[name] = seen
    return dict(sorted(current.items()))


@dataclass
class _Source:
    region: Region
    spec: GatewaysFrom
    known: dict[str, Seen]
    failing: str | None = None  # the error while resolution fails
    told: bool = False  # DiscoveryFailed was told for the current failure
    answered: bool = False

    def discovered(self) -> set[str]:
        listed = {gw.name for gw in self.region.listed}
        return {gw.name for gw in self.region.gateways} - listed


Change = Callable[[set[str], set[str]], None]  # (gateway names added, names removed)


class Discovery:
    """The resolver loops of a policy's ``gateways_from`` regions. Each good answer updates the
    region's set in place (``Region.set_discovered``), so ``policy.region(name).gateways`` (also
    ``current(name)``) is always the current set, for every reader: probes, verdicts, the
    published records, the embedded proxy and any other proxy that asks."""

    def __init__(
        self,
        policy: Policy,
        emit: Emit,
        on_change: Change | None = None,
        resolver: Resolve = resolve,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.policy = policy
        self._emit = emit
        self.on_change = on_change
        self._resolve = resolver
        self._clock = clock
        self._sources = [_Source(r, r.gateways_from, {}) for r in policy.regions if r.gateways_from is not None]
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def regions(self) -> list[str]:
        return [s.region.name for s in self._sources]

    def current(self, region: str) -> list[Gateway]:
        """The region's gateways now: listed, then discovered (the same as ``policy.region(region).gateways``)."""
        return self.policy.region(region).gateways

    def failing(self, region: str) -> str | None:
        """Why the region's discovery fails now; None while it answers."""
        return next((s.failing for s in self._sources if s.region.name == region), None)

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    async def _tell(self, cls: type[ev.Event], **fields: Any) -> None:
        """Through the event bus, off the loop: the audit log writes to the store."""
        try:
            await asyncio.to_thread(self._emit, cls, **fields)
        except Exception:
            log.exception("cannot record %s", cls.__name__)

    async def refresh(self, source: _Source, tell_failure: bool = True) -> tuple[set[str], set[str]]:
        """Resolve once and apply the answer; ``(added, removed)`` gateway names."""
        region, spec = source.region, source.spec
        try:
            answer = await self._resolve(spec, region.name)
        except DiscoveryError as exc:
            source.failing = str(exc)
            if tell_failure and not source.told:  # once per outage
                await self._failed(source)
            return set(), set()
        before = source.discovered()
        source.known = merge(source.known, answer, self._now(), spec.grace_seconds)
        region.set_discovered(tuple(seen.gateway for seen in source.known.values()))
        after = source.discovered()
        added, removed = after - before, before - after
        source.answered = True
        source.failing = None
        if source.told:
            source.told = False
            log.info("%s: %s answers again (%d gateways)", region.name, spec.dns, len(after))
            await self._tell(ev.DiscoveryRecovered, region=region.name, source=spec.dns, gateways=len(after))
        if added or removed:
            log.info("%s: %s: +%s -%s", region.name, spec.dns, sorted(added), sorted(removed))
            await self._tell(
                ev.GatewaysDiscovered,
                region=region.name,
                source=spec.dns,
                added=tuple(sorted(added)),
                removed=tuple(sorted(removed)),
                gateways=len(after),
            )
        return added, removed

    async def _failed(self, source: _Source) -> None:
        source.told = True
        kept = len(source.discovered())
        log.warning("%s: cannot resolve %s: %s (keeping %d)", source.region.name, source.spec.dns, source.failing, kept)
        await self._tell(
            ev.DiscoveryFailed,
            region=source.region.name,
            source=source.spec.dns,
            error=source.failing or "",
            kept=kept,
        )

    async def first_answers(self) -> None:
        """Each region's first answer, waiting up to its ``startup_wait``; a region without one
        starts empty (verdict UNKNOWN) and is told as DiscoveryFailed."""
        await asyncio.gather(*(self._first(s) for s in self._sources))

    async def _first(self, source: _Source) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + source.spec.startup_wait
        while True:
            await self.refresh(source, tell_failure=False)
            left = end - loop.time()
            if source.answered or left <= 0:
                break
            await asyncio.sleep(min(0.5, left))
        if not source.answered:
            await self._failed(source)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(s), name=f"discovery-{s.region.name}") for s in self._sources]

    async def _loop(self, source: _Source) -> None:
        while True:
            pause = source.spec.refresh
            if not source.answered:
                pause = min(pause, RETRY_BEFORE_FIRST_ANSWER)
            await asyncio.sleep(pause)
            try:  # a bug here must not end the loop: the region would silently stop following DNS
                added, removed = await self.refresh(source)
                if (added or removed) and self.on_change is not None:
                    self.on_change(added, removed)
            except Exception:
                log.exception("cannot follow the discovered gateways of %s", source.region.name)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


async def discover_once(policy: Policy, resolver: Resolve = resolve) -> list[str]:
    """For one-shot commands (``check``, ``plan``, ``status``, cron runs): resolve each
    ``gateways_from`` once and set the regions' gateways; no waiting, no events. Returns one
    line per region that could not be resolved (it stays without discovered gateways: UNKNOWN)."""
    sources = [(r, r.gateways_from) for r in policy.regions if r.gateways_from is not None]
    answers = await asyncio.gather(*(resolver(spec, r.name) for r, spec in sources), return_exceptions=True)
    problems: list[str] = []
    for (region, spec), answer in zip(sources, answers, strict=True):
        if isinstance(answer, DiscoveryError):
            problems.append(f"{region.name}: cannot resolve {spec.dns}: {answer}")
        elif isinstance(answer, BaseException):
            raise answer
        else:
            region.set_discovered(tuple(sorted(answer, key=lambda gw: gw.name)))
    return problems


def retarget(daemon: Daemon, added: Collection[str], removed: Collection[str]) -> None:
    """Probe the gateways discovery added, stop probing the ones it removed, re-evaluate."""
    from failover.probes import build_probes

    gone = [key for key in daemon.app.probes if key.gateway in removed]
    fresh = build_probes(daemon.policy, added) if added else {}
    daemon.retarget(fresh, gone)
    daemon.coordinator.forget(removed)
    daemon.request_evaluation()


async def attach(daemon: Daemon) -> Discovery | None:
    """For a policy with ``gateways_from``: wait for the first answers, probe what they gave
    (before the schedule starts), and keep following. None when nothing is discovered."""
    if all(r.gateways_from is None for r in daemon.policy.regions):
        return None
    discovery = Discovery(daemon.policy, daemon.coordinator.emit)
    await discovery.first_answers()
    found = {gw.name for name in discovery.regions for gw in discovery.current(name)}
    retarget(daemon, found - {key.gateway for key in daemon.app.probes}, ())
    discovery.on_change = lambda added, removed: retarget(daemon, added, removed)
    discovery.start()
    return discovery
