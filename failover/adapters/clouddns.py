"""Google Cloud DNS (google-cloud-dns): the records and the marker in one conditional change.

A Cloud DNS change (``changes.create``) is atomic, and each of its deletions must match the
stored RRset exactly (name, type, TTL, every rrdata), or the whole change is refused
(``412 conditionNotMet``; ``404`` for an RRset that is gone; ``409 alreadyExists`` for an
addition that is already there). Each change we send deletes, exactly as ``read()`` saw
them, the RRsets it replaces and the marker ``_failover.<domain>`` TXT, and adds the new
ones. A writer that changed any of them after our read makes the change fail whole: a lost
race, nothing written. After the change is accepted we poll it (``changes.get``) until
``done``, within ``wait``.

Credentials: Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``, the
metadata server, ``gcloud auth application-default login``). With ``endpoint`` set in the
adapter block (a local stand-in), the client talks to that base URL with anonymous
credentials. Transient answers (429, 5xx, connection errors) are retried with backoff within
``timeout`` per call; a retried change whose first attempt landed is recognised by reading
the marker back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Self, TypeVar

import requests
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry

from failover.adapters._dns import marker_to_write
from failover.adapters._poll import poll_until
from failover.adapters._records import (
    MANAGED_TYPES,
    RecordsAdapter,
    RecordSet,
    fqdn,
)
from failover.adapters.abc import Live, Plan, block_of, marker_name
from failover.errors import AdapterError, LostRace
from failover.policy import CloudDnsTraffic, Policy, Traffic

T = TypeVar("T")

SCOPE = "https://www.googleapis.com/auth/ndev.clouddns.readwrite"
# what each call needs, as an IAM role lists it
PERMISSIONS = {
    "managedZones.get": ("dns.managedZones.get",),
    "resourceRecordSets.list": ("dns.resourceRecordSets.list",),
    "changes.create": ("dns.changes.create", "dns.resourceRecordSets.create", "dns.resourceRecordSets.delete",
                       "dns.resourceRecordSets.update"),
    "changes.get": ("dns.changes.get",),
}
NEEDED = tuple(dict.fromkeys(p for perms in PERMISSIONS.values() for p in perms))
_TRANSIENT = (gexc.TooManyRequests, gexc.InternalServerError, gexc.BadGateway, gexc.ServiceUnavailable,
              gexc.GatewayTimeout, requests.ConnectionError, requests.Timeout)


class _TimeoutSession:
    """The HTTP object the client uses: an AuthorizedSession whose every request gets our
    ``timeout`` (the library asks for 60 s)."""

    def __init__(self, credentials: Any, timeout: float) -> None:
        from google.auth.transport.requests import AuthorizedSession

        self._session: Any = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        self._timeout = timeout

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = self._timeout
        return self._session.request(method, url, *args, **kwargs)


class CloudDnsAdapter(RecordsAdapter):
    kind = "clouddns"
    readback = "Cloud DNS holds"

    def __init__(
        self,
        domain: str,
        project: str,
        managed_zone: str,
        ttl: int = 30,
        *,
        cname: Mapping[str, str] | None = None,
        endpoint: str | None = None,
        timeout: float = 10.0,
        wait: float = 120.0,
        credentials: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(domain, ttl)
        self.project = project
        self.managed_zone = managed_zone
        self.cname: Mapping[str, str] = dict(cname or {})
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.timeout = timeout
        self.wait = wait
        self.fqdn = fqdn(domain)
        self.marker_fqdn = fqdn(marker_name(domain))
        self._credentials = credentials
        self._sleep = sleep
        self._zone: Any = None

    @classmethod
    def from_policy(cls, block: Traffic, domain: str, policy: Policy) -> Self:
        block = block_of(block, CloudDnsTraffic)
        return cls(
            domain, block.project, block.managed_zone, block.ttl, cname=block.cname, endpoint=block.endpoint,
            timeout=block.timeout, wait=block.wait,
        )

    @property
    def name(self) -> str:
        return f"clouddns {self.project}/{self.managed_zone}"

    # -- the client --------------------------------------------------------------------------------

    def zone(self) -> Any:
        """The library's ManagedZone, built on first use (ADC lookups can be slow)."""
        if self._zone is None:
            from google.cloud import dns

            credentials = self._credentials
            options: dict[str, str] | None = None
            if self.endpoint:
                options = {"api_endpoint": self.endpoint}
                if credentials is None:
                    from google.auth.credentials import AnonymousCredentials

                    credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
            if credentials is None:
                import google.auth
                import google.auth.exceptions

                try:
                    credentials, _ = google.auth.default(scopes=[SCOPE])
                except google.auth.exceptions.DefaultCredentialsError as exc:
                    raise AdapterError(
                        f"{self.name}: no Google credentials (Application Default Credentials): set "
                        f"GOOGLE_APPLICATION_CREDENTIALS or run with a service account ({exc})"
                    ) from None
            session = _TimeoutSession(credentials, self.timeout)
            client = dns.Client(project=self.project, credentials=credentials, _http=session, client_options=options)
            self._zone = client.zone(self.managed_zone)
        return self._zone

    def _call(self, what: str, fn: Callable[[], T], passthrough: tuple[type[Exception], ...] = ()) -> T:
        """One API call with transient errors retried within ``timeout``; errors translated
        (those in ``passthrough`` excepted: the caller handles them)."""
        import google.auth.exceptions

        retry = gretry.Retry(predicate=gretry.if_exception_type(*_TRANSIENT), initial=0.1, maximum=2.0,
                             multiplier=2.0, timeout=self.timeout)
        try:
            result: T = retry(fn)()
            return result
        except passthrough:
            raise
        except gexc.Unauthorized as exc:
            raise AdapterError(
                f"{self.name}: Google rejected the credentials for {what} (401: {exc.message}); check "
                "GOOGLE_APPLICATION_CREDENTIALS or the service account"
            ) from None
        except gexc.Forbidden as exc:
            raise AdapterError(
                f"{self.name}: missing permission {' + '.join(PERMISSIONS[what])} for {what} on project "
                f"{self.project} (403: {exc.message}); see docs/permissions.md"
            ) from None
        except google.auth.exceptions.GoogleAuthError as exc:
            raise AdapterError(f"{self.name}: cannot get Google credentials for {what}: {exc}") from None
        except gexc.RetryError as exc:
            cause = exc.cause if exc.cause is not None else exc
            raise AdapterError(
                f"{self.name}: {what} did not succeed within {self.timeout:g}s at {self._base()}: {cause}"
            ) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise AdapterError(f"{self.name}: cannot reach {self._base()} for {what}: {exc}") from None
        except gexc.GoogleAPICallError as exc:
            raise AdapterError(f"{self.name}: {what} refused ({exc.code}: {exc.message})") from None

    def _base(self) -> str:
        return self.endpoint or "https://dns.googleapis.com"

    def _rrsets(self, name: str, rtype: str | None = None) -> list[Any]:
        zone = self.zone()

        def listing() -> list[Any]:
            iterator = zone.list_resource_record_sets()
            iterator.extra_params = {"name": name, **({"type": rtype} if rtype else {})}  # server-side filter
            return [r for r in iterator if fqdn(r.name) == name and (rtype is None or r.record_type == rtype)]

        return self._call("resourceRecordSets.list", listing)

    @staticmethod
    def _record_set(rrs: Any) -> RecordSet:
        return RecordSet(rrs.record_type, int(rrs.ttl), tuple(rrs.rrdatas))

    # -- contract --------------------------------------------------------------------------------

    def read(self) -> Live:
        found = self._rrsets(self.fqdn)
        records = {r.record_type: self._record_set(r) for r in found if r.record_type in MANAGED_TYPES}
        marker_rrs = self._rrsets(self.marker_fqdn, "TXT")
        marker_set = self._record_set(marker_rrs[0]) if marker_rrs else None
        return self.live(records, marker_set)

    def change_body(self, plan: Plan) -> Any:
        """The library's Changes object holding exactly what ``apply`` sends."""
        zone = self.zone()
        deletions, additions = self.record_changes(plan)
        changes = zone.changes()
        for record in deletions:
            changes.delete_record_set(self._wire(zone, record))
        for record in additions:
            changes.add_record_set(self._wire(zone, record))
        return changes

    def _wire(self, zone: Any, record: RecordSet) -> Any:
        name = self.marker_fqdn if record.rtype == "TXT" else self.fqdn
        return zone.resource_record_set(name, record.rtype, record.ttl, list(record.values))

    def apply(self, plan: Plan) -> None:
        if plan.noop:
            return
        written = marker_to_write(plan)
        changes = self.change_body(plan)
        try:
            self._call("changes.create", changes.create, (gexc.PreconditionFailed, gexc.Conflict, gexc.NotFound))
        except (gexc.PreconditionFailed, gexc.Conflict, gexc.NotFound) as cause:
            if isinstance(cause, gexc.NotFound) and "entity.change" not in str(cause.message):
                raise AdapterError(f"{self.name}: changes.create refused (404: {cause.message})") from None
            if self.landed(plan.desired, written):
                return  # a retried attempt: the first one went through
            raise LostRace(
                f"{self.name}: the zone changed since we read it, Cloud DNS refused the change whole "
                f"({cause.code}: {cause.message}); nothing was written"
            ) from None
        self._wait_done(changes)

    def _wait_done(self, changes: Any) -> None:
        def status() -> str:
            self._call("changes.get", changes.reload)
            return str(changes.status)

        def still(status: str) -> AdapterError:
            return AdapterError(
                f"{self.name}: change {changes.name} was accepted but is still {status} after "
                f"{self.wait:g}s; Cloud DNS will finish it and the next cycle verifies it"
            )

        poll_until(
            str(changes.status), status, lambda status: status == "done",
            wait=self.wait, sleep=self._sleep, first_delay=0.2, max_delay=5.0, timed_out=still,
        )

    def check_access(self) -> str:
        zone = self.zone()
        self._call("managedZones.get", zone.reload)
        zone_name = fqdn(zone.dns_name or "")
        if not (self.fqdn == zone_name or self.fqdn.endswith("." + zone_name)):
            raise AdapterError(f"{self.name}: {self.domain} is not inside managed zone {zone_name}")
        self._rrsets(self.fqdn)
        granted = self._granted()
        if granted is None:
            return (f"{self.name}: reads zone {zone_name} (dns.managedZones.get, dns.resourceRecordSets.list); "
                    "write permissions could not be listed (testIamPermissions needs dns.managedZones.list)")
        missing = [p for p in NEEDED if p not in granted]
        if missing:
            raise AdapterError(
                f"{self.name}: reads zone {zone_name} but lacks {', '.join(missing)} "
                "(managedZones.testIamPermissions); see docs/permissions.md"
            )
        return f"{self.name}: zone {zone_name}; granted {', '.join(NEEDED)}"

    def _granted(self) -> set[str] | None:
        """managedZones.testIamPermissions: which of NEEDED the caller holds (None: unknown).
        Google documents it as advisory ("may fail open"), so it only adds names to a report."""
        zone = self.zone()
        path = f"/projects/{self.project}/managedZones/{self.managed_zone}:testIamPermissions"
        try:
            answer = zone._client._connection.api_request(
                method="POST", path=path, data={"permissions": list(NEEDED)}, timeout=self.timeout
            )
        except (gexc.GoogleAPICallError, requests.RequestException):
            return None
        return set(answer.get("permissions", []))
