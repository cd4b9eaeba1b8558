"""The proxy's settings as plain numbers: built from the policy block, sent to worker processes."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from failover.proxy._route import split_address

if TYPE_CHECKING:
    from failover.policy import Proxy as ProxyConfig

Balance = Literal["round_robin", "least_connections"]
ProxyProtocol = Literal["v1", "v2"]


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    upstream_port: int
    connect_timeout: float = 1.0
    drain_time: float = 30.0
    idle_timeout: float = 3600.0  # 0: never
    max_connections: int = 10000  # per process
    proxy_protocol: ProxyProtocol | None = None
    balance: Balance = "round_robin"
    ejection_time: float = 10.0  # 0: never eject
    backlog: int = 1024
    reuse_port: bool = False
    workers: int = 1

    @classmethod
    def from_policy(cls, config: ProxyConfig) -> Settings:
        host, port = config.host_port
        return cls(
            host=host,
            port=port,
            upstream_port=config.upstream_port,
            connect_timeout=config.connect_timeout,
            drain_time=config.drain_time,
            idle_timeout=config.idle_timeout,
            max_connections=config.max_connections,
            proxy_protocol=config.proxy_protocol,
            balance=config.balance,
            ejection_time=config.ejection_time,
            backlog=config.backlog,
            workers=config.workers,
        )

    @classmethod
    def from_listen(cls, listen: str, upstream_port: int = 443, **kwargs: object) -> Settings:
        """For tests and the standalone entry: ``Settings.from_listen("127.0.0.1:0", 8080)``."""
        host, port = split_address(listen, 8443, allow_zero=True)
        return cls(host=host, port=port, upstream_port=upstream_port, **kwargs)  # type: ignore[arg-type]

    @property
    def listen(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Settings:
        return cls(**json.loads(text))
