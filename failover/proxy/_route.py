"""What the proxy relays to: an immutable, ordered list of tiers of gateway addresses."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from failover.policy import Policy

Tier = tuple[str, tuple[str, ...]]
"""``(region name, (address, ...))``: one region's healthy gateways, in the order given."""


@dataclass(frozen=True, slots=True)
class Route:
    """Where new connections go, in order of preference.

    ``tiers[0]`` is the elected primary region's healthy gateways, ``tiers[1]`` the
    secondary's, and so on. New connections are balanced over the first non-empty tier;
    a connect failure moves on at once to the next address of that tier, then to the next
    tier. An address is an IP (relayed to ``proxy.upstream_port``) or ``host:port`` /
    ``[v6]:port`` (for tests and the standalone entry point).

    Two routes with the same tiers are equal; handing the proxy an equal route is a no-op.
    """

    tiers: tuple[Tier, ...] = ()

    def __post_init__(self) -> None:
        # Accept lists from JSON or careless callers, but store tuples: the route is hashable.
        tiers = tuple((str(region), tuple(str(a) for a in addrs)) for region, addrs in self.tiers)
        for region, addrs in tiers:
            for addr in addrs:
                split_address(addr, 1)  # raises ValueError naming the bad address
            if not region:
                raise ValueError("a route tier needs a region name")
        object.__setattr__(self, "tiers", tiers)

    @classmethod
    def single(cls, region: str, *addresses: str) -> Route:
        return cls(((region, tuple(addresses)),))

    @classmethod
    def for_regions(
        cls, policy: Policy, regions: Iterable[str | None], usable: Callable[[str], bool]
    ) -> Route:
        """The route through ``regions`` in order, e.g. ``(primary, secondary)`` of a decision.

        Each tier holds the addresses of the region's gateways for which ``usable(gateway
        name)`` is true (e.g. "the probes say up"), in policy order. ``None`` and regions the
        policy does not know are skipped.
        """
        by_name = {r.name: r for r in policy.regions}
        tiers: list[Tier] = []
        for name in regions:
            region = by_name.get(name) if name is not None else None
            if region is not None and all(region.name != t[0] for t in tiers):
                tiers.append((region.name, tuple(gw.address for gw in region.gateways if usable(gw.name))))
        return cls(tuple(tiers))

    @property
    def empty(self) -> bool:
        """No address at all: new connections are closed at once."""
        return not any(addrs for _, addrs in self.tiers)

    def to_json(self) -> list[list[object]]:
        return [[region, list(addrs)] for region, addrs in self.tiers]

    @classmethod
    def from_json(cls, data: object) -> Route:
        if not isinstance(data, list):
            raise ValueError("a route is a list of [region, [address, ...]]")
        tiers: list[Tier] = []
        for item in data:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], list)):
                raise ValueError("a route is a list of [region, [address, ...]]")
            tiers.append((str(item[0]), tuple(str(a) for a in item[1])))
        return cls(tuple(tiers))

    def __str__(self) -> str:
        if self.empty:
            return "nowhere"
        return " then ".join(f"{region} ({', '.join(addrs)})" for region, addrs in self.tiers if addrs)


def split_address(address: str, default_port: int, *, allow_zero: bool = False) -> tuple[str, int]:
    """``"10.0.0.1"`` -> ``("10.0.0.1", default_port)``; ``"[::1]:80"`` -> ``("::1", 80)``.

    ``allow_zero`` accepts port 0 (for a listen address: any free port).
    """
    text = address.strip()
    host, port = text, default_port
    if text.startswith("["):
        inner, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"'{address}' is not an address: use IP, IP:port or [IPv6]:port")
        host = inner
        if rest:
            port = _port(rest[1:], address, allow_zero)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, address, allow_zero)
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"'{address}' is not an address: use IP, IP:port or [IPv6]:port") from None
    return host, port


def _port(text: str, address: str, allow_zero: bool) -> int:
    if not text.isdigit() or not (0 if allow_zero else 1) <= int(text) < 65536:
        raise ValueError(f"'{address}' has no valid port")
    return int(text)
