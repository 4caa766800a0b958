"""A TCP connection over loopback between two sockets of this process, for tests that read real sockets
(sock_diag, guestcheck flows): nothing leaves the machine."""

from __future__ import annotations

import contextlib
import socket
from typing import Iterator, Tuple


@contextlib.contextmanager
def loopback_connection() -> Iterator[Tuple[socket.socket, socket.socket, int]]:
    """(client, accepted, the listener's port); every socket is closed afterwards."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname()) as client:
            accepted, _ = server.accept()
            with accepted:
                yield client, accepted, server.getsockname()[1]


def send_and_receive(client: socket.socket, accepted: socket.socket, size: int) -> None:
    """`size` bytes from client to accepted, all read."""
    client.sendall(b"x" * size)
    got = 0
    while got < size:
        got += len(accepted.recv(65536))
