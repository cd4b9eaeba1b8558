"""The coordination layer: observations, decisions and reconciliation behind one ``Coordinator``."""

from __future__ import annotations

from failover.coordinator._coordinator import Coordinator

__all__ = ["Coordinator"]
