"""``python -m failover.api > docs/openapi.json`` regenerates the kept copy of the document."""

import sys

from failover.api import openapi_json

sys.stdout.write(openapi_json())
