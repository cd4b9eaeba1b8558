"""The admin API: aiohttp in the daemon's own event loop.

* GETs read; they need no token. POSTs change things and need ``Authorization: Bearer``
  with the token from ``api.token_env`` (compared in constant time). The token is checked
  before the body is read: a caller without it learns nothing and changes nothing.
* A POST's body is validated (strict pydantic models) before anything is recorded; then one
  ``api`` audit entry says who (the body's ``by``, the token's name, the peer) and why, and
  the operation runs in a worker thread (``asyncio.to_thread``) — the loop keeps probing and
  serving while the adapters apply and verify. The answer is what was read back.
* Errors are JSON ``{"error": ..., "problems": [...]}``: 400 bad input (naming the field),
  401 token, 409 refused or not fully applied, 503 store unreachable, 500 a bug (logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from pydantic import ValidationError

from failover import events as ev
from failover import operations
from failover.api._models import Body, DrainBody, PromoteBody, ReleaseBody, UndrainBody, problems_of
from failover.api._openapi import openapi_json
from failover.errors import ApiError, AuthError, FailoverError, StoreError, UsageError
from failover.metrics import CONTENT_TYPE, Metrics
from failover.policy import Api, parse_duration

if TYPE_CHECKING:
    from failover.alerts.events import Notifier
    from failover.daemon import Daemon
    from failover.model import DomainOutcome

log = logging.getLogger("failover.api")

MAX_BODY = 64 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
B = TypeVar("B", bound=Body)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_token(config: Api) -> str | None:
    """The token from the environment; a UsageError (exit 2) when a non-loopback address has none."""
    token = os.environ.get(config.token_env) or None
    host, _port = config.host_port
    if token is None and not is_loopback(host):
        raise UsageError(
            f"api.listen: refusing to serve the admin API on {config.listen} without a token: "
            f"set the environment variable {config.token_env} (api.token_env) or listen on 127.0.0.1"
        )
    return token



def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=str), status=status, content_type="application/json", headers=headers
    )


def _error(
    status: int, message: str, problems: list[dict[str, str]] | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    return _json({"error": message, "problems": problems or []}, status, headers)


class ApiServer:
    def __init__(
        self,
        daemon: Daemon,
        config: Api,
        token: str | None,
        metrics: Metrics,
        notifier: Notifier | None = None,
    ) -> None:
        self.daemon = daemon
        self.coordinator = daemon.coordinator
        self.policy = daemon.policy
        self.config = config
        self.metrics = metrics
        self.notifier = notifier
        self._token = token.encode() if token else None
        self._runner: web.AppRunner | None = None
        self._openapi = openapi_json()

    # -- lifecycle -------------------------------------------------------------------------
    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_text)
        app.router.add_get("/openapi.json", self.openapi)
        app.router.add_get("/v1/status", self.status)
        app.router.add_post("/v1/promote", self.promote)
        app.router.add_post("/v1/release", self.release)
        app.router.add_post("/v1/drain", self.drain)
        app.router.add_post("/v1/undrain", self.undrain)
        return app

    async def start(self) -> None:
        host, port = self.config.host_port
        runner = web.AppRunner(self.application(), access_log=None, handle_signals=False, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise FailoverError(f"api.listen: cannot listen on {self.config.listen}: {exc.strerror or exc}") from None
        self._runner = runner
        if self._token is None:
            log.warning("admin API: %s is not set: every POST will be refused (401)", self.config.token_env)
        log.info("admin API listening on http://%s", self.config.listen, extra={"listen": self.config.listen})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def addresses(self) -> list[Any]:
        return list(self._runner.addresses) if self._runner else []

    # -- plumbing --------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        try:
            response = await handler(request)
        except ApiError as exc:
            headers = {"WWW-Authenticate": 'Bearer realm="failover"'} if exc.status == 401 else None
            response = _error(exc.status, exc.message, exc.problems, headers)
        except web.HTTPException as exc:
            headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
            response = _error(exc.status, exc.reason, None, headers)
        except Exception:
            log.exception("admin API: %s %s crashed", request.method, request.path)
            response = _error(500, "internal error; the daemon's log has the details")
        self.metrics.api_requests.labels(request.method, route, str(response.status)).inc()
        return response

    def _authorize(self, request: web.Request) -> str:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if self._token is None:
            log.warning(
                "refused %s %s from %s: no API token is configured", request.method, request.path, request.remote
            )
            raise AuthError(f"the daemon has no API token: set {self.config.token_env} in its environment")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token)
        if not ok:
            log.warning(
                "refused %s %s from %s: missing or wrong bearer token",
                request.method,
                request.path,
                request.remote,
                extra={"peer": request.remote, "path": request.path},
            )
            raise AuthError("missing or wrong bearer token (Authorization: Bearer <token>)")
        return self.config.token_name

    async def _body(self, request: web.Request, model: type[B]) -> B:
        raw = await request.read()
        if not raw.strip():
            data: Any = {}
        else:
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ApiError(
                    400, f"the body is not valid JSON: {exc}", [{"field": "body", "message": str(exc)}]
                ) from None
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object", [{"field": "body", "message": "not an object"}])
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = problems_of(model, exc.errors(include_url=False))
            text = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
            raise ApiError(400, f"invalid body: {text}", problems) from None

    def _known(self, region: str | None = None, domain: str | None = None) -> None:
        """Unknown names are bad input (400), checked before anything is recorded."""
        lookups: tuple[tuple[str, str | None, Callable[[str], object]], ...] = (
            ("region", region, self.policy.region),
            ("domain", domain, self.policy.domain),
        )
        for field, name, lookup in lookups:
            if name is None:
                continue
            try:
                lookup(name)
            except UsageError as exc:
                raise ApiError(400, str(exc), [{"field": field, "message": str(exc)}]) from None

    async def _operate(
        self,
        request: web.Request,
        token_name: str,
        action: str,
        body: Body,
        reason: str,
        run: Callable[[str], Any],
        region: str | None = None,
        domain: str | None = None,
    ) -> Any:
        peer = request.remote or "unknown"
        asker = getattr(body, "by", None)
        by = f"{asker} via {token_name}@{peer}" if asker else f"{token_name}@{peer}"
        log.info(
            "%s: POST /v1/%s: %s",
            by,
            action,
            reason,
            extra={"event": "api_call", "action": action, "by": by, "peer": peer, "reason": reason},
        )

        def work() -> Any:
            with self._operation(action, by, reason, region, domain):
                self.coordinator.emit(
                    ev.ApiCalled, domain=domain, action=action, by=by, peer=peer, token=token_name, reason=reason
                )
                return run(by)

        try:
            return by, await asyncio.to_thread(work)
        except UsageError as exc:
            raise ApiError(400, str(exc)) from None
        except StoreError as exc:
            raise ApiError(503, str(exc)) from None
        except FailoverError as exc:
            raise ApiError(409, str(exc)) from None
        finally:
            self.daemon.request_evaluation()  # hooks (proxy routes, metrics) follow at once

    @contextlib.contextmanager
    def _operation(self, action: str, by: str, reason: str, region: str | None, domain: str | None) -> Iterator[None]:
        if self.notifier is None:
            yield
            return
        with self.notifier.operation(action, by, reason, region, domain):
            yield

    def _result(self, action: str, by: str, outcomes: list[DomainOutcome], **extra: Any) -> web.Response:
        verified = all(a.action in ("applied", "noop") for o in outcomes for a in o.adapters)
        return _json(
            {"action": action, "by": by, "verified": verified, "outcomes": operations.outcomes_json(outcomes), **extra}
        )

    # -- handlers --------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        if self.daemon.ready:
            return _json({"ready": True, "reason": f"{self.daemon.evaluations} evaluations done"})
        reason = (
            f"waiting for a first probe of every target and a first evaluation "
            f"({self.daemon.evaluations} evaluations so far)"
        )
        return _json({"ready": False, "reason": reason}, 503)

    async def metrics_text(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(text=self._openapi, content_type="application/json")

    async def status(self, request: web.Request) -> web.Response:
        try:
            data = await asyncio.to_thread(operations.status, self.coordinator)
        except StoreError as exc:
            raise ApiError(503, str(exc)) from None
        return _json(data)

    async def promote(self, request: web.Request) -> web.Response:
        token_name = self._authorize(request)
        body = await self._body(request, PromoteBody)
        self._known(body.region, body.domain)
        seconds = parse_duration(body.for_) if body.for_ else None
        by, outcomes = await self._operate(
            request,
            token_name,
            "promote",
            body,
            body.reason,
            lambda by: operations.promote(
                self.coordinator, body.region, body.reason, by, body.domain, seconds, body.force
            ),
            body.region,
            body.domain,
        )
        return self._result("promote", by, outcomes)

    async def release(self, request: web.Request) -> web.Response:
        token_name = self._authorize(request)
        body = await self._body(request, ReleaseBody)
        self._known(domain=body.domain)
        by, (dropped, outcomes) = await self._operate(
            request,
            token_name,
            "release",
            body,
            body.reason or "no reason given",
            lambda by: operations.release(self.coordinator, by, body.domain),
            None,
            body.domain,
        )
        released = None
        if dropped is not None:
            released = {
                "region": dropped.region,
                "reason": dropped.reason,
                "by": dropped.by,
                "until": operations.iso(dropped.until),
                "force": dropped.force,
            }
        return self._result("release", by, outcomes, released=released)

    async def drain(self, request: web.Request) -> web.Response:
        token_name = self._authorize(request)
        body = await self._body(request, DrainBody)
        self._known(body.region)
        by, outcomes = await self._operate(
            request,
            token_name,
            "drain",
            body,
            body.reason,
            lambda by: operations.drain(self.coordinator, body.region, by, body.reason),
            body.region,
        )
        return self._result("drain", by, outcomes)

    async def undrain(self, request: web.Request) -> web.Response:
        token_name = self._authorize(request)
        body = await self._body(request, UndrainBody)
        self._known(body.region)
        by, outcomes = await self._operate(
            request,
            token_name,
            "undrain",
            body,
            body.reason or "no reason given",
            lambda by: operations.undrain(self.coordinator, body.region, by),
            body.region,
        )
        return self._result("undrain", by, outcomes)
