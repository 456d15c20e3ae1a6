"""The listening sockets of ``pathways serve``: one per worker process where the kernel can spread
connections over them (Linux ``SO_REUSEPORT``), else one socket that every worker shares.

With one shared socket, asyncio accepts every pending connection in one wake-up, so the worker that woke
first took all of a client's keep-alive connections (a load generator's, a proxy's pool) and kept them
while the other workers idled. Each worker listening on its own ``SO_REUSEPORT`` socket, the kernel hashes
every new connection to one of them.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import uvicorn

logger = logging.getLogger(__name__)


def address_family(host: str) -> socket.AddressFamily:
    """IPv6 for a host with a colon in it (``::1``), IPv4 otherwise, as uvicorn decides."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def check_port_free(host: str, port: int) -> int:
    """Bind and listen on ``host:port`` once, without ``SO_REUSEPORT``, and close again.

    Raises OSError (``EADDRINUSE``) when anything listens there already, another ``pathways serve``'s
    ``SO_REUSEPORT`` workers included (which a worker binding with ``SO_REUSEPORT`` would join
    silently). A port left in TIME_WAIT by an earlier server is free (``SO_REUSEADDR``, as uvicorn
    binds). Returns the port (the one the kernel chose when ``port`` is 0).
    """
    with socket.socket(address_family(host), socket.SOCK_STREAM, socket.IPPROTO_TCP) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        probe.listen()
        return int(probe.getsockname()[1])


def has_balanced_reuse_port() -> bool:
    """Whether listening sockets that share a port with ``SO_REUSEPORT`` split its connections.

    Linux (since 3.9) balances them; other systems either lack the option or give one socket all
    connections, and keep the shared socket.
    """
    if not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT"):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as trial:
        try:
            trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        except OSError:
            return False
    return True


def bind_reuse_port(family: int, host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``, not yet listening.

    uvicorn's server listens on it once the app has started, so the kernel sends the worker no
    connection while it is still loading. Created with ``IPPROTO_TCP`` named: asyncio sets
    ``TCP_NODELAY`` only on the connections of such a socket (without it every answer waited out the
    client's delayed ACK, 45 ms). A failed bind ends the worker with uvicorn's startup-failure code,
    which stops the supervisor rather than restarting the worker over and over.
    """
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        from uvicorn.config import STARTUP_FAILURE

        sock.close()
        logger.error("worker cannot bind %s:%d: %s", host, port, exc)
        sys.exit(STARTUP_FAILURE)
    return sock


class WorkerListener:
    """An address each worker binds for itself: pickled into a spawned worker, it arrives as that
    worker's own ``SO_REUSEPORT`` socket (``bind_reuse_port``).

    uvicorn's supervisor hands the same socket list to every worker it starts, restarts (a worker that
    died, ``SIGHUP``) or adds (``SIGTTIN``), pickling it for the spawned process each time; passing
    this in place of a socket makes every one of those workers bind anew.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def __reduce__(self) -> tuple[object, tuple[int, str, int]]:
        return bind_reuse_port, (int(address_family(self.host)), self.host, self.port)


def shared_socket(config: uvicorn.Config) -> socket.socket:
    """The one listening socket every worker shares, bound by uvicorn in this process.

    Re-wrapped with ``IPPROTO_TCP`` named, for the workers' connections to get ``TCP_NODELAY`` (see
    ``bind_reuse_port``) whatever protocol number uvicorn bound it with.
    """
    bound = config.bind_socket()
    return socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())


def run_workers(config: uvicorn.Config) -> None:
    """Run ``config.workers`` worker processes under uvicorn's supervisor until it is told to stop."""
    from uvicorn.supervisors import Multiprocess

    if has_balanced_reuse_port():
        assert config.host is not None
        listener = cast(socket.socket, WorkerListener(config.host, config.port))  # see WorkerListener
        logger.info("each worker listens on its own SO_REUSEPORT socket on %s:%d", config.host, config.port)
        Multiprocess(config, sockets=[listener]).run()
    else:
        Multiprocess(config, sockets=[shared_socket(config)]).run()
