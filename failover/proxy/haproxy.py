"""``proxy: {kind: haproxy}``: an HAProxy that is already there follows the decision and the verdicts.

Instead of relaying in-process, the daemon programs one backend of an existing HAProxy through
its Runtime API (``failover/proxy/haproxy_api.py``), with the same follow rule as the embedded
proxy (``plan_traffic`` in ``follow.py``), applied at once on every verdict change, before DNS:

* the gateways of the first tier that has any usable one (the primary's, or the secondary's
  when none of the primary's is usable) are ``ready`` at their configured weight (``100%``);
* other gateways that are not down (the secondary's, a drained region's) are ``drain``: no new
  connections, open ones finish;
* gateways the probes call down are ``maint``;
* fail static: when no gateway of the primary or the secondary is usable, the primary's stay
  ``ready`` (as the engine keeps the primary): a 503 for everyone is no better than trying them,
  and HAProxy's own checks, if the backend has them, still judge;
* before the first decision nothing is touched: the daemon starting never disturbs traffic.

Servers are found by name: the backend's server named after each of the policy's gateways.
A gateway without one takes a spare server, i.e. one named after no gateway (a
``server-template`` slot): the one already pointing at its address if any (a restarted daemon
keeps its mapping), else the first free one; spare servers without a gateway are ``maint``.
That is how discovered replicas with names HAProxy has never seen get a server. Each server's
address is set to its gateway's (``set server ... addr``; the port too when the policy gives
``upstream_port``, else HAProxy's configured port stays).

With ``on_connect_failure`` the follower also reads HAProxy's per-server counters (``show stat``)
every ``WATCH_INTERVAL`` and reports a gateway whose failed connects grew, or that HAProxy's own
check marked DOWN: the daemon starts confirmation probes at once (``failover/passive.py``), as
it does for the embedded proxy's failed connects. And when every ``ready`` (active) server had
failed connects within ``SPILL_WINDOW``, the standby servers are made ``ready`` too for
``SPILL_TIME`` (renewed while it lasts): HAProxy's ``option redispatch`` then retries a refused
connect on them, as the embedded proxy moves on to the next tier, without waiting for the
verdict (which then puts the dead ones in ``maint``). Without the watch a dead primary region
is seen only by the scheduled probes (interval x fall), while the secondary's servers stay drained.

Every change reads ``show servers state`` first and sends only what differs; servers that
become ``ready`` are set before the others leave, so the backend never has none. The state is
read and re-applied every few seconds too: a reloaded HAProxy or a hand-made change is put back,
and a failed command is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from failover.model import DomainState, Status
from failover.proxy.follow import TrafficPlan, plan_traffic
from failover.proxy.haproxy_api import AdminState, RuntimeApi, RuntimeApiError, ServerState

if TYPE_CHECKING:
    from failover.policy import Policy
    from failover.policy import Proxy as ProxyConfig

log = logging.getLogger("failover.proxy.haproxy")

RESYNC_INTERVAL = 5.0  # seconds between reads of HAProxy's state without a change of ours
RETRY_INTERVAL = 1.0  # after a failed Runtime API call
WATCH_INTERVAL = 0.1  # between reads of the connect-error counters (on_connect_failure)
SPILL_WINDOW = 1.0  # every active server failed a connect within this: the standby ones take connections too
SPILL_TIME = 3.0  # ... for this long after the last such moment


class HaproxyFollower:
    """Like ``RouteFollower``: ``decided(domain)`` and ``statuses(domain)`` answer from memory.

    Call it (no argument, or an evaluation's outcomes) whenever a verdict or decision may have
    changed; it computes the plan at once and wakes the task that applies it.
    """

    def __init__(
        self,
        config: ProxyConfig,
        policy: Policy,
        domain: str,
        decided: Callable[[str], DomainState | None],
        statuses: Callable[[str], Mapping[str, Status]],
        api: RuntimeApi | None = None,
    ) -> None:
        if config.runtime_api is None or config.backend is None:
            raise ValueError("a haproxy proxy block needs runtime_api and backend")
        self.policy = policy
        self.domain = domain
        self.backend = config.backend
        self.port = config.upstream_port if "upstream_port" in config.model_fields_set else None
        self.api = api or RuntimeApi(config.runtime_api)
        self._decided = decided
        self._statuses = statuses
        self._plan: TrafficPlan | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._slots: dict[str, str] = {}  # gateway -> spare server it was given
        self._assignment: dict[str, str] = {}  # gateway -> server, as last applied
        self._listener: Callable[[str], None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._failed_at: dict[str, float] = {}  # gateway -> when HAProxy last counted a failed connect to it
        self._spill_until = 0.0  # the standby servers are ready until then (loop time)
        self._last_error: str | None = None
        self.commands = 0  # set-commands sent, for tests and logs
        self.applied = asyncio.Event()  # set after every apply that found nothing left to do

    @property
    def plan(self) -> TrafficPlan | None:
        return self._plan

    def __call__(self, _: object = None) -> None:
        plan = plan_traffic(self.policy, self._decided(self.domain), self._statuses(self.domain))
        if plan != self._plan:
            self._plan = plan
            self.applied.clear()
            self._wake.set()

    async def start(self) -> None:
        """Check the backend and its servers (a missing one is an error naming it), apply once, follow."""
        servers = await self.api.servers(self.backend)
        _, missing = self._assign(servers)
        if missing:
            raise RuntimeApiError(_missing_message(self.backend, missing))
        self()
        await self._apply()
        self._task = asyncio.create_task(self._follow(), name="haproxy-follower")
        if self._listener is not None:
            self._watcher = asyncio.create_task(self._watch(self._listener), name="haproxy-watch")

    async def stop(self) -> None:
        for task in (self._task, self._watcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._watcher = None

    def on_connect_failure(self, listener: Callable[[str], None]) -> bool:
        """Like ``Proxy.on_connect_failure``: ``listener(gateway address)``, in the loop's thread,
        when HAProxy counts failed connects to its server or its check marks it DOWN. Call before start()."""
        self._listener = listener
        return True

    async def _watch(self, listener: Callable[[str], None]) -> None:
        seen: dict[str, tuple[int, bool]] = {}
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            try:
                stats = await self.api.server_stats(self.backend)
            except RuntimeApiError:
                continue  # the follow loop logs an unreachable Runtime API
            gateway_of = {server: gateway for gateway, server in self._assignment.items()}
            gateways = self._gateways()
            now = asyncio.get_running_loop().time()
            failed = False
            for server, stat in stats.items():
                errors, down = stat.connect_errors, stat.status.startswith("DOWN")
                before = seen.get(server)
                seen[server] = (errors, down)
                gateway = gateway_of.get(server)
                if gateway is None or gateway not in gateways or before is None:
                    continue
                if errors > before[0] or (down and not before[1]):
                    self._failed_at[gateway] = now
                    failed = True
                    listener(gateways[gateway][1])
            self._spill(now, failed, gateways)

    def _spill(self, now: float, failed: bool, gateways: Mapping[str, tuple[str, str]]) -> None:
        """Start, renew or end the spill-over to the standby servers (see the module's docstring)."""
        plan = self._plan
        active = [gw for gw in gateways if plan is not None and plan.role(gw) == "active"]
        if failed and active and all(now - self._failed_at.get(gw, -SPILL_WINDOW - 1) <= SPILL_WINDOW for gw in active):
            if now >= self._spill_until:
                log.warning("haproxy: connects to every active server fail: the standby servers take connections too")
                self._wake.set()
            self._spill_until = now + SPILL_TIME
        elif self._spill_until and now >= self._spill_until:
            self._spill_until = 0.0
            self._wake.set()  # back to the plan

    def _gateways(self) -> dict[str, tuple[str, str]]:
        """Gateway name -> (region, address), read at every apply: the set may change at run time."""
        return {gw.name: (region.name, str(gw.address)) for region in self.policy.regions for gw in region.gateways}

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESYNC_INTERVAL):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._apply()
            except RuntimeApiError as exc:
                if str(exc) != self._last_error:
                    log.error("haproxy: %s (retrying every %.0fs)", exc, RETRY_INTERVAL)
                    self._last_error = str(exc)
                await asyncio.sleep(RETRY_INTERVAL)
                self._wake.set()

    async def _apply(self) -> None:
        plan = self._plan
        if plan is None:
            return  # nothing decided yet: leave HAProxy as its configuration has it
        servers = await self.api.servers(self.backend)
        assignment, missing = self._assign(servers)
        if missing:
            log.error("haproxy: %s", _missing_message(self.backend, missing))
        wanted = self._wanted(plan, assignment, servers)
        arriving = [name for name, (state, _) in wanted.items() if state == "ready"]
        leaving = [name for name in wanted if name not in arriving]
        # new traffic somewhere first, then away from the rest: the backend never has no server
        for group in (arriving, leaving):
            await asyncio.gather(*(self._converge(servers[name], *wanted[name]) for name in group))
        if self._last_error is not None:
            log.info("haproxy: Runtime API answers again")
            self._last_error = None
        if self._plan is plan:
            self.applied.set()

    def _wanted(
        self, plan: TrafficPlan, assignment: Mapping[str, str], servers: Mapping[str, ServerState]
    ) -> dict[str, tuple[AdminState, str | None]]:
        """Server name -> (admin state, address or None to leave it)."""
        gateways = self._gateways()
        spilling = asyncio.get_running_loop().time() < self._spill_until
        wanted: dict[str, tuple[AdminState, str | None]] = {
            name: ("maint", None) for name in servers if name not in gateways  # spare until given a gateway
        }
        for gateway, server in assignment.items():
            region, address = gateways[gateway]
            role = plan.role(gateway)
            if role == "active" or (role == "standby" and spilling) or (plan.fail_static and region == plan.primary):
                state: AdminState = "ready"
            else:
                state = "maint" if role == "down" else "drain"
            wanted[server] = (state, address)
        return wanted

    async def _converge(self, server: ServerState, state: AdminState, address: str | None) -> None:
        name, api, backend = server.name, self.api, self.backend
        if address is not None and (server.address != address or self.port not in (None, server.port)):
            port = self.port if self.port is not None else server.port
            await api.set_address(backend, name, address, port)
            self._changed(name, f"address {server.address}:{server.port} -> {address}:{port}")
        if state == "ready" and server.weight != server.initial_weight:
            await api.set_weight(backend, name, "100%")
            self._changed(name, f"weight {server.weight} -> {server.initial_weight} (configured)")
        if server.admin != state:
            await api.set_state(backend, name, state)
            self._changed(name, f"{server.admin} -> {state}")

    def _changed(self, server: str, what: str) -> None:
        self.commands += 1
        log.info("haproxy: %s/%s %s", self.backend, server, what)

    def _assign(self, servers: Mapping[str, ServerState]) -> tuple[dict[str, str], list[str]]:
        """Gateway -> server: its namesake, else a spare (kept from before, else the one at its
        address, else the first free). Also the gateways left without a server."""
        gateways = self._gateways()
        assignment = {gw: gw for gw in gateways if gw in servers}
        spare = [name for name in servers if name not in gateways]
        slots = {gw: s for gw, s in self._slots.items() if gw in gateways and gw not in assignment and s in spare}
        free = [s for s in spare if s not in slots.values()]
        missing: list[str] = []
        for gw, (_, address) in gateways.items():
            if gw in assignment or gw in slots:
                continue
            at_address = [s for s in free if servers[s].address == address]
            if not (at_address or free):
                missing.append(gw)
                continue
            slot = (at_address or free)[0]
            free.remove(slot)
            slots[gw] = slot
            log.info("haproxy: gateway %s gets the spare server %s/%s", gw, self.backend, slot)
        self._slots = slots
        self._assignment = {**assignment, **slots}
        return self._assignment, missing


def _missing_message(backend: str, missing: list[str]) -> str:
    names = ", ".join(f"'{name}'" for name in missing)
    return (
        f"HAProxy backend '{backend}' has no server named {names} and no spare server for it: add "
        f"'server <gateway name> <address>:<port>' lines named after the policy's gateways, "
        f"or spare ones ('server-template')"
    )
