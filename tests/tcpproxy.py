"""A TCP forwarder on 127.0.0.1 that a test can stop and restart, to take a service away.

Put between a server and its object store: `stop()` closes the listening
socket (new connections are refused) and drops every connection in flight,
as a store that went down would; `start()` listens again on the same port.
Threads only, so it keeps forwarding whatever the test's own thread is doing.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from types import TracebackType

POLL_SECONDS = 0.05  # how soon the threads notice a stop
CONNECT_TIMEOUT_SECONDS = 5.0
JOIN_TIMEOUT_SECONDS = 5.0
BUFFER = 256 << 10


class TcpProxy:
    """Forward connections to ``127.0.0.1:<port>`` to `target` (host, port)."""

    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        self.target = target
        self.port = port
        self.connections = 0  # accepted since creation, for tests that want to know
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self) -> TcpProxy:
        """Listen (again) on `port` (a free one the first time if 0) and forward."""
        if self._listener is not None:
            raise RuntimeError("the proxy is already running")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(POLL_SECONDS)
        self.port = listener.getsockname()[1]
        self._stopping.clear()
        self._listener = listener
        self._spawn(self._accept_loop, listener)
        return self

    def stop(self) -> None:
        """Refuse new connections, drop every open one (both sides), wait for the threads."""
        listener, self._listener = self._listener, None
        self._stopping.set()
        if listener is not None:
            listener.close()
        with self._lock:
            doomed, self._sockets = self._sockets, set()
            threads, self._threads = self._threads, []
        for sock in doomed:
            _drop(sock)
        for thread in threads:
            thread.join(JOIN_TIMEOUT_SECONDS)
            if thread.is_alive():
                raise RuntimeError(f"proxy thread {thread.name} did not stop")

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- inside ---------------------------------------------------------------------

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._stopping.is_set():
                return False
            self._sockets.add(sock)
            return True

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by stop()
                return
            self.connections += 1
            if not self._track(client):
                _drop(client)
                return
            self._spawn(self._forward, client)

    def _forward(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=CONNECT_TIMEOUT_SECONDS)
        except OSError:
            _drop(client)
            return
        if not self._track(upstream):
            _drop(upstream)
            _drop(client)
            return
        peer = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as selector:
            for sock in peer:
                sock.setblocking(True)
                sock.settimeout(None)
                selector.register(sock, selectors.EVENT_READ)
            try:
                while not self._stopping.is_set():
                    for key, _ in selector.select(POLL_SECONDS):
                        source: socket.socket = key.fileobj  # type: ignore[assignment]
                        data = source.recv(BUFFER)
                        if not data:  # one side closed: close the other
                            return
                        peer[source].sendall(data)
            except (OSError, ValueError):  # dropped by stop(), or reset by a peer
                return
            finally:
                for sock in peer:
                    with self._lock:
                        self._sockets.discard(sock)
                    _drop(sock)


def _drop(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
