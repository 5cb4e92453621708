"""The lab's fixtures: a real server on 127.0.0.1 (a free port, in a thread) for the
browser tests, one per module."""

import socket
import threading
import time

import pytest


@pytest.fixture(scope="module")
def lab_server():
    """(URL, app) of a lab server running for this module's tests."""
    uvicorn = pytest.importorskip("uvicorn")
    from tinygrad_opt.lab import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(), log_level="warning"))
    server.config.load()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the lab server did not start within 20 s"
        time.sleep(0.05)
    app = server.config.app
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/", app
    server.should_exit = True
    thread.join(timeout=10)
