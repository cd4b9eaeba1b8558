"""What every marker-fenced DNS adapter (rfc2136, zonefile, route53, clouddns) shares.

One rule each, so they cannot drift apart again:

* the fence (``check_fence``): a live marker with a higher fencing token (a newer leader has
  written) or a newer epoch (another coordinator decided after us) is never overwritten;
* the marker is current when epoch, primary and token all match the decision;
* the marker text a change writes (``marker_to_write``);
* the verify rule: the records, then the marker's epoch, primary and token;
* a refused retry that had in fact landed (``landed``);
* TXT quoting, both ways.

Subclasses say how records are compared (``record_changes_text``, ``record_problems``) when
the default, the A/AAAA addresses and their TTL, is not how their provider stores them.
"""

from __future__ import annotations

from typing import ClassVar

from failover.adapters.abc import Adapter, Desired, Live, Marker, Plan, marker_name
from failover.errors import AdapterError, LostRace, VerifyError


def quote_txt(text: str) -> str:
    """One TXT character-string in zone-file presentation form."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote_txt(values: tuple[str, ...]) -> str | None:
    """The marker text of a TXT RRset given in presentation form: its one value with the
    quotes taken off (DNS TXT character-strings are joined); None when there is no value or
    more than one."""
    if len(values) != 1:
        return None
    value = values[0].strip()
    parts: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == '"':
            j, out = i + 1, []
            while j < len(value) and value[j] != '"':
                if value[j] == "\\" and j + 1 < len(value):
                    j += 1
                out.append(value[j])
                j += 1
            parts.append("".join(out))
            i = j + 1
        elif value[i].isspace():
            i += 1
        else:
            j = i
            while j < len(value) and not value[j].isspace():
                j += 1
            parts.append(value[i:j])
            i = j
    return "".join(parts)


def txt_strings(strings: tuple[bytes, ...]) -> str:
    """The text of one TXT rdata as dnspython holds it (its character-strings, joined)."""
    return b"".join(strings).decode(errors="replace")


def marker_current(marker: Marker | None, desired: Desired) -> bool:
    return marker is not None and (marker.epoch, marker.primary, marker.token) == (
        desired.epoch, desired.primary, desired.token,
    )


def check_fence(adapter: str, domain: str, marker: Marker | None, desired: Desired) -> None:
    """Raise ``LostRace`` when the live marker was written by a newer leader or decision."""
    if marker is None:
        return
    if marker.token > desired.token:
        raise LostRace(
            f"{adapter}: {marker_name(domain)} holds fencing token {marker.token} (epoch {marker.epoch}, "
            f"primary {marker.primary}, by {marker.by}), newer than our token {desired.token}: a newer "
            "leader has written; not overwriting"
        )
    if marker.epoch > desired.epoch:
        raise LostRace(
            f"{adapter}: {marker_name(domain)} holds epoch {marker.epoch} "
            f"(primary {marker.primary}, by {marker.by}), newer than our epoch {desired.epoch}; "
            "not overwriting"
        )


def marker_to_write(plan: Plan) -> str:
    """The marker text a change writes. When the decision is the one already published under
    the same token (a drift repair), the old text is kept, so its ``at`` still says when that
    primary was first published: a coordinator adopting the marker counts its hold-down from
    it. A new leader's token (same decision) writes the new marker, so the token fences."""
    old = plan.live.marker
    if old is not None and marker_current(old, plan.desired):
        return old.text()
    return plan.desired.marker().text()


class DnsAdapter(Adapter):
    """Base of the DNS adapters: the records and the marker ``_failover.<domain>`` beside them."""

    # what reading back consults, for the verify message: "the server serves", "Route 53 holds"
    readback: ClassVar[str]

    # -- plan ------------------------------------------------------------------------------------

    def record_changes_text(self, live: Live, desired: Desired) -> list[str]:
        """The record change the decision needs, as lines for a person (empty: none)."""
        if live.addresses != desired.addresses or (live.addresses and live.ttl != desired.ttl):
            before = ", ".join(live.addresses) or "(none)"
            after = ", ".join(desired.addresses)
            return [f"{self.domain} A/AAAA: {before} -> {after} (ttl {desired.ttl})"]
        return []

    def plan(self, live: Live, desired: Desired) -> Plan:
        marker = live.marker
        check_fence(self.name, self.domain, marker, desired)
        changes = self.record_changes_text(live, desired)
        if not marker_current(marker, desired):
            was = marker.text() if marker else (live.marker_text or "(none)")
            changes.append(f"{marker_name(self.domain)} TXT: {was} -> {desired.marker().text()}")
        return Plan(self.name, live, desired, tuple(changes))

    # -- verify ----------------------------------------------------------------------------------

    def record_problems(self, live: Live, desired: Desired) -> list[str]:
        """What disagrees between the live records and the decision (empty: they agree)."""
        if live.addresses != desired.addresses:
            return [f"addresses {', '.join(live.addresses) or '(none)'}"]
        return []

    def verify_problems(self, live: Live, desired: Desired) -> list[str]:
        """The verify rule of every DNS adapter: the records, then the marker's epoch, primary
        and token (empty: verified)."""
        problems = self.record_problems(live, desired)
        if not marker_current(live.marker, desired):
            problems.append(f"marker {live.marker_text!r}")
        return problems

    def verify(self, desired: Desired) -> None:
        problems = self.verify_problems(self.read(), desired)
        if problems:
            raise VerifyError(f"{self.name}: after the change {self.readback} {'; '.join(problems)}")

    def landed(self, desired: Desired, written: str) -> bool:
        """After a refused retry: True when a fresh read shows exactly our change (the first
        attempt went through and only its answer was lost)."""
        try:
            live = self.read()
        except AdapterError:
            return False
        return live.marker_text == written and not self.verify_problems(live, desired)
