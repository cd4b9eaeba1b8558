"""The state store interface. The embedded default is sqlite; a distributed backend (etcd)
fits the same contract.

Contract every backend keeps:

* ``put_state(state, expect_epoch)`` is an atomic compare-and-set on the domain's epoch:
  it writes only when the stored epoch equals ``expect_epoch`` (``None``: no row yet) and
  returns False otherwise, writing nothing. Two coordinators deciding at once cannot both
  record a change; the loser re-reads and decides again.
* Every other write is atomic on its own (one row / one key) and idempotent.
* ``audit()`` appends; entries are never rewritten. ``history()`` returns them oldest first.
* Observations (streaks, region verdicts) are kept per observer, so that with a shared store
  each coordinator's view is one vote in the quorum.
* Leadership: ``campaign(observer)`` renews this process's lease and takes or keeps the
  leader key; ``leading()`` returns the fencing token while this process may act *now*, else
  None. The token only grows from one leader to the next (etcd: the leader key's create
  revision) and goes into the DNS marker, so an adapter refuses a writer whose token is older
  than the live marker's. ``leading()`` turns None at a local deadline computed from when the
  last successful keepalive was *sent*, before the lease can have expired at the server. A
  backend without leases (sqlite on one machine) always leads with token 0: concurrent writers
  there are fenced by ``put_state`` and by the adapters' markers.
* Observations and membership live under the process's lease where the backend has leases,
  so a dead observer's report disappears with it.
* Calls finish within the backend's timeout or raise ``StoreError``; on ``StoreError`` the
  caller changes no traffic.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from failover.model import AuditEntry, DomainState, Drain, Override, RegionHealth, Streak, StreakKey


class Store(ABC):
    url: str

    # -- decisions ---------------------------------------------------------------------------
    @abstractmethod
    def get_state(self, domain: str) -> DomainState | None: ...

    @abstractmethod
    def put_state(self, state: DomainState, expect_epoch: int | None) -> bool: ...

    # -- observations, per observer -----------------------------------------------------------
    @abstractmethod
    def get_streaks(self, observer: str) -> dict[StreakKey, Streak]: ...

    @abstractmethod
    def put_streaks(self, observer: str, streaks: Mapping[StreakKey, Streak]) -> None: ...

    @abstractmethod
    def get_region_health(self, observer: str) -> dict[tuple[str, str], RegionHealth]:
        """(domain, region) -> this observer's verdict."""

    @abstractmethod
    def put_region_health(self, observer: str, health: Mapping[tuple[str, str], RegionHealth], now: float) -> None: ...

    @abstractmethod
    def all_region_health(
        self, fresh_after: float, others_than: str | None = None
    ) -> dict[str, dict[tuple[str, str], RegionHealth]]:
        """observer -> verdicts, for observers that reported at or after ``fresh_after``;
        ``others_than`` leaves that observer out (a coordinator has its own in memory)."""

    # -- operator intent ---------------------------------------------------------------------
    @abstractmethod
    def overrides(self) -> dict[str, Override]: ...

    @abstractmethod
    def set_override(self, override: Override) -> None: ...

    @abstractmethod
    def clear_override(self, domain: str, expect: Override | None = None) -> Override | None:
        """Remove and return the domain's override; with ``expect``, only if it is still that
        one (atomic), so expiring an old override never deletes a newer one."""

    @abstractmethod
    def drains(self) -> dict[str, Drain]: ...

    @abstractmethod
    def set_drain(self, drain: Drain) -> None: ...

    @abstractmethod
    def clear_drain(self, region: str) -> Drain | None: ...

    # -- audit -------------------------------------------------------------------------------
    @abstractmethod
    def audit(self, entry: AuditEntry) -> None: ...

    @abstractmethod
    def history(self, domain: str | None = None, limit: int | None = None) -> list[AuditEntry]: ...

    # -- leadership and membership -------------------------------------------------------------
    def campaign(self, observer: str, take: bool = True) -> int | None:
        """Renew this process's lease, take or keep the leader key; the token while leading.
        ``take=False`` renews the lease and membership only (a leader standing down)."""
        return 0

    def leading(self) -> int | None:
        """The fencing token while this process may act now; None when it may not."""
        return 0

    def resign(self) -> None:  # noqa: B027 - optional hook
        """Give the leader key up at once (a clean shutdown), so another coordinator takes over."""

    def leader(self) -> str | None:
        """Who leads now (for ``status``); None when nobody does or the backend has no leader."""
        return None

    def members(self) -> dict[str, float]:
        """Observers whose session is alive now: name -> when they last renewed it (unix time)."""
        return {}

    def last_seen(self) -> dict[str, float]:
        """Every observer that ever renewed a session here: name -> when it last did."""
        return {}

    def wait_for_change(self, timeout: float) -> bool:
        """Block up to ``timeout`` for another process's change that calls for a new evaluation
        (a report, an override, a drain, a decision, the leader key); True when one came. A
        store no other coordinator writes to has nothing to wait for."""
        return False

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
