"""moto (the standard AWS emulator) on loopback for the route53 and eip tests, made strict
where our safety depends on it.

``start_moto()`` runs moto's own server (``ThreadedMotoServer``) in this process on
127.0.0.1 and a free port; boto3 reaches it through ``AWS_ENDPOINT_URL`` exactly as it would
reach AWS, and so does a ``failover`` subprocess. Running it in-process lets the tests:

* **count the requests the emulator received** (``calls``: ChangeResourceRecordSets,
  GetChange, AssociateAddress, DisassociateAddress) and keep every change batch received
  (``batches``), so "a no-op sends nothing" is checked at the server, not in the client;
* **apply Route 53's own change-batch rules** (``strict_route53``, on by default). moto
  accepts a DELETE that does not match the stored RRset and a CREATE of an RRset that
  exists, and would let a stale batch overwrite a newer marker. Route 53 does not:

  - a change batch is one transaction: it is validated change by change against the zone as
    the earlier changes of the same batch leave it, and applied only if every change passes
    ("Change Batches and Transactional Changes", ChangeResourceRecordSets API reference);
  - DELETE must name the RRset exactly as stored: name, type, set identifier, TTL and every
    value (order does not matter), or an alias's exact target ("To delete a resource record
    set, you must specify all the same values that you specified when you created it");
    otherwise ``InvalidChangeBatch``: "Tried to delete resource record set [name='N',
    type='T'] but it was not found" / "... but the values provided do not match the current
    values";
  - CREATE fails when the RRset exists: "Tried to create resource record set [name='N',
    type='T'] but it already exists";
  - a CNAME cannot share its name with any other RRset (RFC 1034 §3.6.2), in either order.

  ``_validate_batch`` implements exactly these rules, in front of moto's backend, answering
  with Route 53's error code and wording; the tests of this module (tests/contract/
  test_route53_semantics.py) pin them;
* **make changes PENDING like Route 53** (``route53_pending_polls``): the change answers
  PENDING and GetChange reports INSYNC only after that many polls (moto says INSYNC at once);
* **switch on IAM enforcement** (``iam_enforced()``): moto then checks signatures against the
  access keys its IAM knows and evaluates their policies, as AWS does.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

ACCOUNT_ID = "123456789012"  # moto's default account
FAKE_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass
class Moto:
    host: str
    port: int
    calls: Counter[str] = field(default_factory=Counter)
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    strict_route53: bool = True
    route53_pending_polls: int = 0
    _polls: Counter[str] = field(default_factory=Counter)
    _server: Any = None
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    _restore: list[tuple[Any, str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    batch_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self, region: str = "us-east-1") -> dict[str, str]:
        """The environment a boto3 process needs to talk to this server."""
        return {**FAKE_KEYS, "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": region,
                "AWS_REGION": region}

    def client(self, service: str, region: str = "us-east-1") -> Any:
        """A client of the emulator with the fake keys (cached: building one parses the API model)."""
        key = (service, region)
        if key not in self._clients:
            session = boto3.session.Session(**{k.lower(): v for k, v in FAKE_KEYS.items()})
            self._clients[key] = session.client(service, region_name=region, endpoint_url=self.endpoint)
        return self._clients[key]

    @contextlib.contextmanager
    def iam_enforced(self) -> Iterator[None]:
        """Inside: only access keys moto's IAM issued are accepted, with their policies."""
        from moto.core.authorization import enable_iam_authentication

        with enable_iam_authentication():
            yield

    def reset_counts(self) -> None:
        with self.lock:
            self.calls.clear()
            self.batches.clear()

    def stop(self) -> None:
        for owner, name, original in reversed(self._restore):
            setattr(owner, name, original)
        self._restore.clear()
        if self._server is not None:
            self._server.stop()
            self._server = None

    # -- the patches ----------------------------------------------------------------------------

    def _patch(self, owner: Any, name: str, make: Any) -> None:
        original = getattr(owner, name)
        self._restore.append((owner, name, original))
        setattr(owner, name, make(original))

    def _install(self) -> None:
        from moto.ec2.models.elastic_ip_addresses import ElasticAddressBackend
        from moto.route53.models import Route53Backend
        from moto.route53.responses import Route53 as Route53Response

        moto = self

        def change_backend(original: Any) -> Any:
            def wrapper(backend: Any, zoneid: str, change_list: list[dict[str, Any]]) -> None:
                if not moto.strict_route53:
                    original(backend, zoneid, change_list)  # moto's own (lenient) rules
                    return
                with moto.batch_lock:  # Route 53 applies one batch at a time per zone
                    zone = backend.get_hosted_zone(zoneid)
                    _validate_batch(zone, change_list)
                    _apply_batch(zone, change_list)
            return wrapper

        def change_response(original: Any) -> Any:
            def wrapper(response: Any) -> Any:
                with moto.lock:
                    moto.calls["ChangeResourceRecordSets"] += 1
                    moto.batches.append(_plain(response._get_param("ChangeBatch.Changes")))
                result = original(response)
                if moto.route53_pending_polls:
                    info = result.result["ChangeInfo"]
                    info["Id"] = f"/change/C{len(moto.batches):012d}"
                    info["Status"] = "PENDING"
                return result
            return wrapper

        def get_change(original: Any) -> Any:
            def wrapper(response: Any) -> Any:
                result = original(response)
                info = result.result["ChangeInfo"]
                with moto.lock:
                    moto.calls["GetChange"] += 1
                    moto._polls[info["Id"]] += 1
                    if moto._polls[info["Id"]] < moto.route53_pending_polls:
                        info["Status"] = "PENDING"
                return result
            return wrapper

        def counted(name: str) -> Any:
            def make(original: Any) -> Any:
                def wrapper(*args: Any, **kwargs: Any) -> Any:
                    with moto.lock:
                        moto.calls[name] += 1
                    return original(*args, **kwargs)
                return wrapper
            return make

        def route53_auth(original: Any) -> Any:
            def wrapper(response: Any, resource: str = "*") -> None:
                from moto.iam.access_control import IAMRequest

                class Route53Request(IAMRequest):
                    def check_signature(self) -> None:
                        """moto computes a different SigV4 signature than botocore for Route 53's
                        REST paths and refuses every key; the access key itself is still looked
                        up (unknown keys fail) and its policies evaluated."""

                try:
                    response._authenticate_and_authorize_action(Route53Request, resource)
                except Exception as exc:
                    error: Any = exc
                    if hasattr(error, "error_type"):  # moto renders these in the query-API shape
                        raise _Route53Error(int(error.code), error.error_type, error.message) from None
                    raise
            return wrapper

        self._patch(Route53Response, "_authenticate_and_authorize_normal_action", route53_auth)
        self._patch(Route53Backend, "change_resource_record_sets", change_backend)
        self._patch(Route53Response, "change_resource_record_sets", change_response)
        self._patch(Route53Response, "get_change", get_change)
        self._patch(ElasticAddressBackend, "associate_address", counted("AssociateAddress"))
        self._patch(ElasticAddressBackend, "disassociate_address", counted("DisassociateAddress"))


def _route53_error_class() -> Any:
    from moto.core.exceptions import _RESTError

    class Route53Error(_RESTError):
        """An error in Route 53's own shape (<ErrorResponse><Error>...), which botocore parses."""

        def __init__(self, status: int, error_type: str, message: str) -> None:
            super().__init__(error_type, message)
            self.code = status
            from xmltodict import unparse  # type: ignore[import-untyped]

            self.description = unparse({"ErrorResponse": {
                "@xmlns": "https://route53.amazonaws.com/doc/2013-04-01/",
                "Error": {"Type": "Sender", "Code": error_type, "Message": message},
                "RequestId": "00000000-0000-0000-0000-000000000000",
            }}, full_document=True)

    return Route53Error


def _Route53Error(status: int, error_type: str, message: str) -> Exception:
    error: Exception = _route53_error_class()(status, error_type, message)
    return error


def _plain(value: Any) -> Any:
    """moto's parsed request as plain dicts/lists/str (for assertions)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# -- Route 53's change-batch rules --------------------------------------------------------------


def _name(name: str) -> str:
    return name.rstrip(".").lower() + "."


def _values(rrset: dict[str, Any]) -> list[str]:
    out = []
    for record in rrset.get("ResourceRecords") or []:
        out.append(record["Value"] if isinstance(record, dict) else record)
    return sorted(out)


def _alias(alias: dict[str, Any] | None) -> tuple[str, str, str] | None:
    if not alias:
        return None
    return (str(alias.get("HostedZoneId")), _name(str(alias.get("DNSName"))),
            str(alias.get("EvaluateTargetHealth", "false")).lower())


def _stored(rrset: Any) -> dict[str, Any]:
    """A moto RecordSet as a Route 53 RRset dict."""
    out: dict[str, Any] = {"Name": rrset.name, "Type": rrset.type, "SetIdentifier": rrset.set_identifier}
    if rrset.alias_target:
        out["AliasTarget"] = rrset.alias_target
    else:
        out["TTL"] = rrset.ttl
        out["ResourceRecords"] = list(rrset.records or [])
    return out


def _invalid(message: str) -> Exception:
    from moto.route53.exceptions import Route53ClientError

    return Route53ClientError("InvalidChangeBatch", message)


def _validate_batch(zone: Any, change_list: list[dict[str, Any]]) -> None:
    """Raise InvalidChangeBatch where Route 53 would; change nothing."""
    work: dict[tuple[str, str, str | None], dict[str, Any]] = {
        (_name(r.name), r.type, r.set_identifier): _stored(r) for r in zone.rrsets
    }
    for change in change_list:
        action = change["Action"]
        rrset = change["ResourceRecordSet"]
        name, rtype = _name(rrset["Name"]), rrset["Type"]
        if action not in ("CREATE", "DELETE", "UPSERT"):
            raise _invalid(f"Invalid XML ; cvc-enumeration-valid: Value '{action}' is not facet-valid")
        if not (name == _name(zone.name) or name.endswith("." + _name(zone.name))):
            raise _invalid(f"RRSet with DNS name {name} is not permitted in zone {zone.name}")
        key = (name, rtype, rrset.get("SetIdentifier"))
        label = f"[name='{name}', type='{rtype}'" + (
            f", set-identifier='{key[2]}']" if key[2] else "]"
        )
        current = work.get(key)
        if action == "DELETE":
            if current is None:
                raise _invalid(f"Tried to delete resource record set {label} but it was not found")
            same = (
                _alias(current.get("AliasTarget")) == _alias(rrset.get("AliasTarget"))
                and (current.get("AliasTarget") or str(current.get("TTL")) == str(rrset.get("TTL")))
                and _values(current) == _values(rrset)
            )
            if not same:
                raise _invalid(
                    f"Tried to delete resource record set {label} but the values provided do not match "
                    "the current values"
                )
            del work[key]
            continue
        if action == "CREATE" and current is not None:
            raise _invalid(f"Tried to create resource record set {label} but it already exists")
        others = {t for (n, t, _), _r in work.items() if n == name and (n, t, _) != key}
        if rtype == "CNAME" and others:
            raise _invalid(
                f"RRSet of type CNAME with DNS name {name} is not permitted because a conflicting RRSet "
                f"of type {sorted(others)[0]} with the same DNS name already exists in zone {zone.name}"
            )
        if rtype != "CNAME" and "CNAME" in others:
            raise _invalid(
                f"RRSet of type {rtype} with DNS name {name} is not permitted because a conflicting RRSet "
                f"of type CNAME with the same DNS name already exists in zone {zone.name}"
            )
        work[key] = rrset


def _apply_batch(zone: Any, change_list: list[dict[str, Any]]) -> None:
    """Apply a batch ``_validate_batch`` accepted to moto's zone store. (moto's own
    ``change_resource_record_sets`` checks its change journal instead of the zone: it also
    refuses valid batches, e.g. a CREATE identical to one in the journal after a DELETE.)"""
    for change in change_list:
        original = copy.deepcopy(change)
        rrset = dict(change["ResourceRecordSet"])
        if not rrset["Name"].endswith("."):
            rrset["Name"] += "."
        if change["Action"] in ("CREATE", "UPSERT"):
            if "ResourceRecords" in rrset:
                rrset["ResourceRecords"] = [r["Value"] if isinstance(r, dict) else r for r in rrset["ResourceRecords"]]
            if change["Action"] == "CREATE":
                zone.add_rrset(rrset)
            else:
                zone.upsert_rrset(rrset)
        elif rrset.get("SetIdentifier"):
            zone.delete_rrset_by_id(rrset["SetIdentifier"])
        else:
            zone.delete_rrset(rrset)
        zone.rr_changes.append(original)


# -- starting it ------------------------------------------------------------------------------


def require_moto() -> None:
    """moto is a test dependency (``pip install -e '.[test]'``); in CI its absence fails the run."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        message = "moto is not installed: pip install 'moto[server]>=5' (or pip install -e '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(message + " (required in CI)")
        pytest.skip(message)


def start_moto() -> Moto:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()  # returns once the socket is bound and serving
    host, port = server.get_host_and_port()
    moto = Moto(host, port, _server=server)
    moto._install()
    return moto


_shared: list[Moto] = []  # one server per test process, however many modules import the fixture
_users = [0]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Moto]:
    require_moto()
    if not _shared:
        _shared.append(start_moto())
    _users[0] += 1
    try:
        yield _shared[0]
    finally:
        _users[0] -= 1
        if _users[0] == 0:
            _shared.pop().stop()


@pytest.fixture
def aws_env(moto_server: Moto, monkeypatch: pytest.MonkeyPatch) -> Moto:
    """This process's boto3 pointed at the emulator, as AWS_ENDPOINT_URL would point a deployment."""
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    moto_server.reset_counts()
    moto_server.route53_pending_polls = 0
    moto_server.strict_route53 = True
    return moto_server
