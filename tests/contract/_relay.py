"""A DNS-over-TCP relay in front of BIND that counts the messages it forwards, by opcode.

The contract suite asks every DNS provider "how many change requests did you receive?". Route
53 and the Cloud DNS stand-in count at the server; for BIND the adapter is pointed at this
relay, which sees every message on its way in (the RFC 2136 adapter speaks TCP only).
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter

OPCODES = {0: "QUERY", 4: "NOTIFY", 5: "UPDATE"}


def _read_exact(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _read_message(sock: socket.socket) -> bytes | None:
    head = _read_exact(sock, 2)
    if head is None:
        return None
    return _read_exact(sock, struct.unpack("!H", head)[0])


class DnsTcpRelay:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="dns-relay", daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def start(self) -> DnsTcpRelay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client, socket.create_connection(self.upstream, timeout=5) as server:
            while True:
                message = _read_message(client)
                if message is None:
                    return
                if len(message) >= 3:
                    opcode = (message[2] >> 3) & 0x0F
                    with self._lock:
                        self.counts[OPCODES.get(opcode, str(opcode))] += 1
                server.sendall(struct.pack("!H", len(message)) + message)
                answer = _read_message(server)
                if answer is None:
                    return
                client.sendall(struct.pack("!H", len(answer)) + answer)
