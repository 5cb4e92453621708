"""``tinygrad-opt lab``: serves on 127.0.0.1 and prints its URL; bad ports are one line."""

import re
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

pytest.importorskip("uvicorn")

from tinygrad_opt.cli import main


def test_serves_on_loopback_and_prints_the_url():
    process = subprocess.Popen([sys.executable, "-m", "tinygrad_opt.cli", "lab", "--port", "0",
                                "--no-browser"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        with urllib.request.urlopen(url + "api/health", timeout=20) as response:
            assert response.status == 200 and b'"ok"' in response.read()
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    assert process.returncode is not None


def test_a_port_in_use_is_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["lab", "--port", str(port), "--no-browser"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"127.0.0.1:{port}" in err and "--port" in err


def test_a_bad_port_is_a_usage_error(capsys):
    assert main(["lab", "--port", "70000", "--no-browser"]) == 2
    assert "--port" in capsys.readouterr().err


def test_another_host_warns(monkeypatch, capsys):
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    assert main(["lab", "--host", "0.0.0.0", "--port", "0", "--no-browser"]) == 0
    captured = capsys.readouterr()
    assert "anyone" in captured.err and "http://127.0.0.1:" in captured.out
