"""The admin API of ``failover run``: health, readiness, metrics, status, and the authenticated
operator actions (promote, release, drain, undrain). See ``_server`` for the contract and
docs/openapi.json for the document."""

from failover.api._openapi import openapi_document, openapi_json
from failover.api._server import ApiServer, api_token, is_loopback

__all__ = ["ApiServer", "api_token", "is_loopback", "openapi_document", "openapi_json"]
