"""A local stand-in for the Google Cloud DNS v1 REST API, for the calls google-cloud-dns makes.

There is no official Cloud DNS emulator. This server speaks the JSON of
``https://dns.googleapis.com/dns/v1`` for what failover uses, with Cloud DNS's rules:

* ``GET  /projects/{p}/managedZones/{z}`` (managedZones.get)
* ``GET  /projects/{p}/managedZones/{z}/rrsets?name=&type=&maxResults=&pageToken=`` (list)
* ``POST /projects/{p}/managedZones/{z}/changes`` (changes.create): one atomic change.
  Every deletion must match the stored RRset exactly (name, type, ttl and the same rrdatas),
  else ``412 conditionNotMet`` ("Precondition not met for 'entity.change.deletions[i]'");
  a deletion of a missing RRset is ``404 notFound``; an addition of an RRset that exists
  after the deletions is ``409 alreadyExists``; a CNAME beside other data is ``400``. A
  refused change changes nothing. An accepted one is applied at once and reported
  ``pending``; it turns ``done`` after ``pending_polls`` reads of it.
* ``GET  /projects/{p}/managedZones/{z}/changes/{id}`` (changes.get)
* ``POST /projects/{p}/managedZones/{z}:testIamPermissions``

Errors use Google's JSON error shape, so google-api-core raises the same exception classes as
against Google. Test controls: ``required_token`` (a bearer token every call must carry, else
401), ``denied`` (permissions answered with 403), ``fail_next`` (statuses answered to the next
calls, e.g. 503), ``lose_next_answers`` (apply a change, then answer 503), and what was
received: ``requests`` (calls, by kind), ``changes_received``, ``authorization`` headers.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

_ZONE_PATH = re.compile(
    r"^/dns/v1/projects/([^/]+)/managedZones/([^/:]+)(:testIamPermissions|/rrsets|/changes(?:/([^/]+))?)?$"
)

PERMISSION = {
    "zone": "dns.managedZones.get",
    "rrsets": "dns.resourceRecordSets.list",
    "create": "dns.changes.create",
    "change": "dns.changes.get",
}
ALL_PERMISSIONS = (
    "dns.managedZones.get", "dns.managedZones.list", "dns.resourceRecordSets.list", "dns.changes.create",
    "dns.changes.get", "dns.resourceRecordSets.create", "dns.resourceRecordSets.delete",
    "dns.resourceRecordSets.update",
)


class Refusal(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message

    def body(self) -> dict[str, Any]:
        status = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 503: "UNAVAILABLE"}.get(self.status, "UNKNOWN")
        return {"error": {"code": self.status, "message": self.message, "status": status,
                          "errors": [{"message": self.message, "domain": "global", "reason": self.reason}]}}


def _fqdn(name: str) -> str:
    return name.rstrip(".").lower() + "."


@dataclass
class Zone:
    name: str
    dns_name: str
    id: int
    rrsets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: Counter[str] = field(default_factory=Counter)


@dataclass
class CloudDnsServer:
    project: str = "failover-test"
    pending_polls: int = 1
    required_token: str | None = None
    denied: set[str] = field(default_factory=set)
    fail_next: list[int] = field(default_factory=list)
    lose_next_answers: int = 0  # process the next change(s), then answer 503 as if the answer was lost
    authorization: list[str | None] = field(default_factory=list)  # the Authorization header of each call
    requests: Counter[str] = field(default_factory=Counter)
    changes_received: list[dict[str, Any]] = field(default_factory=list)
    zones: dict[str, Zone] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- life --------------------------------------------------------------------------------

    def start(self) -> CloudDnsServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    status, body = server.handle(method, self.path, dict(self.headers), raw)
                except Refusal as exc:
                    status, body = exc.status, exc.body()
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="clouddns-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def endpoint(self) -> str:
        assert self._httpd is not None, "start() first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- the provider's state, for tests (hand edits) ---------------------------------------

    def add_zone(self, name: str, dns_name: str) -> Zone:
        with self.lock:
            zone = Zone(name, _fqdn(dns_name), 1000 + len(self.zones))
            zone.rrsets[(zone.dns_name, "SOA")] = {
                "name": zone.dns_name, "type": "SOA", "ttl": 21600,
                "rrdatas": ["ns-cloud-a1.googledomains.com. cloud-dns-hostmaster.google.com. 1 21600 3600 259200 300"],
            }
            zone.rrsets[(zone.dns_name, "NS")] = {
                "name": zone.dns_name, "type": "NS", "ttl": 21600,
                "rrdatas": [f"ns-cloud-a{i}.googledomains.com." for i in range(1, 5)],
            }
            self.zones[name] = zone
            return zone

    def rrset(self, zone: str, name: str, rtype: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.zones[zone].rrsets.get((_fqdn(name), rtype))
            return json.loads(json.dumps(found)) if found else None

    def put_rrset(self, zone: str, name: str, rtype: str, ttl: int, rrdatas: list[str]) -> None:
        """Edit a record by hand, outside any change (as the console would)."""
        with self.lock:
            self.zones[zone].rrsets[(_fqdn(name), rtype)] = {
                "name": _fqdn(name), "type": rtype, "ttl": ttl, "rrdatas": list(rrdatas)}

    def drop_rrset(self, zone: str, name: str, rtype: str) -> None:
        with self.lock:
            self.zones[zone].rrsets.pop((_fqdn(name), rtype), None)

    # -- the API ---------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        url = urlparse(path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        match = _ZONE_PATH.match(url.path)
        kind = "unknown"
        if match:
            tail = match.group(3) or ""
            kind = {"": "zone", "/rrsets": "rrsets", ":testIamPermissions": "testIamPermissions"}.get(tail, "")
            if not kind:
                kind = "change" if match.group(4) else "create"
        auth_header = {k.lower(): v for k, v in headers.items()}.get("authorization")
        with self.lock:
            self.requests[f"{method} {kind}"] += 1
            self.authorization.append(auth_header)
            if self.fail_next:
                status = self.fail_next.pop(0)
                raise Refusal(status, "backendError", "Internal error. Please try again.")
        if self.required_token is not None and auth_header != f"Bearer {self.required_token}":
            raise Refusal(401, "authError", "Request had invalid authentication credentials. Expected OAuth 2 "
                          "access token, login cookie or other valid authentication credential.")
        if not match or (method, kind) not in {("GET", "zone"), ("GET", "rrsets"), ("POST", "create"),
                                               ("GET", "change"), ("POST", "testIamPermissions")}:
            raise Refusal(404, "notFound", f"no such method {method} {url.path}")
        project, zone_name = match.group(1), match.group(2)
        if kind == "testIamPermissions":
            asked = json.loads(raw or b"{}").get("permissions", [])
            return 200, {"permissions": [p for p in asked if p not in self.denied]}
        if PERMISSION[kind] in self.denied or (kind == "create" and self.denied & {
                "dns.resourceRecordSets.create", "dns.resourceRecordSets.delete"}):
            raise Refusal(403, "forbidden", f"Forbidden: the caller does not have permission {PERMISSION[kind]}")
        with self.lock:
            zone = self.zones.get(zone_name) if project == self.project else None
            if zone is None:
                raise Refusal(404, "notFound",
                              f"The 'parameters.managedZone' resource named '{zone_name}' does not exist.")
            if kind == "zone":
                return 200, {"kind": "dns#managedZone", "name": zone.name, "dnsName": zone.dns_name,
                             "id": str(zone.id), "description": "", "visibility": "public",
                             "nameServers": [f"ns-cloud-a{i}.googledomains.com." for i in range(1, 5)],
                             "creationTime": "2026-01-01T00:00:00.000Z"}
            if kind == "rrsets":
                return 200, self._list(zone, query)
            if kind == "create":
                change = self._create(zone, json.loads(raw or b"{}"))
                if self.lose_next_answers:
                    self.lose_next_answers -= 1
                    raise Refusal(503, "backendError", "Internal error. Please try again.")
                return 200, change
            return 200, self._get_change(zone, match.group(4))

    def _list(self, zone: Zone, query: dict[str, str]) -> dict[str, Any]:
        name = _fqdn(query["name"]) if "name" in query else None
        rtype = query.get("type")
        if rtype and not name:
            raise Refusal(400, "invalid", "Invalid value for 'parameters.type': type requires name")
        items = sorted(
            (r for (n, t), r in zone.rrsets.items() if (name is None or n == name) and (rtype is None or t == rtype)),
            key=lambda r: (r["name"], r["type"]),
        )
        start = int(query.get("pageToken") or 0)
        size = int(query.get("maxResults") or 100)
        page = items[start:start + size]
        out: dict[str, Any] = {"kind": "dns#resourceRecordSetsListResponse",
                               "rrsets": [{"kind": "dns#resourceRecordSet", **r} for r in page]}
        if start + size < len(items):
            out["nextPageToken"] = str(start + size)
        return out

    def _create(self, zone: Zone, body: dict[str, Any]) -> dict[str, Any]:
        self.changes_received.append(json.loads(json.dumps(body)))
        additions = body.get("additions") or []
        deletions = body.get("deletions") or []
        if not additions and not deletions:
            raise Refusal(400, "required", "The 'entity.change' parameter is required but was missing.")
        work = dict(zone.rrsets)
        for i, rr in enumerate(deletions):
            key = self._key(zone, rr, f"entity.change.deletions[{i}]")
            current = work.get(key)
            if current is None:
                raise Refusal(404, "notFound", f"The 'entity.change.deletions[{i}]' resource named "
                              f"'{key[0]} ({key[1]})' does not exist.")
            same = int(rr.get("ttl", -1)) == int(current["ttl"]) and sorted(rr.get("rrdatas") or []) == sorted(
                current["rrdatas"])
            if not same:
                raise Refusal(412, "conditionNotMet", f"Precondition not met for 'entity.change.deletions[{i}]'")
            del work[key]
        for i, rr in enumerate(additions):
            key = self._key(zone, rr, f"entity.change.additions[{i}]")
            if key in work:
                raise Refusal(409, "alreadyExists", f"The resource 'entity.change.additions[{i}]' named "
                              f"'{key[0]} ({key[1]})' already exists")
            others = {t for (n, t) in work if n == key[0]}
            if (key[1] == "CNAME" and others) or (key[1] != "CNAME" and "CNAME" in others):
                raise Refusal(400, "cnameResourceRecordSetConflict", f"The resource 'entity.change.additions[{i}]' "
                              f"named '{key[0]} (CNAME)' cannot coexist with other record types at that name")
            if not rr.get("rrdatas"):
                raise Refusal(400, "invalid", f"Invalid value for 'entity.change.additions[{i}].rrdata'")
            work[key] = {"name": key[0], "type": key[1], "ttl": int(rr.get("ttl", 0)),
                         "rrdatas": list(rr["rrdatas"])}
        zone.rrsets = work
        change_id = str(len(zone.changes) + 1)
        change = {"kind": "dns#change", "id": change_id, "startTime": "2026-01-01T00:00:00.000Z",
                  "status": "pending" if self.pending_polls > 0 else "done",
                  "additions": additions, "deletions": deletions}
        zone.changes[change_id] = change
        return change

    def _get_change(self, zone: Zone, change_id: str) -> dict[str, Any]:
        change = zone.changes.get(change_id)
        if change is None:
            raise Refusal(404, "notFound", f"The 'parameters.changeId' resource named '{change_id}' does not exist.")
        zone.polls[change_id] += 1
        if zone.polls[change_id] >= self.pending_polls:
            change["status"] = "done"
        return change

    @staticmethod
    def _key(zone: Zone, rr: dict[str, Any], where: str) -> tuple[str, str]:
        name = rr.get("name") or ""
        if not name.endswith("."):
            raise Refusal(400, "invalid", f"Invalid value for '{where}.name': '{name}' (a trailing dot is required)")
        name = _fqdn(name)
        if not (name == zone.dns_name or name.endswith("." + zone.dns_name)):
            raise Refusal(400, "invalid", f"Invalid value for '{where}.name': '{name}' is not in {zone.dns_name}")
        return name, str(rr.get("type"))
