"""One HTTP POST per delivery attempt, shared by the Slack and webhook sinks."""

from __future__ import annotations

import httpx

from failover.alerts.abc import Sink, parse_retry_after
from failover.errors import AlertError, Retryable


class HttpSink(Sink):
    """POSTs a body to a URL held in memory only: it never appears in an error message."""

    def __init__(self, name: str, url: str, timeout: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = name
        self.timeout = timeout
        self._url = url
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout), follow_redirects=False, transport=transport)

    def _scrub(self, text: str) -> str:
        return text.replace(self._url, "<url>")

    async def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise Retryable(f"{self.name}: no answer within {self.timeout:g}s ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise Retryable(self._scrub(f"{self.name}: {type(exc).__name__}: {exc}")) from None
        if response.status_code == 429:
            after = parse_retry_after(response.headers.get("retry-after"))
            raise Retryable(f"{self.name}: rate limited (429), retry after {after}s", retry_after=after)
        if response.status_code >= 500 or response.status_code == 408:
            raise Retryable(f"{self.name}: {response.status_code} {self._short(response)}")
        if response.status_code >= 300:
            raise AlertError(f"{self.name}: refused with {response.status_code} {self._short(response)}")
        return response

    def _short(self, response: httpx.Response) -> str:
        return self._scrub(response.text[:200].strip())

    async def aclose(self) -> None:
        await self._client.aclose()
