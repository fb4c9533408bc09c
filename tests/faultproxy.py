"""A small fault-injecting TCP proxy for tests: 127.0.0.1:<port> -> upstream, one thread per connection.

Per accepted connection it decides (seeded, so runs are repeatable) to
- reset it (RST via SO_LINGER 0) after a random number of forwarded bytes, either direction;
- answer the first request with HTTP 503 SlowDown (S3's throttling error) and close;
- stall (hold the bytes) for `stall_seconds` before forwarding;
- or forward it untouched.
It is bounded: at most `max_connections` connections, and it stops by itself after `lifetime` seconds.
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import struct
import threading
from dataclasses import dataclass, field

SLOWDOWN = b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
SLOWDOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>drgui-test</RequestId></Error>"
)


@dataclass
class Stats:
    connections: int = 0
    resets: int = 0
    slowdowns: int = 0
    stalls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)


class FaultProxy:
    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        reset_fraction: float = 0.0,
        slowdown_fraction: float = 0.0,
        stall_fraction: float = 0.0,
        stall_seconds: float = 1.0,
        max_reset_after: int = 512 * 1024,
        seed: int = 1,
        lifetime: float = 300.0,
        max_connections: int = 5000,
    ) -> None:
        self.upstream = upstream
        self.reset_fraction = reset_fraction
        self.slowdown_fraction = slowdown_fraction
        self.stall_fraction = stall_fraction
        self.stall_seconds = stall_seconds
        self.max_reset_after = max_reset_after
        self.random = random.Random(seed)
        self.random_lock = threading.Lock()
        self.lifetime = lifetime
        self.max_connections = max_connections
        self.stats = Stats()
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        thread = threading.Thread(target=self._accept_loop, daemon=True, name="faultproxy-accept")
        thread.start()
        self.threads.append(thread)
        timer = threading.Timer(self.lifetime, self.stop)
        timer.daemon = True
        timer.start()

    def stop(self) -> None:
        self.stopped.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        for thread in list(self.threads):
            if thread is not threading.current_thread():
                thread.join(timeout=10)

    def _accept_loop(self) -> None:
        while not self.stopped.is_set() and self.stats.connections < self.max_connections:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.stats.add("connections")
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True, name="faultproxy-conn")
            thread.start()
            self.threads.append(thread)
        with contextlib.suppress(OSError):
            self.listener.close()

    def _decide(self) -> tuple[str, int]:
        with self.random_lock:
            roll = self.random.random()
            after = self.random.randint(0, self.max_reset_after)
        if roll < self.reset_fraction:
            return "reset", after
        roll -= self.reset_fraction
        if roll < self.slowdown_fraction:
            return "slowdown", 0
        roll -= self.slowdown_fraction
        if roll < self.stall_fraction:
            return "stall", 0
        return "forward", 0

    def _serve(self, client: socket.socket) -> None:
        action, reset_after = self._decide()
        upstream = None
        try:
            if action == "slowdown":
                self.stats.add("slowdowns")
                self._answer_slowdown(client)
                return
            if action == "stall":
                self.stats.add("stalls")
                if self.stopped.wait(self.stall_seconds):
                    return
            upstream = socket.create_connection(self.upstream, timeout=10)
            self._pump(client, upstream, reset_after if action == "reset" else None)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()

    def _answer_slowdown(self, client: socket.socket) -> None:
        client.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = client.recv(65536)
            if not chunk:
                return
            data += chunk
        client.sendall(SLOWDOWN % len(SLOWDOWN_BODY) + SLOWDOWN_BODY)

    def _pump(self, client: socket.socket, upstream: socket.socket, reset_after: int | None) -> None:
        forwarded = 0
        peers = {client: upstream, upstream: client}
        while not self.stopped.is_set():
            readable, _, _ = select.select(list(peers), [], [], 0.2)
            for sock in readable:
                data = sock.recv(256 * 1024)
                if not data:
                    return
                forwarded += len(data)
                if reset_after is not None and forwarded > reset_after:
                    self.stats.add("resets")
                    for each in (client, upstream):
                        each.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                peers[sock].sendall(data)
