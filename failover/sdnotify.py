"""systemd's service notification protocol (sd_notify(3)): one datagram to ``$NOTIFY_SOCKET``.

``deploy/systemd/failover.service`` is ``Type=notify``: ``failover run`` says ``READY=1`` once its
admin API and proxy listen, so units ordered after it, and ``systemctl start``, wait for that.
The protocol is a single ``sendto`` on a Unix datagram socket, so the standard library does it:
``systemd-python`` needs libsystemd's headers to build, and the ``sdnotify`` package (last
released 2017) adds nothing to these lines. Outside systemd (no ``$NOTIFY_SOCKET``) every call
does nothing and returns False.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(*assignments: str) -> bool:
    """Send ``READY=1``, ``STOPPING=1``, ``STATUS=...``; True when a service manager took them."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address or not assignments:
        return False
    if address.startswith("@"):  # a socket in the abstract namespace
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        log.warning("NOTIFY_SOCKET=%s: only Unix socket paths are supported; not notifying systemd", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(assignments).encode())
    except OSError as exc:
        # readiness is a courtesy to the service manager: never a reason for the daemon to stop
        log.warning("could not notify systemd on %s: %s", os.environ["NOTIFY_SOCKET"], exc)
        return False
    return True


def ready(status: str = "") -> bool:
    """The daemon is up: systemd marks the unit started (``Type=notify``)."""
    return notify("READY=1", *([f"STATUS={status}"] if status else []))


def stopping() -> bool:
    """Shutdown has begun (the proxy drains): systemd shows the unit as deactivating."""
    return notify("STOPPING=1")
