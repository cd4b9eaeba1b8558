"""The ``failover`` command. Parses, calls, prints; it never decides.

Exit codes: 0 ok, 1 an operational failure, 2 bad usage or an invalid policy.

    _common.py    the group, options, error-to-exit-code mapping, running an app
    _cycle.py     check, plan, once (cron, one run per store at a time), run, demo, schema
    _runbook.py   status, promote, release, drain, undrain, history
    _diagnose.py  validate (online or --offline), explain
    _lock.py      the run lock that keeps two ``once`` off one sqlite store
"""

from failover.cli import _cycle, _diagnose, _runbook  # noqa: F401 - each registers its commands
from failover.cli._common import main

__all__ = ["main"]
