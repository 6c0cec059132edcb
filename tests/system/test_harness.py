"""The test harness itself: no test reaches beyond loopback (pytest-socket, pyproject)."""

from __future__ import annotations

import socket

import pytest
from pytest_socket import SocketConnectBlockedError


def test_a_connection_beyond_the_allowed_hosts_is_refused_before_it_leaves() -> None:
    # 127.0.0.2 is loopback too, but not on the allowed list: were the guard off, this
    # would only be refused by this machine, so nothing ever leaves it either way.
    with (
        pytest.raises(SocketConnectBlockedError),
        pytest.warns(UserWarning, match='host "127.0.0.2"'),  # what a test sees under `error`
    ):
        socket.create_connection(("127.0.0.2", 9), timeout=1)


def test_loopback_is_reachable(unused_tcp_port: int) -> None:
    with (
        socket.create_server(("127.0.0.1", unused_tcp_port)) as server,
        socket.create_connection(("127.0.0.1", unused_tcp_port), timeout=1),
    ):
        conn, _ = server.accept()
        conn.close()
