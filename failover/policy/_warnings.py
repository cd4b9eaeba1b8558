"""Policies that are valid but probably not what the operator wants: ``failover validate``
prints these and still exits 0."""

from __future__ import annotations

import difflib

from failover.policy._discovery import discovery_warnings
from failover.policy._model import Policy

TWO_OBSERVERS_NO_WITNESS = (
    "observers: with two observers and no witness, automatic failover cannot tell a partition from an "
    "outage: only manual promotion (failover promote) will move traffic; add a witness (a third observer "
    "in another place)"
)


def policy_warnings(policy: Policy) -> list[str]:
    """Each warning as one line, without the ``warning:`` prefix; empty when nothing is odd."""
    warnings: list[str] = []
    regions = [r.name for r in policy.regions]
    for i, name in enumerate(policy.observers or []):
        close = difflib.get_close_matches(name, regions, n=1, cutoff=0.8) if name not in regions else []
        if close:
            warnings.append(
                f"observers[{i}]: '{name}' is not a region, so it is a witness (never gets traffic); "
                f"did you mean '{close[0]}'?"
            )
    warnings.extend(discovery_warnings(policy))
    if policy.state.backend != "etcd":
        return warnings  # the quorum of configured voters is the etcd store's
    voters, witnesses = policy.voters, policy.witnesses
    count = len(voters)
    if count == 1 and len(regions) > 1:
        warnings.append(
            f"observers: only '{voters[0]}' votes: its own network trouble looks like every other region "
            "down; add an observer per region and a witness"
        )
    elif count == 2 and not witnesses:
        warnings.append(TWO_OBSERVERS_NO_WITNESS)
    elif count == 2:
        warnings.append(
            "observers: with two observers, losing either one stops automatic failover (both are needed "
            "for a majority): only manual promotion (failover promote) will move traffic then; add a third"
        )
    elif count >= 4 and count % 2 == 0:
        warnings.append(
            f"observers: {count} observers need {count // 2 + 1} for a strict majority, so a split "
            f"{count // 2}/{count // 2} cannot decide and they survive no more losses than {count - 1} "
            "would; use an odd number"
        )
    return warnings
